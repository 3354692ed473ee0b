"""Reporting of the GT-mask analysis: a plain-text table, a CSV file and a bar chart.

Inputs are {classifier name: :class:`~mask_adapter.analysis.gt_mask_analysis.AccuracyStats`} as returned by
:func:`~mask_adapter.analysis.gt_mask_analysis.analyze`.
"""

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write
from .gt_mask_analysis import AccuracyStats

__all__ = ["format_table", "plot_accuracies", "write_csv"]


def _pct(v: float) -> str:
    return "-" if v != v else f"{100.0 * v:.1f}"


def format_table(stats: Mapping[str, AccuracyStats]) -> str:
    """Plain-text table: masks, accuracy, mean class accuracy, seen / unseen accuracy (percent).

    Args:
        stats: {classifier name: statistics}, one row each in this order.

    Returns:
        The table, header and separator line included ("-" for undefined accuracies).
    """
    header = ["classifier", "masks", "acc %", "mean class acc %", "seen acc %", "unseen acc %"]
    rows = [
        [
            name,
            str(s.num_masks),
            _pct(s.accuracy),
            _pct(s.mean_class_accuracy),
            _pct(s.seen_accuracy),
            _pct(s.unseen_accuracy),
        ]
        for name, s in stats.items()
    ]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def write_csv(stats: Mapping[str, AccuracyStats], path: str | Path) -> Path:
    """One row per classifier with the fields of :meth:`AccuracyStats.row`.

    Args:
        stats: {classifier name: statistics}.
        path: CSV file to write; missing parent folders are created.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(str(path), "w") as f:
        writer = None
        for name, s in stats.items():
            row = {"classifier": name, **s.row()}
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    return path


def plot_accuracies(stats: Mapping[str, AccuracyStats], path: str | Path) -> Path:
    """Bar chart (PNG) of overall / seen / unseen accuracy per classifier.

    Args:
        stats: {classifier name: statistics}; seen / unseen bars appear when any has a seen split.
        path: PNG file to write (its folder must exist).

    Returns:
        ``path`` as a Path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("overall", "accuracy")]
    if any(s.seen is not None for s in stats.values()):
        groups += [("seen", "seen_accuracy"), ("unseen", "unseen_accuracy")]
    names = list(stats)
    x = np.arange(len(names))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(names), 3.5))
    for k, (label, attr) in enumerate(groups):
        values = [100.0 * np.nan_to_num(getattr(stats[n], attr)) for n in names]
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylabel("GT-mask accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
