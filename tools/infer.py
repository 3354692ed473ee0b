#!/usr/bin/env python
"""Segment a folder, glob, list or COCO image JSON with one model and vocabulary; resumable, sharded by process.

    python tools/infer.py --input IN [IN ...] --output DIR [--weights NAME|PATH] [--vocabulary ...] [--task ...]
        [--resume] [--num-workers 2] [--num-processes N]

Launcher of :mod:`mask_adapter.apps.infer` (same as ``python -m mask_adapter.apps.infer``); ``--help`` lists the
options and the module's docstring the files written.
"""

import sys

from mask_adapter.apps.infer import command_line

if __name__ == "__main__":
    sys.exit(command_line())
