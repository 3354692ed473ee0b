#!/usr/bin/env python
"""COCO-Stuff-171 semantic labels for detectron2 (mmcv-free).

Input:  <root>/coco/stuffthingmaps/{train2017,val2017}/*.png (the official layout) or, when that folder is missing,
        <root>/coco/stuffthingmaps_trainval2017/{train2017,val2017}/*.png  (COCO id - 1, i.e. 0..181; 255 unlabeled)
Output: <root>/coco/stuffthingmaps_detectron2/{train2017,val2017}/*.png  (0..170 in coco_stuff vocabulary order,
        255 = ignore). Maps that are entirely ignore are skipped. The full dataset has 123,287 maps.
"""

import logging
import sys

from mask_adapter.data.prepare import prepare_coco_stuff, standard_main


def prepare(root: str) -> int:
    """Convert both splits; returns the number of files written."""
    return prepare_coco_stuff(root)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
