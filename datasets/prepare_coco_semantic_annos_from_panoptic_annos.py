#!/usr/bin/env python
"""COCO panoptic -> semantic labels (133 classes) for the *_panoptic_with_sem_seg splits.

Usage: python datasets/prepare_coco_semantic_annos_from_panoptic_annos.py [--root ROOT] [--quiet] [--debug]
Inputs and outputs: the docstring of mask_adapter/data/prepare/commands/prepare_coco_semantic_annos_from_panoptic_annos.py; flags: --help.
"""

import sys

from mask_adapter.data.prepare.commands.prepare_coco_semantic_annos_from_panoptic_annos import main

if __name__ == "__main__":
    sys.exit(main())
