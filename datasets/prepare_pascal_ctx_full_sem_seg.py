#!/usr/bin/env python
"""Pascal Context full 459-class semantic labels (PC-459).

Input:  as prepare_pascal_ctx_sem_seg.py (VOC2010 images, ImageSets/Main/{train,val}.txt, 459-class label maps
        from trainval/<id>.mat or pre-extracted <id>.png; no Detail API needed).
Output: <root>/pascal_ctx_d2/images/{training,validation}/*.jpg
        <root>/pascal_ctx_d2/annotations_ctx459/{training,validation}/*.tif (uint16: label - 1 = 0..458 in
        pascal_ctx_459 vocabulary order, 65535 = unlabeled)
"""

import os
import sys
from typing import List, Optional

import numpy as np

from mask_adapter.data.prepare_utils import apply_lut, base_parser, check_ids, copy_file, progress
from mask_adapter.data.prepare_utils import (
    read_pascal_context_label,
    read_split_list,
    require,
    write_label,
)
from mask_adapter.data.vocabulary import load_vocabulary

SPLITS = (("train", "training"), ("val", "validation"))
IGNORE = 65535
_HINT = (
    "download VOCtrainval_03-May-2010.tar and the Pascal-Context trainval.tar.gz (datasets/README.md); "
    "extract VOCdevkit/ under the root and trainval/ into VOCdevkit/VOC2010/"
)


def ctx459_lut() -> np.ndarray:
    """Table: 459-class label (0 unlabeled, 1..459) -> label - 1, 65535 for 0."""
    n = len(load_vocabulary("pascal_ctx_459"))
    lut = np.full(n + 1, IGNORE, dtype=np.uint16)
    lut[1:] = np.arange(n)
    return lut


def prepare(root: str, labels_dir: Optional[str] = None) -> int:
    """Convert both splits; returns the number of label files written."""
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    labels_dir = require(
        labels_dir or os.path.join(voc, "trainval"), "Pascal-Context label maps", _HINT
    )
    out_root, lut, written = os.path.join(root, "pascal_ctx_d2"), ctx459_lut(), 0
    for name, split in SPLITS:
        list_file = require(
            os.path.join(voc, "ImageSets", "Main", f"{name}.txt"), "VOC2010 split list", _HINT
        )
        for image_id in progress(
            check_ids(read_split_list(list_file), "Split list", list_file), f"PC-459 {split}"
        ):
            copy_file(
                require(os.path.join(voc, "JPEGImages", image_id + ".jpg"), "VOC2010 image", _HINT),
                os.path.join(out_root, "images", split, image_id + ".jpg"),
            )
            out = os.path.join(out_root, "annotations_ctx459", split, image_id + ".tif")
            if os.path.exists(out):
                continue
            label = read_pascal_context_label(labels_dir, image_id)
            write_label(out, apply_lut(label, lut, os.path.join(labels_dir, image_id)))
            written += 1
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--labels", default=None, help="folder of <id>.mat / <id>.png 459-class label maps"
    )
    args = parser.parse_args(argv)
    prepare(args.root, args.labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
