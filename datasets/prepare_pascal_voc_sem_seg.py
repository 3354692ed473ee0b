#!/usr/bin/env python
"""Pascal VOC 2012 semantic labels: PAS-21 (with background) and PAS-20 (background ignored).

Usage: python datasets/prepare_pascal_voc_sem_seg.py [--root ROOT] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_pascal_voc_sem_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_pascal_voc_sem_seg import main

if __name__ == "__main__":
    sys.exit(main())
