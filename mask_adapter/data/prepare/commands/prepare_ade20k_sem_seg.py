"""ADE20K-150 (SceneParsing) semantic labels for detectron2.

Input:  <root>/ADEChallengeData2016/annotations/{training,validation}/*.png  (0 = unlabeled, 1..150)
Output: <root>/ADEChallengeData2016/annotations_detectron2/{training,validation}/*.png  (0..149, 255 = ignore)

Command line: ``python datasets/prepare_ade20k_sem_seg.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_ade20k_semantic, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_ade20k_semantic` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_ade20k_semantic, argv)
