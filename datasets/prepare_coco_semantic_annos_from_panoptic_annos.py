#!/usr/bin/env python
"""COCO panoptic -> semantic labels (133 classes) for the *_panoptic_with_sem_seg splits.

Input:  <root>/coco/annotations/panoptic_{train,val}2017.json and <root>/coco/panoptic_{train,val}2017/*.png
Output: <root>/coco/panoptic_semseg_{train,val}2017/*.png  (0..132 in coco_panoptic vocabulary order, 255 = void)
"""

import json
import os
import sys

import numpy as np

from mask_adapter.data.prepare import (
    convert_label_maps,
    read_rgb,
    require,
    rgb_to_ids,
    standard_main,
    vocab_id_to_index,
)

SPLITS = ("train2017", "val2017")
_HINT = "download panoptic_annotations_trainval2017.zip (datasets/README.md) and unzip the PNG archives"


def panoptic_to_semantic(pan_rgb: np.ndarray, segments: list[dict], id_map: dict[int, int]) -> np.ndarray:
    """(H, W, 3) panoptic PNG + segments_info -> (H, W) uint8 semantic map (255 where void)."""
    ids = rgb_to_ids(pan_rgb)
    sem = np.full(ids.shape, 255, dtype=np.uint8)
    for seg in segments:
        sem[ids == seg["id"]] = id_map[seg["category_id"]]
    return sem


def prepare(root: str, splits=SPLITS) -> int:
    """Convert the given splits; returns the number of files written."""
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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
