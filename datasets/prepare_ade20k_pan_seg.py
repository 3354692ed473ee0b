#!/usr/bin/env python
"""ADE20K-150 panoptic annotations (COCO panoptic format) from the semantic and instance annotations.

Usage: python datasets/prepare_ade20k_pan_seg.py [--root ROOT] [--catid-mapping FILE] [--visible-areas] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_ade20k_pan_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_ade20k_pan_seg import main

if __name__ == "__main__":
    sys.exit(main())
