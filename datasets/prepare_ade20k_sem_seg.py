#!/usr/bin/env python
"""ADE20K-150 (SceneParsing) semantic labels for detectron2.

Input:  <root>/ADEChallengeData2016/annotations/{training,validation}/*.png  (0 = unlabeled, 1..150)
Output: <root>/ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png  (0..149, 255 = ignore)
"""

import os
import sys

import numpy as np

from mask_adapter.data.prepare import (
    apply_lut,
    convert_label_maps,
    folder_pairs,
    read_label,
    standard_main,
)

SPLITS = ("training", "validation")


def convert(label: np.ndarray, path: str) -> np.ndarray:
    """ADE index map (0 unlabeled, 1..150) -> 0..149 with 255 for unlabeled."""
    lut = np.array([255] + list(range(150)), dtype=np.uint8)
    return apply_lut(label.astype(np.int64), lut, path)


def prepare(root: str) -> int:
    """Convert both splits; returns the number of files written."""
    ade = os.path.join(root, "ADEChallengeData2016")
    written = 0
    for split in SPLITS:
        pairs = folder_pairs(
            os.path.join(ade, "annotations", split),
            os.path.join(ade, "annotations_detectron2", split),
            "ADE20K annotations",
            "download ADEChallengeData2016.zip (datasets/README.md) and unzip it under the root",
            empty_hint="re-extract ADEChallengeData2016.zip",
        )
        written += convert_label_maps(pairs, lambda path: convert(read_label(path), path), f"ADE20K-150 {split}")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
