#!/usr/bin/env python
"""Mapillary Vistas v1.2 panoptic splits (65 classes) in the layout the registered splits read.

Usage: python datasets/prepare_mapillary_vistas_panoptic.py [--root ROOT] [--copy] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_mapillary_vistas_panoptic.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_mapillary_vistas_panoptic import main

if __name__ == "__main__":
    sys.exit(main())
