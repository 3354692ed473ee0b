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

import os
import sys

import numpy as np

from mask_adapter.data.metadata import class_table
from mask_adapter.data.prepare import (
    TRAIN_VAL_FOLDERS,
    ade_catid_options,
    ade_image_entry,
    ade_instances,
    ade_split_images,
    ids_to_rgb,
    mask_bbox,
    path_next_to,
    read_ade_catid_mapping,
    read_label,
    read_rgb,
    standard_main,
    write_coco_json,
    write_label,
)

SPLITS = TRAIN_VAL_FOLDERS
DEFAULT_MAPPING = path_next_to(__file__, "ade20k_instance_catid_mapping.txt")
_ANNOTATIONS = (
    ("annotations", "ADE20K annotation"),
    ("annotations_instance", "ADE20K instance annotation"),
)


def panoptic_image(semantic: np.ndarray, instances: list[tuple], things: set) -> tuple[np.ndarray, list[dict]]:
    """Semantic map (0 unlabeled, 1..150) + instances -> (panoptic RGB PNG, segments_info)."""
    seg_ids = np.zeros(semantic.shape, dtype=np.int64)
    infos, next_id = [], 1
    sem0 = semantic.astype(np.int64) - 1
    stuff_and_things = [(int(c), sem0 == c) for c in np.unique(sem0) if c >= 0 and int(c) not in things]
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
    return ids_to_rgb(seg_ids), kept


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
        out_dir, images, annotations = os.path.join(ade, f"ade20k_panoptic_{name}"), [], []
        for stem, (sem_path, ins_path) in ade_split_images(ade, split, f"ADE20K panoptic {name}", _ANNOTATIONS):
            rgb, segments = panoptic_image(
                read_label(sem_path), ade_instances(read_rgb(ins_path), mapping, ins_path), things
            )
            images.append(ade_image_entry(stem, rgb.shape))
            annotations.append({"image_id": stem, "file_name": stem + ".png", "segments_info": segments})
            out = os.path.join(out_dir, stem + ".png")
            if not os.path.exists(out):
                write_label(out, rgb)
                written += 1
        write_coco_json(os.path.join(ade, f"ade20k_panoptic_{name}.json"), images, annotations, categories)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, ade_catid_options(DEFAULT_MAPPING))


if __name__ == "__main__":
    sys.exit(main())
