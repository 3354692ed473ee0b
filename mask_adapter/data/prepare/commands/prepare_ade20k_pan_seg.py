"""ADE20K-150 panoptic annotations (COCO panoptic format) from the semantic and instance annotations.

Input:  <root>/ADEChallengeData2016/images/{training,validation}/*.jpg
        <root>/ADEChallengeData2016/annotations/{training,validation}/*.png           (0 unlabeled, 1..150)
        <root>/ADEChallengeData2016/annotations_instance/{training,validation}/*.png  (annotations_instance.tar)
        --catid-mapping (default: the copy shipped in mask_adapter/data/vocabularies)
Output: <root>/ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png and ade20k_panoptic_{train,val}.json
        (at the ADEChallengeData2016 root, not in a panoptic/ subfolder), as the official script writes them:
        category ids are the 0-based ADE-150 indices, stuff segments come from the semantic map and thing segments
        from the instance map (painted last); each segment's area and box are measured before later segments are
        painted and stuff segments covered by things are kept (--visible-areas: measure the painted map and drop
        empty segments instead). Segment ids follow panopticapi's IdGenerator rule, seeded.
Run datasets/prepare_ade20k_sem_seg.py too: the panoptic splits also load annotations_detectron2/ as semantic labels.

Command line: ``python datasets/prepare_ade20k_pan_seg.py [--root ROOT] [--catid-mapping FILE] [--visible-areas] [--quiet] [--debug]``.
"""

from .. import ade_catid_options, prepare_ade20k_panoptic, standard_main

__all__ = ["main"]

OPTIONS = ade_catid_options() + (
    (
        "--visible-areas",
        {
            "action": "store_true",
            "help": "area/bbox of the pixels left after painting; drop segments left without pixels (not official)",
        },
    ),
)


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_ade20k_panoptic` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_ade20k_panoptic, argv, OPTIONS)
