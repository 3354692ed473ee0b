"""ADE20K instance annotations (COCO instances JSON, 100 thing classes) for instance evaluation.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png (R = class 1..100, G = instance)
        --catid-mapping (default: the copy shipped in mask_adapter/data/vocabularies)
Output: <root>/ADEChallengeData2016/ade20k_instance_{train,val}.json, as the official script writes it: category
        ids are the 0-based ADE-150 indices shared with the panoptic annotations, category names those of the
        official ade20k_instance_imgCatIds.json (shipped in the package; the file itself is not needed).

Command line: ``python datasets/prepare_ade20k_ins_seg.py [--root ROOT] [--catid-mapping FILE] [--quiet] [--debug]``.
"""

from .. import ade_catid_options, prepare_ade20k_instances, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_ade20k_instances` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_ade20k_instances, argv, ade_catid_options())
