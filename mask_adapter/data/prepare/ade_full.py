"""ADE20K-847 semantic labels from the full ADE20K release (``ADE20K_2021_17_01``).

The release is found at ``<root>/ADE20K_2021_17_01`` (the official README's layout) or at
``<root>/ade/ADE20K_2021_17_01`` (the folder the official script reads). Outputs go to
``<root>/ADE20K_2021_17_01/{images,annotations}_detectron2``, where the registered splits read them.

Shapes: ``*_seg.png`` (H, W, 3) uint8; label maps (H, W) uint16.
"""

import glob
import os
import pickle
from collections.abc import Iterator

import cv2
import numpy as np

from ..vocabulary import load_vocabulary_meta
from .label_io import apply_lut, id_lut, read_label, read_rgb, require
from .runner import convert_label_maps

__all__ = [
    "ADE_FULL_FOLDERS",
    "ADE_FULL_IGNORE",
    "ADE_FULL_MAX_SIZE",
    "ade_full_lut",
    "decode_ade_full_seg",
    "resize_ade_full",
    "ade_full_source",
    "prepare_ade20k_full",
]

# Folders of the release under the root, in the order they are looked for.
ADE_FULL_FOLDERS = ("ADE20K_2021_17_01", os.path.join("ade", "ADE20K_2021_17_01"))
ADE_FULL_IGNORE = 65535
# Images whose shorter side is longer are resized to this shorter side.
ADE_FULL_MAX_SIZE = 512
_HINT = "download ADE20K_2021_17_01.zip from the ADE20K website (datasets/README.md) and unzip it under the root"


def ade_full_lut() -> np.ndarray:
    """Table: ADE20K_2021 object class value (R/10*256+G) -> 847-class id, 65535 elsewhere."""
    values = load_vocabulary_meta("ade20k_847")["ade20k_2021_class_values"]
    return id_lut({v: k for k, v in enumerate(values)}, 26 * 256, ADE_FULL_IGNORE, dtype=np.uint16)


def decode_ade_full_seg(seg_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) *_seg.png -> (H, W) object class values R / 10 * 256 + G."""
    return (seg_rgb[:, :, 0].astype(np.int64) // 10) * 256 + seg_rgb[:, :, 1].astype(np.int64)


def resize_ade_full(img: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shorter side to :data:`ADE_FULL_MAX_SIZE` when longer (bilinear image, nearest-neighbour label)."""
    h, w = label.shape
    if min(h, w) <= ADE_FULL_MAX_SIZE:
        return img, label
    size = ADE_FULL_MAX_SIZE
    nh, nw = (size, round(w / h * size)) if w >= h else (round(h / w * size), size)
    return (
        cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR),
        cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST),
    )


def ade_full_source(root: str) -> str:
    """The ``ADE20K_2021_17_01`` folder: the first of :data:`ADE_FULL_FOLDERS` under ``root`` that exists; one-line
    error naming every folder looked for when none does."""
    candidates = [os.path.join(root, folder) for folder in ADE_FULL_FOLDERS]
    for path in candidates:
        if os.path.isdir(path):
            return path
    looked = " or ".join(f"'{path}'" for path in candidates)
    raise FileNotFoundError(f"ADE20K_2021_17_01 folder not found at {looked}; {_HINT}")


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


def prepare_ade20k_full(root: str) -> int:
    """Write ``ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg`` and
    ``annotations_detectron2/{training,validation}/*.tif`` (uint16: 0..846 in ade20k_847 vocabulary order, 65535 =
    ignore) for every image of ``index_ade20k.pkl`` (without it, every ``images/ADE/**/*.jpg``). Returns the number
    of label files written."""
    ade = ade_full_source(root)
    out_root = os.path.join(root, ADE_FULL_FOLDERS[0])
    lut = ade_full_lut()
    paths = list(_images(ade))
    if not paths:
        raise FileNotFoundError(f"No image listed in '{ade}/index_ade20k.pkl' or found under '{ade}/images'; {_HINT}")

    def convert(path: str) -> tuple[np.ndarray, np.ndarray]:
        seg_path = require(path[: -len(".jpg")] + "_seg.png", "ADE20K_2021 annotation", _HINT)
        label = apply_lut(decode_ade_full_seg(read_rgb(seg_path)), lut, seg_path)
        # the image array as decoded (a grayscale JPEG stays one channel), as the official script writes it
        img, label = resize_ade_full(read_label(require(path, "ADE20K_2021 image", _HINT)), label)
        return np.ascontiguousarray(img), label.astype(np.uint16)

    def outputs(path: str) -> tuple[str, str]:
        name = os.path.basename(path)
        split = "validation" if name.split("_")[1] == "val" else "training"
        stem = os.path.splitext(name)[0]
        return (
            os.path.join(out_root, "images_detectron2", split, name),
            os.path.join(out_root, "annotations_detectron2", split, stem + ".tif"),
        )

    return convert_label_maps([(path, outputs(path)) for path in paths], convert, "ADE20K-847")
