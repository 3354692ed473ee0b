#!/usr/bin/env python
"""Pascal VOC 2012 semantic labels: PAS-21 (with background) and PAS-20 (background ignored).

Input:  <root>/VOCdevkit/VOC2012/JPEGImages/*.jpg, SegmentationClass/*.png (palette indices 0..20, 255 border),
        ImageSets/Segmentation/{train,val}.txt
Output: <root>/pascal_voc_d2/images/{training,validation}/*.jpg
        <root>/pascal_voc_d2/annotations_pascal21/{training,validation}/*.png  (0 background, 1..20, 255 ignore)
        <root>/pascal_voc_d2/annotations_pascal20/{training,validation}/*.png  (0..19 = VOC id - 1; background and
        the border -> 255)
"""

import os
import sys
from typing import List, Optional

import numpy as np

from mask_adapter.data.prepare_utils import (
    apply_lut,
    base_parser,
    check_ids,
    copy_file,
    progress,
    read_label,
)
from mask_adapter.data.prepare_utils import read_split_list, require, write_label

SPLITS = (("train", "training"), ("val", "validation"))
_HINT = "download VOCtrainval_11-May-2012.tar (datasets/README.md) and extract VOCdevkit/ under the root"


def luts() -> dict:
    """256-entry tables for the two outputs (valid VOC values 0..20 and 255)."""
    pas21 = np.full(256, 255, dtype=np.uint8)
    pas21[:21] = np.arange(21)
    pas20 = np.full(256, 255, dtype=np.uint8)
    pas20[1:21] = np.arange(20)
    return {"annotations_pascal21": pas21, "annotations_pascal20": pas20}


def prepare(root: str) -> int:
    """Convert both splits; returns the number of label files written."""
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    out_root, tables, written = os.path.join(root, "pascal_voc_d2"), luts(), 0
    for name, split in SPLITS:
        list_file = require(
            os.path.join(voc, "ImageSets", "Segmentation", f"{name}.txt"), "VOC split list", _HINT
        )
        ids = check_ids(read_split_list(list_file), "VOC split list", list_file)
        for image_id in progress(ids, f"Pascal VOC {split}"):
            copy_file(
                require(os.path.join(voc, "JPEGImages", image_id + ".jpg"), "VOC image", _HINT),
                os.path.join(out_root, "images", split, image_id + ".jpg"),
            )
            label_path = os.path.join(voc, "SegmentationClass", image_id + ".png")
            label = None
            for folder, lut in tables.items():
                out = os.path.join(out_root, folder, split, image_id + ".png")
                if os.path.exists(out):
                    continue
                if label is None:
                    label = read_label(require(label_path, "VOC label", _HINT)).astype(np.int64)
                write_label(out, apply_lut(label, lut, label_path))
                written += 1
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    prepare(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
