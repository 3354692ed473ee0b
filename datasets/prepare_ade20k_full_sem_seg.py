#!/usr/bin/env python
"""ADE20K-847 (ADE20K_2021_17_01 full) semantic labels for detectron2.

Usage: python datasets/prepare_ade20k_full_sem_seg.py [--root ROOT] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_ade20k_full_sem_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_ade20k_full_sem_seg import main

if __name__ == "__main__":
    sys.exit(main())
