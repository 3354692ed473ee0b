"""VOC-style splits (Pascal VOC 2012, VOC 2010), the Pascal VOC 2012 labels (PAS-21 / PAS-20) and the
Pascal-Context label maps (PC-59 / PC-459) built on them.

Shapes: label maps (H, W).
"""

import functools
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..vocabulary import load_vocabulary, load_vocabulary_meta
from .label_io import apply_lut, copy_file, id_lut, read_label, require
from .runner import TRAIN_VAL_FOLDERS, Option, convert_label_maps

__all__ = [
    "read_split_list",
    "check_ids",
    "voc_split_ids",
    "copy_voc_images",
    "read_pascal_context_label",
    "prepare_pascal_context",
    "PASCAL_CONTEXT_HINT",
    "PASCAL_CONTEXT_OPTIONS",
    "PASCAL_CTX_459_IGNORE",
    "pascal_ctx59_lut",
    "pascal_ctx459_lut",
    "prepare_pascal_ctx59",
    "prepare_pascal_ctx459",
    "VOC_HINT",
    "pascal_voc_luts",
    "prepare_pascal_voc",
]

PASCAL_CONTEXT_HINT = (
    "download VOCtrainval_03-May-2010.tar and the Pascal-Context trainval.tar.gz (datasets/README.md); "
    "extract VOCdevkit/ under the root and trainval/ into VOCdevkit/VOC2010/"
)
VOC_HINT = "download VOCtrainval_11-May-2012.tar (datasets/README.md) and extract VOCdevkit/ under the root"

# PC-459 label value of unlabeled pixels (the maps are uint16).
PASCAL_CTX_459_IGNORE = 65535

# Command-line option of the Pascal-Context scripts (``prepare(root, labels_dir)``).
PASCAL_CONTEXT_OPTIONS: tuple[Option, ...] = (
    (
        "--labels",
        {
            "dest": "labels_dir",
            "metavar": "LABELS",
            "default": None,
            "help": "folder of <id>.mat / <id>.png 459-class label maps",
        },
    ),
)


def read_split_list(path: str) -> list[str]:
    """Image ids of a VOC-style split file (one id per line)."""
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def check_ids(ids: Sequence[str], what: str, path: str) -> Sequence[str]:
    """Raise when a split list is empty."""
    if not ids:
        raise ValueError(f"{what} '{path}' lists no image")
    return ids


def voc_split_ids(voc: str, list_dir: str, name: str, what: str, hint: str) -> list[str]:
    """Image ids of the VOC-style split list ``<voc>/ImageSets/<list_dir>/<name>.txt``.

    Args:
        voc: the VOC year folder, e.g. ``<root>/VOCdevkit/VOC2012``.
        list_dir: "Segmentation" (VOC2012) or "Main" (VOC2010 / Pascal-Context).
        name: split list name ("train", "val").
        what, hint: dataset name and download hint for the one-line errors.

    Returns:
        The ids; a missing list raises ``FileNotFoundError``, an empty one ``ValueError``.
    """
    list_file = require(os.path.join(voc, "ImageSets", list_dir, f"{name}.txt"), f"{what} split list", hint)
    return list(check_ids(read_split_list(list_file), f"{what} split list", list_file))


def copy_voc_images(voc: str, ids: Iterable[str], out_root: str, split: str, what: str, hint: str) -> Iterator[str]:
    """Yield each image id after copying ``<voc>/JPEGImages/<id>.jpg`` to ``<out_root>/images/<split>/`` (if missing).

    Lazy: an image is copied when its id is consumed, so progress and errors follow the conversion loop.
    """
    for image_id in ids:
        copy_file(
            require(os.path.join(voc, "JPEGImages", image_id + ".jpg"), f"{what} image", hint),
            os.path.join(out_root, "images", split, image_id + ".jpg"),
        )
        yield image_id


def read_pascal_context_label(labels_dir: str, image_id: str) -> np.ndarray:
    """459-class Pascal-Context label map (0 = unlabeled, 1..459) of one image.

    Accepts the official ``trainval/<id>.mat`` files (key ``LabelMap``) or pre-extracted ``<id>.png`` label maps
    (16-bit or 8-bit) in the same label space.
    """
    mat, png = os.path.join(labels_dir, f"{image_id}.mat"), os.path.join(labels_dir, f"{image_id}.png")
    if os.path.exists(mat):
        from scipy.io import loadmat

        try:
            return np.asarray(loadmat(mat)["LabelMap"], dtype=np.int64)
        except (ValueError, KeyError, OSError, TypeError) as e:
            raise ValueError(
                f"Cannot read Pascal-Context label map '{mat}' ({type(e).__name__}: {e}); re-extract trainval.tar.gz"
            ) from None
    if os.path.exists(png):
        return read_label(png).astype(np.int64)
    raise FileNotFoundError(
        f"Pascal-Context label map for image '{image_id}' not found ('{mat}' or '{png}'); extract trainval.tar.gz "
        "(or pass --labels with pre-extracted label maps)"
    )


