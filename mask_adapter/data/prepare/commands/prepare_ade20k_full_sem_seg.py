"""ADE20K-847 (ADE20K_2021_17_01 full) semantic labels for detectron2.

Input:  <root>/ADE20K_2021_17_01 (the official README's layout) or <root>/ade/ADE20K_2021_17_01 (the folder the
        official script reads): index_ade20k.pkl (lists "folder" and "filename") and the images with their
        *_seg.png annotations (object class = R / 10 * 256 + G). Without the index file, every
        images/ADE/{training,validation}/**/*.jpg is used.
Output: <root>/ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg and
        <root>/ADE20K_2021_17_01/annotations_detectron2/{training,validation}/*.tif (uint16: 0..846 in ade20k_847
        vocabulary order, 65535 = ignore), where the registered splits read them. Images whose shorter side exceeds
        512 are resized to 512 (labels with nearest neighbour), as in the official script.

Command line: ``python datasets/prepare_ade20k_full_sem_seg.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_ade20k_full, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_ade20k_full` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_ade20k_full, argv)
