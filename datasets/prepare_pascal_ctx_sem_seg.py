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

import sys

import numpy as np

from mask_adapter.data.prepare import (
    PASCAL_CONTEXT_OPTIONS,
    id_lut,
    prepare_pascal_context,
    standard_main,
)
from mask_adapter.data.vocabulary import load_vocabulary_meta


def ctx59_lut() -> np.ndarray:
    """Table over 460 labels: 459-class label (1-based) -> 59-class id, 255 elsewhere."""
    labels = load_vocabulary_meta("pascal_ctx_59")["pascal_ctx_459_labels"]
    return id_lut({v: k for k, v in enumerate(labels)}, 460, 255)


def prepare(root: str, labels_dir: str | None = None) -> int:
    """Convert both splits; returns the number of label files written."""
    return prepare_pascal_context(root, labels_dir, ctx59_lut(), "annotations_ctx59", ".png", "PC-59")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, PASCAL_CONTEXT_OPTIONS)


if __name__ == "__main__":
    sys.exit(main())
