"""Pascal VOC 2012 semantic labels: PAS-21 (with background) and PAS-20 (background ignored).

Input:  <root>/VOCdevkit/VOC2012/JPEGImages/*.jpg, SegmentationClass/*.png (palette indices 0..20, 255 border),
        ImageSets/Segmentation/{train,val}.txt
Output: <root>/pascal_voc_d2/images/{training,validation}/*.jpg
        <root>/pascal_voc_d2/annotations_pascal21/{training,validation}/*.png  (0 background, 1..20, 255 ignore)
        <root>/pascal_voc_d2/annotations_pascal20/{training,validation}/*.png  (0..19 = VOC id - 1; background and
        the border -> 255)

Command line: ``python datasets/prepare_pascal_voc_sem_seg.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_pascal_voc, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_pascal_voc` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_pascal_voc, argv)
