#!/usr/bin/env python
"""ADE20K-150 panoptic annotations (COCO panoptic format) from the semantic and instance annotations.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations/{training,validation}/*.png           (0 unlabeled, 1..150)
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png  (annotations_instance.tar)
        --catid-mapping (default: ade20k_instance_catid_mapping.txt next to this script)
Output: <root>/ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png and ade20k_panoptic_{train,val}.json
        (at the ADEChallengeData2016 root, not in a panoptic/ subfolder), as the official script writes them:
        category ids are the 0-based ADE-150 indices, stuff segments come from the semantic map and thing segments
        from the instance map (painted last); each segment's area and box are measured before later segments are
        painted and stuff segments covered by things are kept (--visible-areas: measure the painted map and drop
        empty segments instead). Segment ids follow panopticapi's IdGenerator rule, seeded.
Run prepare_ade20k_sem_seg.py too: the panoptic splits also load annotations_detectron2/ as semantic labels.
"""

import sys

from mask_adapter.data.prepare import ade_catid_options, path_next_to, prepare_ade20k_panoptic, standard_main

DEFAULT_MAPPING = path_next_to(__file__, "ade20k_instance_catid_mapping.txt")
OPTIONS = ade_catid_options(DEFAULT_MAPPING) + (
    (
        "--visible-areas",
        {
            "action": "store_true",
            "help": "area/bbox of the pixels left after painting; drop segments left without pixels (not official)",
        },
    ),
)


def prepare(root: str, catid_mapping: str = DEFAULT_MAPPING, visible_areas: bool = False) -> int:
    """Write panoptic PNGs and JSON for both splits; returns the number of PNGs written."""
    return prepare_ade20k_panoptic(root, catid_mapping, visible_areas)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, OPTIONS)


if __name__ == "__main__":
    sys.exit(main())
