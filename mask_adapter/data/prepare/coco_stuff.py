"""COCO-Stuff-171 semantic labels from the COCO-Stuff ``stuffthingmaps`` (mmcv-free).

The maps are read from ``coco/stuffthingmaps/`` (the folder of the official Mask-Adapter / MAFT+ script and README)
or, when it is missing, from ``coco/stuffthingmaps_trainval2017/`` (the archive's name).

Shapes: label maps (H, W) uint8.
"""

import logging
import os

import numpy as np

from .label_io import apply_lut, id_lut, read_label, vocab_id_to_index
from .runner import convert_label_maps, folder_pairs

__all__ = [
    "COCO_STUFF_SPLITS",
    "COCO_STUFF_FOLDERS",
    "COCO_STUFF_FULL_COUNT",
    "coco_stuff_lut",
    "coco_stuff_source",
    "prepare_coco_stuff",
]

logger = logging.getLogger(__name__)

COCO_STUFF_SPLITS = ("train2017", "val2017")
# Input folders under coco/, in the order they are looked for.
COCO_STUFF_FOLDERS = ("stuffthingmaps", "stuffthingmaps_trainval2017")
# Number of maps of the full download (train + val).
COCO_STUFF_FULL_COUNT = 123287
_HINT = (
    "download stuffthingmaps_trainval2017.zip (datasets/README.md) and unzip it into coco/stuffthingmaps/ "
    "(it holds train2017/ and val2017/)"
)


def coco_stuff_lut() -> np.ndarray:
    """256-entry table: stuffthingmaps value (COCO id - 1) -> contiguous coco_stuff class, 255 elsewhere."""
    return id_lut(vocab_id_to_index("coco_stuff", offset=-1), 256, 255)


def coco_stuff_source(coco: str, split: str) -> str:
    """``<coco>/<folder>/<split>`` of the first of :data:`COCO_STUFF_FOLDERS` that has it; one-line error naming
    every folder looked for when none does."""
    candidates = [os.path.join(coco, folder, split) for folder in COCO_STUFF_FOLDERS]
    for path in candidates:
        if os.path.isdir(path):
            return path
    looked = " or ".join(f"'{path}'" for path in candidates)
    raise FileNotFoundError(f"COCO-Stuff label maps not found at {looked}; {_HINT}")


def prepare_coco_stuff(root: str) -> int:
    """Write ``coco/stuffthingmaps_detectron2/{train2017,val2017}/*.png`` (0..170 in coco_stuff vocabulary order,
    255 = ignore); maps that are entirely ignore are skipped, as in the official script. Returns the number of
    files written."""
    coco = os.path.join(root, "coco")
    lut, written, seen, skipped = coco_stuff_lut(), 0, 0, []

    def convert(path: str) -> np.ndarray | None:
        label = apply_lut(read_label(path).astype(np.int64), lut, path)
        if (label == 255).all():
            skipped.append(path)
            return None
        return label

    for split in COCO_STUFF_SPLITS:
        pairs = folder_pairs(
            coco_stuff_source(coco, split),
            os.path.join(coco, "stuffthingmaps_detectron2", split),
            "COCO-Stuff label maps",
            _HINT,
        )
        seen += len(pairs)
        written += convert_label_maps(pairs, convert, f"COCO-Stuff {split}")
    logger.info(
        "COCO-Stuff: %d maps found (full dataset: %d), %d written, %d all-ignore skipped",
        seen,
        COCO_STUFF_FULL_COUNT,
        written,
        len(skipped),
    )
    return written
