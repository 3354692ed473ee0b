#!/usr/bin/env python
"""Cityscapes panoptic annotations (cityscapesScripts format) and train-id label maps from the fine annotations.

Usage: python datasets/prepare_cityscapes_panoptic.py [--root ROOT] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_cityscapes_panoptic.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_cityscapes_panoptic import main

if __name__ == "__main__":
    sys.exit(main())
