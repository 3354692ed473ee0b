#!/usr/bin/env python
"""Pascal Context 59-class semantic labels (PC-59).

Usage: python datasets/prepare_pascal_ctx_sem_seg.py [--root ROOT] [--labels LABELS] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_pascal_ctx_sem_seg.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_pascal_ctx_sem_seg import main

if __name__ == "__main__":
    sys.exit(main())
