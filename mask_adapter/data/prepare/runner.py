"""Command line and conversion loop shared by the ``datasets/prepare_*.py`` scripts.

A script's ``main`` (in :mod:`.commands`) is ``standard_main(__doc__, prepare_x, argv)`` around a
``prepare_x(root, ...)`` that lists (source, output) pairs for :func:`convert_label_maps`, which skips outputs that
exist (re-running writes nothing) and shows progress.

Shapes: label maps (H, W).
"""

import argparse
import glob
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ...utils.cli import add_debug_flag, run_cli
from ...utils.progress import quiet_progress
from .label_io import progress, require, write_label

__all__ = [
    "Option",
    "TRAIN_VAL_FOLDERS",
    "default_root",
    "base_parser",
    "standard_main",
    "convert_label_maps",
    "folder_pairs",
]

# (flag, argparse.add_argument keyword arguments) of a script-specific command-line option.
Option = tuple[str, dict[str, Any]]

# (split list name, output folder) of the VOC-style and ADE20K train/val splits.
TRAIN_VAL_FOLDERS: tuple[tuple[str, str], ...] = (("train", "training"), ("val", "validation"))

S = TypeVar("S")
Outputs = str | tuple[str, ...]


def default_root() -> str:
    """The dataset root: ``$DETECTRON2_DATASETS`` or "datasets"."""
    return os.getenv("DETECTRON2_DATASETS", "datasets")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with ``--root`` (default ``$DETECTRON2_DATASETS`` or "datasets") and ``--quiet``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        default=default_root(),
        help="dataset root (default: $DETECTRON2_DATASETS or 'datasets')",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress output (default: a bar on a terminal, periodic log lines otherwise)",
    )
    return parser


def standard_main(
    doc: str,
    prepare: Callable[..., Any],
    argv: Sequence[str] | None = None,
    options: Sequence[Option] = (),
) -> int:
    """Command-line entry point of a preparation script: parse ``--root`` and ``options``, call ``prepare``.

    Args:
        doc: the script's docstring; its first line is the ``--help`` description.
        prepare: called with the parsed arguments as keywords (``root=...`` and one per option ``dest``).
        argv: arguments (default ``sys.argv[1:]``).
        options: extra (flag, add_argument kwargs) options; give a ``dest`` matching ``prepare``'s parameter name.

    Returns:
        0. With ``argv`` given (programmatic use), errors propagate as exceptions with one-line messages; with
        ``argv`` None (the command line), bad input prints one ``error:`` line and returns 1 (``--debug``: the
        traceback), see :func:`mask_adapter.utils.cli.run_cli`.
    """
    parser = base_parser(doc.strip().splitlines()[0])
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    add_debug_flag(parser)

    def run(args: Sequence[str]) -> int:
        parsed = vars(parser.parse_args(args))
        parsed.pop("debug")
        quiet = parsed.pop("quiet")
        # Progress log lines (when not on a terminal) are INFO records; a script's own logging setup takes precedence.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        with quiet_progress(quiet):
            prepare(**parsed)
        return 0

    return run_cli(run) if argv is None else run(argv)


def convert_label_maps(
    pairs: Iterable[tuple[S, Outputs]],
    convert: Callable[[S], Any],
    desc: str,
    total: int | None = None,
) -> int:
    """The conversion loop of the preparation scripts: write ``convert(source)`` for every output not there yet.

    Args:
        pairs: (source, output) pairs; the output is one path or a tuple of paths. A pair whose outputs all exist
            is skipped without calling ``convert`` (so re-running a script writes nothing). ``pairs`` may be a
            generator (it is consumed lazily, in order).
        convert: source -> the array to write (one output path) or a tuple of arrays (one per output path); it
            reads and checks its input (raising one-line errors). ``None`` skips the pair (nothing is written).
        desc: progress-bar label.
        total: number of pairs, for the progress bar when ``pairs`` has no length.

    Returns:
        The number of pairs written.
    """
    written = 0
    for source, outputs in progress(pairs, desc, total, unit="file"):
        paths = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if all(os.path.exists(path) for path in paths):
            continue
        result = convert(source)
        if result is None:
            continue
        for path, array in zip(paths, (result,) if isinstance(outputs, str) else result):
            write_label(path, array)
        written += 1
    return written


def folder_pairs(
    src_dir: str,
    out_dir: str,
    what: str,
    hint: str,
    empty_hint: str | None = None,
    pattern: str = "*.png",
) -> list[tuple[str, str]]:
    """(input, output) pairs that convert a folder file by file, keeping the file names.

    Args:
        src_dir: input folder, which must exist (``what``/``hint`` as :func:`require`).
        out_dir: output folder; ``<src_dir>/x.png`` pairs with ``<out_dir>/x.png``.
        empty_hint: when given, a folder without any ``pattern`` file raises one ``FileNotFoundError`` line ending
            in this hint.
        pattern: glob pattern of the inputs.

    Returns:
        The pairs, sorted by input file name.
    """
    files = sorted(glob.glob(os.path.join(require(src_dir, what, hint), pattern)))
    if not files and empty_hint is not None:
        raise FileNotFoundError(f"No {pattern} annotation in '{src_dir}'; {empty_hint}")
    return [(path, os.path.join(out_dir, os.path.basename(path))) for path in files]
