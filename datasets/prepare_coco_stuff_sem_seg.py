#!/usr/bin/env python
"""COCO-Stuff-171 semantic labels for detectron2 (mmcv-free).

Input:  <root>/coco/stuffthingmaps_trainval2017/{train2017,val2017}/*.png  (COCO id - 1, i.e. 0..181; 255 unlabeled)
Output: <root>/coco/stuffthingmaps_detectron2/{train2017,val2017}/*.png  (0..170 in coco_stuff vocabulary order,
        255 = ignore). Maps that are entirely ignore are skipped. The full dataset has 123,287 maps.
"""

import logging
import os
import sys

import numpy as np

from mask_adapter.data.prepare import (
    apply_lut,
    convert_label_maps,
    folder_pairs,
    id_lut,
    read_label,
    standard_main,
    vocab_id_to_index,
)

logger = logging.getLogger(__name__)
SPLITS = ("train2017", "val2017")
FULL_COUNT = 123287


def stuff_lut() -> np.ndarray:
    """256-entry table: stuffthingmaps value (COCO id - 1) -> contiguous coco_stuff class, 255 elsewhere."""
    return id_lut(vocab_id_to_index("coco_stuff", offset=-1), 256, 255)


def prepare(root: str) -> int:
    """Convert both splits; returns the number of files written."""
    coco = os.path.join(root, "coco")
    lut, written, seen, skipped = stuff_lut(), 0, 0, []

    def convert(path: str) -> np.ndarray | None:
        label = apply_lut(read_label(path).astype(np.int64), lut, path)
        if (label == 255).all():
            skipped.append(path)
            return None
        return label

    for split in SPLITS:
        pairs = folder_pairs(
            os.path.join(coco, "stuffthingmaps_trainval2017", split),
            os.path.join(coco, "stuffthingmaps_detectron2", split),
            "COCO-Stuff label maps",
            "download stuffthingmaps_trainval2017.zip (datasets/README.md) and unzip it into coco/",
        )
        seen += len(pairs)
        written += convert_label_maps(pairs, convert, f"COCO-Stuff {split}")
    logger.info(
        "COCO-Stuff: %d maps found (full dataset: %d), %d written, %d all-ignore skipped",
        seen,
        FULL_COUNT,
        written,
        len(skipped),
    )
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
