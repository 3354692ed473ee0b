#!/usr/bin/env python
"""Train or evaluate any Mask-Adapter model with detectron2 (``--help`` lists the options).

    python train_net.py --config-file CONFIG [--num-gpus N] [--eval-only] [--resume] [KEY VALUE ...]

Launcher of :mod:`mask_adapter.apps.train` (same as ``python -m mask_adapter.apps.train``).
"""

import sys

from mask_adapter.apps.train import command_line

if __name__ == "__main__":
    sys.exit(command_line())
