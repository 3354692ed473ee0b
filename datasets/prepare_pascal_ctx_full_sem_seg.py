#!/usr/bin/env python
"""Pascal Context full 459-class semantic labels (PC-459).

Input:  as prepare_pascal_ctx_sem_seg.py (VOC2010 images, ImageSets/Main/{train,val}.txt, 459-class label maps
        from trainval/<id>.mat or pre-extracted <id>.png; no Detail API needed).
Output: <root>/pascal_ctx_d2/images/{training,validation}/*.jpg
        <root>/pascal_ctx_d2/annotations_ctx459/{training,validation}/*.tif (uint16: label - 1 = 0..458 in
        pascal_ctx_459 vocabulary order, 65535 = unlabeled)
"""

import sys

import numpy as np

from mask_adapter.data.prepare import (
    PASCAL_CONTEXT_OPTIONS,
    prepare_pascal_context,
    standard_main,
)
from mask_adapter.data.vocabulary import load_vocabulary

IGNORE = 65535


def ctx459_lut() -> np.ndarray:
    """Table: 459-class label (0 unlabeled, 1..459) -> label - 1, 65535 for 0."""
    n = len(load_vocabulary("pascal_ctx_459"))
    lut = np.full(n + 1, IGNORE, dtype=np.uint16)
    lut[1:] = np.arange(n)
    return lut


def prepare(root: str, labels_dir: str | None = None) -> int:
    """Convert both splits; returns the number of label files written."""
    return prepare_pascal_context(root, labels_dir, ctx459_lut(), "annotations_ctx459", ".tif", "PC-459")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, PASCAL_CONTEXT_OPTIONS)


if __name__ == "__main__":
    sys.exit(main())
