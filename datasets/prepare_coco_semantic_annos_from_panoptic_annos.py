#!/usr/bin/env python
"""COCO panoptic -> semantic labels (133 classes) for the *_panoptic_with_sem_seg splits.

Input:  <root>/coco/annotations/panoptic_{train,val}2017.json and <root>/coco/panoptic_{train,val}2017/*.png
Output: <root>/coco/panoptic_semseg_{train,val}2017/*.png  (0..132 in coco_panoptic vocabulary order, 255 = void)
"""

import json
import os
import sys
from typing import Dict, List, Optional

import numpy as np

from mask_adapter.data.prepare_utils import (
    base_parser,
    progress,
    read_rgb,
    require,
    vocab_id_to_index,
    write_label,
)

SPLITS = ("train2017", "val2017")


def panoptic_to_semantic(
    pan_rgb: np.ndarray, segments: List[Dict], id_map: Dict[int, int]
) -> np.ndarray:
    """(H, W, 3) panoptic PNG + segments_info -> (H, W) uint8 semantic map (255 where void)."""
    pan = pan_rgb.astype(np.int64)
    ids = pan[:, :, 0] + 256 * pan[:, :, 1] + 65536 * pan[:, :, 2]
    sem = np.full(ids.shape, 255, dtype=np.uint8)
    for seg in segments:
        sem[ids == seg["id"]] = id_map[seg["category_id"]]
    return sem


def prepare(root: str, splits=SPLITS) -> int:
    """Convert the given splits; returns the number of files written."""
    coco, id_map, written = os.path.join(root, "coco"), vocab_id_to_index("coco_panoptic"), 0
    hint = "download panoptic_annotations_trainval2017.zip (datasets/README.md) and unzip the PNG archives"
    for split in splits:
        json_file = require(
            os.path.join(coco, "annotations", f"panoptic_{split}.json"), "COCO panoptic JSON", hint
        )
        pan_dir = require(os.path.join(coco, f"panoptic_{split}"), "COCO panoptic PNG folder", hint)
        with open(json_file, encoding="utf-8") as f:
            annotations = json.load(f)["annotations"]
        for ann in progress(annotations, f"COCO panoptic->semantic {split}"):
            out = os.path.join(coco, f"panoptic_semseg_{split}", ann["file_name"])
            if os.path.exists(out):
                continue
            pan = read_rgb(require(os.path.join(pan_dir, ann["file_name"]), "Panoptic PNG", hint))
            write_label(out, panoptic_to_semantic(pan, ann["segments_info"], id_map))
            written += 1
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    prepare(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
