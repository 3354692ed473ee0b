"""Pascal Context 59-class semantic labels (PC-59).

Input:  <root>/VOCdevkit/VOC2010/JPEGImages/*.jpg, ImageSets/Main/{train,val}.txt (4,998 / 5,105 images) and the
        459-class label maps: --labels (default <root>/VOCdevkit/VOC2010/trainval) holding the official
        trainval/<id>.mat files (key LabelMap) or pre-extracted <id>.png maps in the same label space. The Detail
        API is not needed.
Output: <root>/pascal_ctx_d2/images/{training,validation}/*.jpg
        <root>/pascal_ctx_d2/annotations_ctx59/{training,validation}/*.png (0..58 in pascal_ctx_59 vocabulary
        order, 255 = unlabeled or one of the other 400 classes)

Command line: ``python datasets/prepare_pascal_ctx_sem_seg.py [--root ROOT] [--labels LABELS] [--quiet] [--debug]``.
"""

from .. import PASCAL_CONTEXT_OPTIONS, prepare_pascal_ctx59, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_pascal_ctx59` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_pascal_ctx59, argv, PASCAL_CONTEXT_OPTIONS)
