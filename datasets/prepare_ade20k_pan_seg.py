#!/usr/bin/env python
"""ADE20K-150 panoptic annotations (COCO panoptic format) from the semantic and instance annotations.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations/{training,validation}/*.png           (0 unlabeled, 1..150)
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png  (annotations_instance.tar)
        --catid-mapping (default: ade20k_instance_catid_mapping.txt next to this script)
Output: <root>/ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png and ade20k_panoptic_{train,val}.json
        (at the ADEChallengeData2016 root, not in a panoptic/ subfolder). Category ids are the 0-based ADE-150
        indices; stuff segments come from the semantic map, thing segments from the instance map (pasted last).
Run prepare_ade20k_sem_seg.py too: the panoptic splits also load annotations_detectron2/ as semantic labels.
"""

import glob
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from mask_adapter.data.metadata import class_table
from mask_adapter.data.prepare_utils import (
    ade_instances,
    base_parser,
    mask_bbox,
    progress,
    read_ade_catid_mapping,
)
from mask_adapter.data.prepare_utils import read_label, read_rgb, require, write_label

SPLITS = (("train", "training"), ("val", "validation"))
DEFAULT_MAPPING = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "ade20k_instance_catid_mapping.txt"
)
_HINT = "download ADEChallengeData2016.zip and annotations_instance.tar (datasets/README.md)"


def panoptic_image(
    semantic: np.ndarray, instances: List[tuple], things: set
) -> Tuple[np.ndarray, List[Dict]]:
    """Semantic map (0 unlabeled, 1..150) + instances -> (panoptic RGB PNG, segments_info)."""
    seg_ids = np.zeros(semantic.shape, dtype=np.int64)
    infos, next_id = [], 1
    sem0 = semantic.astype(np.int64) - 1
    stuff_and_things = [
        (int(c), sem0 == c) for c in np.unique(sem0) if c >= 0 and int(c) not in things
    ]
    stuff_and_things += list(instances)
    for cat, mask in stuff_and_things:
        seg_ids[mask] = next_id
        infos.append({"id": next_id, "category_id": int(cat), "iscrowd": 0})
        next_id += 1
    kept = []
    for info in infos:  # later things may have covered earlier segments
        mask = seg_ids == info["id"]
        if mask.any():
            kept.append(dict(info, area=int(mask.sum()), bbox=mask_bbox(mask)))
    rgb = np.stack([seg_ids % 256, seg_ids // 256 % 256, seg_ids // 65536], axis=-1).astype(
        np.uint8
    )
    return rgb, kept


def prepare(root: str, catid_mapping: str = DEFAULT_MAPPING) -> int:
    """Write panoptic PNGs and JSON for both splits; returns the number of PNGs written."""
    ade = os.path.join(root, "ADEChallengeData2016")
    mapping = read_ade_catid_mapping(catid_mapping)
    classes = class_table("ade20k_150")
    things = {c.dataset_id for c in classes if c.isthing}
    categories = [
        {
            "id": c.dataset_id,
            "name": c.names.split(",")[0],
            "isthing": int(c.isthing),
            "color": list(c.color),
        }
        for c in classes
    ]
    written = 0
    for name, split in SPLITS:
        image_dir = require(os.path.join(ade, "images", split), "ADE20K images", _HINT)
        sem_dir = require(os.path.join(ade, "annotations", split), "ADE20K annotations", _HINT)
        ins_dir = require(
            os.path.join(ade, "annotations_instance", split), "ADE20K instance annotations", _HINT
        )
        out_dir, images, annotations = os.path.join(ade, f"ade20k_panoptic_{name}"), [], []
        for path in progress(
            sorted(glob.glob(os.path.join(image_dir, "*.jpg"))), f"ADE20K panoptic {name}"
        ):
            stem = os.path.splitext(os.path.basename(path))[0]
            semantic = read_label(
                require(os.path.join(sem_dir, stem + ".png"), "ADE20K annotation", _HINT)
            )
            ins_path = require(
                os.path.join(ins_dir, stem + ".png"), "ADE20K instance annotation", _HINT
            )
            rgb, segments = panoptic_image(
                semantic, ade_instances(read_rgb(ins_path), mapping, ins_path), things
            )
            images.append(
                {
                    "id": stem,
                    "file_name": stem + ".jpg",
                    "height": int(rgb.shape[0]),
                    "width": int(rgb.shape[1]),
                }
            )
            annotations.append(
                {"image_id": stem, "file_name": stem + ".png", "segments_info": segments}
            )
            out = os.path.join(out_dir, stem + ".png")
            if not os.path.exists(out):
                write_label(out, rgb)
                written += 1
        with open(os.path.join(ade, f"ade20k_panoptic_{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--catid-mapping", default=DEFAULT_MAPPING, help="ade20k_instance_catid_mapping.txt"
    )
    args = parser.parse_args(argv)
    prepare(args.root, args.catid_mapping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