def prepare_pascal_context(
    root: str, labels_dir: str | None, lut: np.ndarray, annotations: str, ext: str, desc: str
) -> int:
    """Copy the VOC2010 train/val images and write the Pascal-Context label maps mapped through ``lut``.

    Args:
        root: dataset root; reads ``VOCdevkit/VOC2010`` and writes ``pascal_ctx_d2/images/{training,validation}``.
        labels_dir: folder of the 459-class label maps (default ``VOCdevkit/VOC2010/trainval``).
        lut: table over the 459-class labels (0 unlabeled, 1..459) -> output label.
        annotations: output folder under ``pascal_ctx_d2``, e.g. "annotations_ctx59".
        ext: output extension, ".png" or ".tif".
        desc: progress label, e.g. "PC-59".

    Returns:
        The number of label files written.
    """
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    labels_dir = require(
        labels_dir or os.path.join(voc, "trainval"),
        "Pascal-Context label maps",
        PASCAL_CONTEXT_HINT,
    )
    out_root = os.path.join(root, "pascal_ctx_d2")

    def convert(image_id: str) -> np.ndarray:
        label = read_pascal_context_label(labels_dir, image_id)
        return apply_lut(label, lut, os.path.join(labels_dir, image_id))

    written = 0
    for name, split in TRAIN_VAL_FOLDERS:
        ids = voc_split_ids(voc, "Main", name, "VOC2010", PASCAL_CONTEXT_HINT)
        pairs = (
            (image_id, os.path.join(out_root, annotations, split, image_id + ext))
            for image_id in copy_voc_images(voc, ids, out_root, split, "VOC2010", PASCAL_CONTEXT_HINT)
        )
        written += convert_label_maps(pairs, convert, f"{desc} {split}", total=len(ids))
    return written


def pascal_ctx59_lut() -> np.ndarray:
    """Table over 460 labels: 459-class label (1-based) -> 59-class id, 255 elsewhere."""
    labels = load_vocabulary_meta("pascal_ctx_59")["pascal_ctx_459_labels"]
    return id_lut({v: k for k, v in enumerate(labels)}, 460, 255)


def pascal_ctx459_lut() -> np.ndarray:
    """Table: 459-class label (0 unlabeled, 1..459) -> label - 1, :data:`PASCAL_CTX_459_IGNORE` for 0."""
    n = len(load_vocabulary("pascal_ctx_459"))
    lut = np.full(n + 1, PASCAL_CTX_459_IGNORE, dtype=np.uint16)
    lut[1:] = np.arange(n)
    return lut


def prepare_pascal_ctx59(root: str, labels_dir: str | None = None) -> int:
    """PC-59: ``pascal_ctx_d2/annotations_ctx59/{training,validation}/*.png`` (0..58, 255 = unlabeled or one of the
    other 400 classes) and the images; see :func:`prepare_pascal_context`. Returns the number of label files written.
    """
    return prepare_pascal_context(root, labels_dir, pascal_ctx59_lut(), "annotations_ctx59", ".png", "PC-59")


def prepare_pascal_ctx459(root: str, labels_dir: str | None = None) -> int:
    """PC-459: ``pascal_ctx_d2/annotations_ctx459/{training,validation}/*.tif`` (uint16 label - 1, 65535 =
    unlabeled) and the images; see :func:`prepare_pascal_context`. Returns the number of label files written.
    """
    return prepare_pascal_context(root, labels_dir, pascal_ctx459_lut(), "annotations_ctx459", ".tif", "PC-459")


def pascal_voc_luts() -> dict[str, np.ndarray]:
    """256-entry tables of the two VOC outputs, by output folder (valid VOC values 0..20 and 255).

    ``annotations_pascal21`` keeps 0 background and 1..20; ``annotations_pascal20`` maps VOC id v to v - 1 and the
    background to 255. The border value 255 stays 255 in both.
    """
    pas21 = np.full(256, 255, dtype=np.uint8)
    pas21[:21] = np.arange(21)
    pas20 = np.full(256, 255, dtype=np.uint8)
    pas20[1:21] = np.arange(20)
    return {"annotations_pascal21": pas21, "annotations_pascal20": pas20}


def _read_voc_label(path: str) -> np.ndarray:
    return read_label(require(path, "VOC label", VOC_HINT)).astype(np.int64)


def prepare_pascal_voc(root: str) -> int:
    """Copy the VOC2012 train/val segmentation images to ``pascal_voc_d2/images/{training,validation}`` and write
    ``pascal_voc_d2/annotations_pascal{21,20}/{training,validation}/*.png`` (see :func:`pascal_voc_luts`).

    Returns:
        The number of label files written.
    """
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    out_root, tables, written = os.path.join(root, "pascal_voc_d2"), pascal_voc_luts(), 0
    # both outputs of an image are converted from one read of its label
    read = functools.lru_cache(maxsize=1)(_read_voc_label)

    def convert(source: tuple[str, np.ndarray]) -> np.ndarray:
        label_path, lut = source
        return apply_lut(read(label_path), lut, label_path)

    for name, split in TRAIN_VAL_FOLDERS:
        ids = voc_split_ids(voc, "Segmentation", name, "VOC", VOC_HINT)
        pairs = (
            (
                (os.path.join(voc, "SegmentationClass", image_id + ".png"), lut),
                os.path.join(out_root, folder, split, image_id + ".png"),
            )
            for image_id in copy_voc_images(voc, ids, out_root, split, "VOC", VOC_HINT)
            for folder, lut in tables.items()
        )
        written += convert_label_maps(pairs, convert, f"Pascal VOC {split}", total=len(ids) * len(tables))
    return written
