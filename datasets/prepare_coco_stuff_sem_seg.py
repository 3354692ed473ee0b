#!/usr/bin/env python
"""COCO-Stuff-171 semantic labels for detectron2 (mmcv-free).

Usage: python datasets/prepare_coco_stuff_sem_seg.py [--root ROOT] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_coco_stuff_sem_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_coco_stuff_sem_seg import main

if __name__ == "__main__":
    sys.exit(main())
