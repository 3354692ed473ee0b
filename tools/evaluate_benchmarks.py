#!/usr/bin/env python
"""Evaluate one checkpoint + config on the five open-vocabulary benchmarks, or on your own data, with one command.

    python tools/evaluate_benchmarks.py --config-file CONFIG.yaml --weights MODEL.pth \\
        [--benchmarks A-847,A-150,PC-459,PC-59,PAS-20] [--output OUTPUT_DIR] \\
        [--semseg NAME IMAGES LABELS CLASSES] [--coco-panoptic NAME IMAGES PANOPTIC_JSON PANOPTIC_DIR] [KEY VALUE ...]

Launcher of :mod:`mask_adapter.evaluation.command` (same as ``python -m mask_adapter.evaluation.command``);
``--help`` lists the options.
"""

import sys

from mask_adapter.evaluation.command import command_line

if __name__ == "__main__":
    sys.exit(command_line())
