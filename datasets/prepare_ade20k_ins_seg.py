#!/usr/bin/env python
"""ADE20K instance annotations (COCO instances JSON, 100 thing classes) for instance evaluation.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png (R = class 1..100, G = instance)
        --catid-mapping (default: ade20k_instance_catid_mapping.txt next to this script)
Output: <root>/ADEChallengeData2016/ade20k_instance_{train,val}.json, as the official script writes it: category
        ids are the 0-based ADE-150 indices shared with the panoptic annotations, category names those of the
        official ade20k_instance_imgCatIds.json (shipped in the package; the file itself is not needed).
"""

import sys

from mask_adapter.data.prepare import ade_catid_options, path_next_to, prepare_ade20k_instances, standard_main

DEFAULT_MAPPING = path_next_to(__file__, "ade20k_instance_catid_mapping.txt")


def prepare(root: str, catid_mapping: str = DEFAULT_MAPPING) -> list[str]:
    """Write the instance JSON of both splits (skipped when it exists); returns the written paths."""
    return prepare_ade20k_instances(root, catid_mapping)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, ade_catid_options(DEFAULT_MAPPING))


if __name__ == "__main__":
    sys.exit(main())
