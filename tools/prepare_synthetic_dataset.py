#!/usr/bin/env python
"""Write the tiny synthetic COCO-panoptic "shapes" dataset used by tests and smoke training.

Launcher of :mod:`mask_adapter.apps.prepare_synthetic_dataset` (same as ``python -m mask_adapter.apps.prepare_synthetic_dataset``); ``--help`` lists the options.
"""

import sys

from mask_adapter.apps.prepare_synthetic_dataset import command_line

if __name__ == "__main__":
    sys.exit(command_line())
