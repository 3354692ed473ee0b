"""Pascal Context full 459-class semantic labels (PC-459).

Input:  as datasets/prepare_pascal_ctx_sem_seg.py (VOC2010 images, ImageSets/Main/{train,val}.txt, 459-class label maps
        from trainval/<id>.mat or pre-extracted <id>.png; no Detail API needed).
Output: <root>/pascal_ctx_d2/images/{training,validation}/*.jpg
        <root>/pascal_ctx_d2/annotations_ctx459/{training,validation}/*.tif (uint16: label - 1 = 0..458 in
        pascal_ctx_459 vocabulary order, 65535 = unlabeled)

Command line: ``python datasets/prepare_pascal_ctx_full_sem_seg.py [--root ROOT] [--labels LABELS] [--quiet] [--debug]``.
"""

from .. import PASCAL_CONTEXT_OPTIONS, prepare_pascal_ctx459, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_pascal_ctx459` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_pascal_ctx459, argv, PASCAL_CONTEXT_OPTIONS)
