#!/usr/bin/env python
"""Pascal Context 59-class semantic labels (PC-59).

Input:  <root>/VOCdevkit/VOC2010/JPEGImages/*.jpg, ImageSets/Main/{train,val}.txt (4,998 / 5,105 images) and the
        459-class label maps: --labels (default <root>/VOCdevkit/VOC2010/trainval) holding the official
        trainval/<id>.mat files (key LabelMap) or pre-extracted <id>.png maps in the same label space. The Detail
        API is not needed.
Output: <root>/pascal_ctx_d2/images/{training,validation}/*.jpg
        <root>/pascal_ctx_d2/annotations_ctx59/{training,validation}/*.png (0..58 in pascal_ctx_59 vocabulary
        order, 255 = unlabeled or one of the other 400 classes)
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
    id_lut,
    progress,
)
from mask_adapter.data.prepare_utils import (
    read_pascal_context_label,
    read_split_list,
    require,
    write_label,
)
from mask_adapter.data.vocabulary import load_vocabulary_meta

SPLITS = (("train", "training"), ("val", "validation"))
_HINT = (
    "download VOCtrainval_03-May-2010.tar and the Pascal-Context trainval.tar.gz (datasets/README.md); "
    "extract VOCdevkit/ under the root and trainval/ into VOCdevkit/VOC2010/"
)


def ctx59_lut() -> np.ndarray:
    """Table over 460 labels: 459-class label (1-based) -> 59-class id, 255 elsewhere."""
    labels = load_vocabulary_meta("pascal_ctx_59")["pascal_ctx_459_labels"]
    return id_lut({v: k for k, v in enumerate(labels)}, 460, 255)


def prepare(root: str, labels_dir: Optional[str] = None) -> int:
    """Convert both splits; returns the number of label files written."""
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    labels_dir = require(
        labels_dir or os.path.join(voc, "trainval"), "Pascal-Context label maps", _HINT
    )
    out_root, lut, written = os.path.join(root, "pascal_ctx_d2"), ctx59_lut(), 0
    for name, split in SPLITS:
        list_file = require(
            os.path.join(voc, "ImageSets", "Main", f"{name}.txt"), "VOC2010 split list", _HINT
        )
        for image_id in progress(
            check_ids(read_split_list(list_file), "Split list", list_file), f"PC-59 {split}"
        ):
            copy_file(
                require(os.path.join(voc, "JPEGImages", image_id + ".jpg"), "VOC2010 image", _HINT),
                os.path.join(out_root, "images", split, image_id + ".jpg"),
            )
            out = os.path.join(out_root, "annotations_ctx59", split, image_id + ".png")
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
