#!/usr/bin/env python
"""ADE20K-847 (ADE20K_2021_17_01 full) semantic labels for detectron2.

Input:  <root>/ADE20K_2021_17_01/index_ade20k.pkl (lists "folder" and "filename") and the images with their
        *_seg.png annotations (object class = R / 10 * 256 + G). Without the index file, every
        images/ADE/{training,validation}/**/*.jpg is used.
Output: <root>/ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg and
        <root>/ADE20K_2021_17_01/annotations_detectron2/{training,validation}/*.tif (uint16: 0..846 in ade20k_847
        vocabulary order, 65535 = ignore). Images whose shorter side exceeds 512 are resized to 512 (labels with
        nearest neighbour), as in the official script.
"""

import glob
import os
import pickle
import sys
from collections.abc import Iterator

import cv2
import numpy as np

from mask_adapter.data.prepare import (
    apply_lut,
    convert_label_maps,
    id_lut,
    read_rgb,
    require,
    standard_main,
)
from mask_adapter.data.vocabulary import load_vocabulary_meta

MAX_SIZE = 512
IGNORE = 65535
_HINT = "download ADE20K_2021_17_01.zip from the ADE20K website (datasets/README.md) and unzip it under the root"


def class_lut() -> np.ndarray:
    """Table: ADE20K_2021 object class value (R/10*256+G) -> 847-class id, 65535 elsewhere."""
    values = load_vocabulary_meta("ade20k_847")["ade20k_2021_class_values"]
    return id_lut({v: k for k, v in enumerate(values)}, 26 * 256, IGNORE, dtype=np.uint16)


def decode_seg(seg_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) *_seg.png -> (H, W) object class values R / 10 * 256 + G."""
    return (seg_rgb[:, :, 0].astype(np.int64) // 10) * 256 + seg_rgb[:, :, 1].astype(np.int64)


def _resize(img: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = label.shape
    if min(h, w) <= MAX_SIZE:
        return img, label
    nh, nw = (MAX_SIZE, round(w / h * MAX_SIZE)) if w >= h else (round(h / w * MAX_SIZE), MAX_SIZE)
    return (
        cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR),
        cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST),
    )


def _images(ade: str) -> Iterator[str]:
    index = os.path.join(ade, "index_ade20k.pkl")
    if os.path.exists(index):
        with open(index, "rb") as f:
            idx = pickle.load(f)
        for folder, name in zip(idx["folder"], idx["filename"]):
            # index folders start with "ADE20K_2021_17_01/..." (relative to the dataset's parent folder)
            path = os.path.join(os.path.dirname(ade), folder, name)
            yield path if os.path.exists(path) else os.path.join(ade, folder, name)
    else:
        yield from sorted(glob.glob(os.path.join(ade, "images", "ADE", "*", "**", "*.jpg"), recursive=True))


def prepare(root: str) -> int:
    """Convert every listed image; returns the number of label files written."""
    ade = require(os.path.join(root, "ADE20K_2021_17_01"), "ADE20K_2021_17_01 folder", _HINT)
    lut = class_lut()
    paths = list(_images(ade))
    if not paths:
        raise FileNotFoundError(f"No image listed in '{ade}/index_ade20k.pkl' or found under '{ade}/images'; {_HINT}")

    def convert(path: str) -> tuple[np.ndarray, np.ndarray]:
        seg_path = require(path[: -len(".jpg")] + "_seg.png", "ADE20K_2021 annotation", _HINT)
        label = apply_lut(decode_seg(read_rgb(seg_path)), lut, seg_path)
        img, label = _resize(read_rgb(require(path, "ADE20K_2021 image", _HINT)), label)
        return np.ascontiguousarray(img), label.astype(np.uint16)

    def outputs(path: str) -> tuple[str, str]:
        name = os.path.basename(path)
        split = "validation" if name.split("_")[1] == "val" else "training"
        stem = os.path.splitext(name)[0]
        return (
            os.path.join(ade, "images_detectron2", split, name),
            os.path.join(ade, "annotations_detectron2", split, stem + ".tif"),
        )

    return convert_label_maps([(path, outputs(path)) for path in paths], convert, "ADE20K-847")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
