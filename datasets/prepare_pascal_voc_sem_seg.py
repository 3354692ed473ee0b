#!/usr/bin/env python
"""Pascal VOC 2012 semantic labels: PAS-21 (with background) and PAS-20 (background ignored).

Input:  <root>/VOCdevkit/VOC2012/JPEGImages/*.jpg, SegmentationClass/*.png (palette indices 0..20, 255 border),
        ImageSets/Segmentation/{train,val}.txt
Output: <root>/pascal_voc_d2/images/{training,validation}/*.jpg
        <root>/pascal_voc_d2/annotations_pascal21/{training,validation}/*.png  (0 background, 1..20, 255 ignore)
        <root>/pascal_voc_d2/annotations_pascal20/{training,validation}/*.png  (0..19 = VOC id - 1; background and
        the border -> 255)
"""

import functools
import os
import sys

import numpy as np

from mask_adapter.data.prepare import (
    TRAIN_VAL_FOLDERS,
    apply_lut,
    convert_label_maps,
    copy_voc_images,
    read_label,
    require,
    standard_main,
    voc_split_ids,
)

SPLITS = TRAIN_VAL_FOLDERS
_HINT = "download VOCtrainval_11-May-2012.tar (datasets/README.md) and extract VOCdevkit/ under the root"


def luts() -> dict:
    """256-entry tables for the two outputs (valid VOC values 0..20 and 255)."""
    pas21 = np.full(256, 255, dtype=np.uint8)
    pas21[:21] = np.arange(21)
    pas20 = np.full(256, 255, dtype=np.uint8)
    pas20[1:21] = np.arange(20)
    return {"annotations_pascal21": pas21, "annotations_pascal20": pas20}


def _read_voc_label(path: str) -> np.ndarray:
    return read_label(require(path, "VOC label", _HINT)).astype(np.int64)


def prepare(root: str) -> int:
    """Convert both splits; returns the number of label files written."""
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    out_root, tables, written = os.path.join(root, "pascal_voc_d2"), luts(), 0
    # both outputs of an image are converted from one read of its label
    read = functools.lru_cache(maxsize=1)(_read_voc_label)

    def convert(source: tuple[str, np.ndarray]) -> np.ndarray:
        label_path, lut = source
        return apply_lut(read(label_path), lut, label_path)

    for name, split in SPLITS:
        ids = voc_split_ids(voc, "Segmentation", name, "VOC", _HINT)
        pairs = (
            (
                (os.path.join(voc, "SegmentationClass", image_id + ".png"), lut),
                os.path.join(out_root, folder, split, image_id + ".png"),
            )
            for image_id in copy_voc_images(voc, ids, out_root, split, "VOC", _HINT)
            for folder, lut in tables.items()
        )
        written += convert_label_maps(pairs, convert, f"Pascal VOC {split}", total=len(ids) * len(tables))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
