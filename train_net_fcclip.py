#!/usr/bin/env python
"""Official script name, kept for existing commands: identical to `train_net.py`."""

import sys

from train_net import cli, command_line  # noqa: F401  (cli: the same entry point, importable)

if __name__ == "__main__":
    sys.exit(command_line())
