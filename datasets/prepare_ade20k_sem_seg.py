#!/usr/bin/env python
"""ADE20K-150 (SceneParsing) semantic labels for detectron2.

Usage: python datasets/prepare_ade20k_sem_seg.py [--root ROOT] [--quiet] [--debug]
Inputs, outputs and options: --help, or mask_adapter/data/prepare/commands/prepare_ade20k_sem_seg.py.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_ade20k_sem_seg import main

if __name__ == "__main__":
    sys.exit(main())
