"""COCO panoptic -> semantic labels (133 classes) for the ``*_panoptic_with_sem_seg`` splits.

Reads ``coco/annotations/panoptic_{split}.json`` and ``coco/panoptic_{split}/*.png``; writes
``coco/panoptic_semseg_{split}/*.png`` (0..132 in ``coco_panoptic`` vocabulary order, 255 = void).

Shapes: panoptic PNGs (H, W, 3) uint8; semantic maps (H, W) uint8.
"""

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .label_io import read_rgb, require, vocab_id_to_index
from .panoptic import rgb_to_ids
from .runner import convert_label_maps

__all__ = ["COCO_PANOPTIC_SPLITS", "panoptic_to_semantic", "prepare_coco_panoptic_semantic"]

COCO_PANOPTIC_SPLITS = ("train2017", "val2017")
_HINT = "download panoptic_annotations_trainval2017.zip (datasets/README.md) and unzip the PNG archives"


def panoptic_to_semantic(
    pan_rgb: np.ndarray, segments: Sequence[Mapping[str, Any]], id_map: Mapping[int, int]
) -> np.ndarray:
    """(H, W, 3) panoptic PNG + its ``segments_info`` -> (H, W) uint8 semantic map (255 where void).

    ``id_map`` maps COCO category ids to class indices.
    """
    ids = rgb_to_ids(pan_rgb)
    sem = np.full(ids.shape, 255, dtype=np.uint8)
    for seg in segments:
        sem[ids == seg["id"]] = id_map[seg["category_id"]]
    return sem


def prepare_coco_panoptic_semantic(root: str, splits: Sequence[str] = COCO_PANOPTIC_SPLITS) -> int:
    """Convert the given splits under ``<root>/coco``; returns the number of files written."""
    coco, id_map, written = os.path.join(root, "coco"), vocab_id_to_index("coco_panoptic"), 0

    def convert(source: tuple[str, list[dict]]) -> np.ndarray:
        pan_path, segments = source
        return panoptic_to_semantic(read_rgb(require(pan_path, "Panoptic PNG", _HINT)), segments, id_map)

    for split in splits:
        json_file = require(os.path.join(coco, "annotations", f"panoptic_{split}.json"), "COCO panoptic JSON", _HINT)
        pan_dir = require(os.path.join(coco, f"panoptic_{split}"), "COCO panoptic PNG folder", _HINT)
        with open(json_file, encoding="utf-8") as f:
            annotations = json.load(f)["annotations"]
        pairs = [
            (
                (os.path.join(pan_dir, ann["file_name"]), ann["segments_info"]),
                os.path.join(coco, f"panoptic_semseg_{split}", ann["file_name"]),
            )
            for ann in annotations
        ]
        written += convert_label_maps(pairs, convert, f"COCO panoptic->semantic {split}")
    return written
