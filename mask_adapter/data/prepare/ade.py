"""ADE20K-150 semantic labels, and the pieces shared by the instance and panoptic preparation: the instance-class
mapping, instance masks of the ``annotations_instance`` PNGs, COCO image entries and the per-split image walk.

Shapes: instance PNGs (H, W, 3) uint8; masks (H, W) bool.
"""

import glob
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .label_io import apply_lut, progress, read_label, require
from .runner import TRAIN_VAL_FOLDERS, Option, convert_label_maps, folder_pairs

__all__ = [
    "ADE_HINT",
    "ADE_CATID_MAPPING",
    "ade_semantic_labels",
    "prepare_ade20k_semantic",
    "ade_catid_options",
    "read_ade_catid_mapping",
    "ade_instances",
    "ade_image_entry",
    "ade_split_images",
]

ADE_HINT = "download ADEChallengeData2016.zip and annotations_instance.tar (datasets/README.md)"

# The ADE20K toolkit's instance class table (instance class 1..100 -> SceneParsing class 1..150), shipped with the
# package vocabularies.
ADE_CATID_MAPPING = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vocabularies", "ade20k_instance_catid_mapping.txt"
)

# Table over the SceneParsing values (0 unlabeled, 1..150) -> 0..149, 255 for unlabeled.
_ADE_SEMANTIC_LUT = np.array([255] + list(range(150)), dtype=np.uint8)


def ade_semantic_labels(label: np.ndarray, path: str) -> np.ndarray:
    """ADE20K-150 ``annotations`` map (0 unlabeled, 1..150) -> (H, W) uint8 0..149 with 255 for unlabeled.

    ``path`` names the file in the one-line error raised for values outside 0..150.
    """
    return apply_lut(label.astype(np.int64), _ADE_SEMANTIC_LUT, path)


def prepare_ade20k_semantic(root: str) -> int:
    """Write ``ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png`` from ``annotations/``.

    Returns:
        The number of label files written (existing outputs are kept).
    """
    ade = os.path.join(root, "ADEChallengeData2016")
    written = 0
    for _, split in TRAIN_VAL_FOLDERS:
        pairs = folder_pairs(
            os.path.join(ade, "annotations", split),
            os.path.join(ade, "annotations_detectron2", split),
            "ADE20K annotations",
            "download ADEChallengeData2016.zip (datasets/README.md) and unzip it under the root",
            empty_hint="re-extract ADEChallengeData2016.zip",
        )
        written += convert_label_maps(
            pairs, lambda path: ade_semantic_labels(read_label(path), path), f"ADE20K-150 {split}"
        )
    return written


def ade_catid_options(default: str = ADE_CATID_MAPPING) -> tuple[Option, ...]:
    """The ``--catid-mapping`` option of the ADE20K instance/panoptic scripts (``prepare(root, catid_mapping)``)."""
    return (("--catid-mapping", {"default": default, "help": "ade20k_instance_catid_mapping.txt"}),)


def read_ade_catid_mapping(path: str) -> dict[int, int]:
    """ADE20K ``ade20k_instance_catid_mapping.txt``: {instance class (1..100): 0-based ADE-150 class}.

    The file has a header line, then "instance_id  sceneparse150_id  full_ade20k_id" rows (an instance id may
    appear on several rows with the same ADE-150 id).
    """
    require(
        path,
        "ADE20K instance category mapping",
        "pass --catid-mapping (the package ships mask_adapter/data/vocabularies/ade20k_instance_catid_mapping.txt)",
    )
    mapping: dict[int, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f):
            parts = line.split()
            if lineno == 0 or not parts:
                continue
            if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise ValueError(f"{path}:{lineno + 1}: expected 'instance_id sceneparse150_id ...', got {line!r}")
            mapping[int(parts[0])] = int(parts[1]) - 1
    return mapping


def ade_instances(ins_rgb: np.ndarray, mapping: Mapping[int, int], path: str) -> list[tuple]:
    """Instances of an ADE ``annotations_instance`` PNG (R = instance class 1..100, G = instance id, 0 = none).

    Returns:
        [(0-based ADE-150 class, (H, W) bool mask)] in instance-id order.
    """
    classes, ids = ins_rgb[:, :, 0].astype(np.int64), ins_rgb[:, :, 1]
    out = []
    for inst in np.unique(ids):
        if inst == 0:
            continue
        mask = ids == inst
        cats = np.unique(classes[mask])
        if len(cats) != 1 or int(cats[0]) not in mapping:
            raise ValueError(
                f"Instance {inst} of '{path}' has instance classes {cats.tolist()}; expected one class "
                "listed in ade20k_instance_catid_mapping.txt"
            )
        out.append((mapping[int(cats[0])], mask))
    return out


def ade_image_entry(stem: str, shape: Sequence[int]) -> dict[str, Any]:
    """COCO "images" entry of the ADE20K image ``<stem>.jpg`` (string id ``stem``) of shape (H, W, ...), with the keys
    in the order of the official preparation scripts (id, file_name, width, height)."""
    return {"id": stem, "file_name": stem + ".jpg", "width": int(shape[1]), "height": int(shape[0])}


def ade_split_images(
    ade: str, split: str, desc: str, annotations: Sequence[tuple[str, str]]
) -> Iterator[tuple[str, list[str]]]:
    """ADE20K images of one split with their annotation PNGs, with progress.

    Args:
        ade: the ``ADEChallengeData2016`` folder.
        split: "training" or "validation".
        desc: progress label.
        annotations: (folder, what) of each annotation kind, e.g. ("annotations_instance", "ADE20K instance
            annotation"); ``<ade>/<folder>/<split>`` and every image's ``<stem>.png`` in it must exist.

    Returns:
        (stem, [annotation path per kind]) for each ``images/<split>/*.jpg``, in file-name order.
    """
    image_dir = require(os.path.join(ade, "images", split), "ADE20K images", ADE_HINT)
    dirs = [(require(os.path.join(ade, folder, split), what + "s", ADE_HINT), what) for folder, what in annotations]
    for path in progress(sorted(glob.glob(os.path.join(image_dir, "*.jpg"))), desc):
        stem = os.path.splitext(os.path.basename(path))[0]
        yield stem, [require(os.path.join(d, stem + ".png"), what, ADE_HINT) for d, what in dirs]
