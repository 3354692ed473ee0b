#!/usr/bin/env python
"""Official script name, kept for existing commands: identical to `train_net.py`."""

from train_net import cli

if __name__ == "__main__":
    cli()
