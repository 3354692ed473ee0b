#!/usr/bin/env python
"""ADE20K instance annotations (COCO instances JSON, 100 thing classes) for instance evaluation.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png (R = class 1..100, G = instance)
        --catid-mapping (default: ade20k_instance_catid_mapping.txt next to this script)
Output: <root>/ADEChallengeData2016/ade20k_instance_{train,val}.json; category ids are the 0-based ADE-150
        indices shared with the panoptic annotations; category names come from the ade20k_150 vocabulary (the
        official ade20k_instance_imgCatIds.json is not needed).
"""

import os
import sys

import numpy as np
import pycocotools.mask as mask_util

from mask_adapter.data.metadata import class_table
from mask_adapter.data.prepare import (
    TRAIN_VAL_FOLDERS,
    ade_catid_options,
    ade_image_entry,
    ade_instances,
    ade_split_images,
    mask_bbox,
    path_next_to,
    read_ade_catid_mapping,
    read_rgb,
    standard_main,
    write_coco_json,
)

SPLITS = TRAIN_VAL_FOLDERS
DEFAULT_MAPPING = path_next_to(__file__, "ade20k_instance_catid_mapping.txt")
_INSTANCES = (("annotations_instance", "ADE20K instance annotation"),)


def prepare(root: str, catid_mapping: str = DEFAULT_MAPPING) -> list[str]:
    """Write the instance JSON of both splits (skipped when it exists); returns the written paths."""
    ade = os.path.join(root, "ADEChallengeData2016")
    mapping = read_ade_catid_mapping(catid_mapping)
    categories = [{"id": c.dataset_id, "name": c.names.split(",")[0]} for c in class_table("ade20k_150") if c.isthing]
    written = []
    for name, split in SPLITS:
        out = os.path.join(ade, f"ade20k_instance_{name}.json")
        if os.path.exists(out):
            continue
        images, annotations = [], []
        for stem, (ins_path,) in ade_split_images(ade, split, f"ADE20K instances {name}", _INSTANCES):
            rgb = read_rgb(ins_path)
            images.append(ade_image_entry(stem, rgb.shape))
            for cat, mask in ade_instances(rgb, mapping, ins_path):
                rle = mask_util.encode(np.asfortranarray(mask[:, :, None].astype(np.uint8)))[0]
                rle["counts"] = rle["counts"].decode("utf-8")
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": stem,
                        "category_id": int(cat),
                        "iscrowd": 0,
                        "bbox": mask_bbox(mask),
                        "area": int(mask.sum()),
                        "segmentation": rle,
                    }
                )
        write_coco_json(out, images, annotations, categories)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, ade_catid_options(DEFAULT_MAPPING))


if __name__ == "__main__":
    sys.exit(main())
