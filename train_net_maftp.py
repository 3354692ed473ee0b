#!/usr/bin/env python
"""Official script name, kept for existing commands: identical to `train_net.py`."""

import sys

from mask_adapter.apps.train import command_line

if __name__ == "__main__":
    sys.exit(command_line())
