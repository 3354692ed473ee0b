#!/usr/bin/env python
"""Evaluate one checkpoint + config on the five open-vocabulary benchmarks, or on your own data, with one command.

Usage:
    python tools/evaluate_benchmarks.py --config-file CONFIG.yaml --weights MODEL.pth \\
        [--benchmarks A-847,A-150,PC-459,PC-59,PAS-20] [--output OUTPUT_DIR] \\
        [--semseg NAME IMAGES LABELS CLASSES] [--coco-panoptic NAME IMAGES PANOPTIC_JSON PANOPTIC_DIR] [KEY VALUE ...]

The command lives in :mod:`mask_adapter.evaluation.command` (see its docstring). Bad input ends with one "error:"
line (--debug: the traceback).
"""

import logging
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import this checkout's package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mask_adapter.evaluation import evaluate_benchmarks  # noqa: E402
from mask_adapter.evaluation.command import main, parse_args  # noqa: E402
from mask_adapter.utils.cli import run_cli  # noqa: E402

__all__ = ["main", "parse_args", "evaluate_benchmarks"]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(run_cli(main))
