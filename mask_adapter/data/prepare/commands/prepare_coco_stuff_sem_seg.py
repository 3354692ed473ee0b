"""COCO-Stuff-171 semantic labels for detectron2 (mmcv-free).

Input:  <root>/coco/stuffthingmaps/{train2017,val2017}/*.png (the official layout) or, when that folder is missing,
        <root>/coco/stuffthingmaps_trainval2017/{train2017,val2017}/*.png  (COCO id - 1, i.e. 0..181; 255 unlabeled)
Output: <root>/coco/stuffthingmaps_detectron2/{train2017,val2017}/*.png  (0..170 in coco_stuff vocabulary order,
        255 = ignore). Maps that are entirely ignore are skipped. The full dataset has 123,287 maps.

Command line: ``python datasets/prepare_coco_stuff_sem_seg.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_coco_stuff, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_coco_stuff` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_coco_stuff, argv)
