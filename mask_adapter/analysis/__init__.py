"""Model analyses that are library code (the ``tools/`` scripts are their command lines).

- :mod:`.gt_mask_analysis`: the GT-mask upper-bound study (``analyze``, ``AccuracyStats``, ``gt_masks``,
  ``load_example``);
- :mod:`.classifiers`: the built-in crop / mask-pooling / adapter classifiers of a model;
- :mod:`.report`: table, CSV and bar-chart output;
- :mod:`.activation_maps`: the adapter's K normalised activation maps per segment, mask pooling vs adapter class,
  and their figure.

Importing this package reads no file and registers nothing.
"""

from .activation_maps import (
    ActivationMaps,
    SegmentMaps,
    compute_activation_maps,
    render_activation_figure,
    save_activation_figure,
)
from .classifiers import CLASSIFIER_NAMES, Classifier, default_classifiers
from .gt_mask_analysis import AccuracyStats, analyze, gt_masks, load_example
from .report import format_table, plot_accuracies, write_csv

__all__ = [
    "AccuracyStats",
    "ActivationMaps",
    "SegmentMaps",
    "compute_activation_maps",
    "render_activation_figure",
    "save_activation_figure",
    "CLASSIFIER_NAMES",
    "Classifier",
    "analyze",
    "default_classifiers",
    "format_table",
    "gt_masks",
    "load_example",
    "plot_accuracies",
    "write_csv",
]
