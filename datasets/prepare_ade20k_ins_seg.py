#!/usr/bin/env python
"""ADE20K instance annotations (COCO instances JSON, 100 thing classes) for instance evaluation.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png (R = class 1..100, G = instance)
        --catid-mapping (default: ade20k_instance_catid_mapping.txt next to this script)
Output: <root>/ADEChallengeData2016/ade20k_instance_{train,val}.json; category ids are the 0-based ADE-150
        indices shared with the panoptic annotations; category names come from the ade20k_150 vocabulary (the
        official ade20k_instance_imgCatIds.json is not needed).
"""

import glob
import json
import os
import sys
from typing import List, Optional

import numpy as np
import pycocotools.mask as mask_util

from mask_adapter.data.metadata import class_table
from mask_adapter.data.prepare_utils import (
    ade_instances,
    base_parser,
    mask_bbox,
    progress,
    read_ade_catid_mapping,
)
from mask_adapter.data.prepare_utils import read_rgb, require

SPLITS = (("train", "training"), ("val", "validation"))
DEFAULT_MAPPING = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "ade20k_instance_catid_mapping.txt"
)
_HINT = "download ADEChallengeData2016.zip and annotations_instance.tar (datasets/README.md)"


def prepare(root: str, catid_mapping: str = DEFAULT_MAPPING) -> List[str]:
    """Write the instance JSON of both splits (skipped when it exists); returns the written paths."""
    ade = os.path.join(root, "ADEChallengeData2016")
    mapping = read_ade_catid_mapping(catid_mapping)
    categories = [
        {"id": c.dataset_id, "name": c.names.split(",")[0]}
        for c in class_table("ade20k_150")
        if c.isthing
    ]
    written = []
    for name, split in SPLITS:
        out = os.path.join(ade, f"ade20k_instance_{name}.json")
        if os.path.exists(out):
            continue
        image_dir = require(os.path.join(ade, "images", split), "ADE20K images", _HINT)
        ins_dir = require(
            os.path.join(ade, "annotations_instance", split), "ADE20K instance annotations", _HINT
        )
        images, annotations = [], []
        for path in progress(
            sorted(glob.glob(os.path.join(image_dir, "*.jpg"))), f"ADE20K instances {name}"
        ):
            stem = os.path.splitext(os.path.basename(path))[0]
            ins_path = require(
                os.path.join(ins_dir, stem + ".png"), "ADE20K instance annotation", _HINT
            )
            rgb = read_rgb(ins_path)
            images.append(
                {
                    "id": stem,
                    "file_name": stem + ".jpg",
                    "height": int(rgb.shape[0]),
                    "width": int(rgb.shape[1]),
                }
            )
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
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
        written.append(out)
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
