"""COCO panoptic -> semantic labels (133 classes) for the *_panoptic_with_sem_seg splits.

Input:  <root>/coco/annotations/panoptic_{train,val}2017.json and <root>/coco/panoptic_{train,val}2017/*.png
Output: <root>/coco/panoptic_semseg_{train,val}2017/*.png  (0..132 in coco_panoptic vocabulary order, 255 = void)

Command line: ``python datasets/prepare_coco_semantic_annos_from_panoptic_annos.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_coco_panoptic_semantic, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_coco_panoptic_semantic` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_coco_panoptic_semantic, argv)
