#!/usr/bin/env python
"""ADE20K instance annotations (COCO instances JSON, 100 thing classes) for instance evaluation.

Usage: python datasets/prepare_ade20k_ins_seg.py [--root ROOT] [--catid-mapping FILE] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_ade20k_ins_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_ade20k_ins_seg import main

if __name__ == "__main__":
    sys.exit(main())
