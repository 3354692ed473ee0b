#!/usr/bin/env python
"""ADE20K-847 (ADE20K_2021_17_01 full) semantic labels for detectron2.

Input:  <root>/ADE20K_2021_17_01 (the official README's layout) or <root>/ade/ADE20K_2021_17_01 (the folder the
        official script reads): index_ade20k.pkl (lists "folder" and "filename") and the images with their
        *_seg.png annotations (object class = R / 10 * 256 + G). Without the index file, every
        images/ADE/{training,validation}/**/*.jpg is used.
Output: <root>/ADE20K_2021_17_01/images_detectron2/{training,validation}/*.jpg and
        <root>/ADE20K_2021_17_01/annotations_detectron2/{training,validation}/*.tif (uint16: 0..846 in ade20k_847
        vocabulary order, 65535 = ignore), where the registered splits read them. Images whose shorter side exceeds
        512 are resized to 512 (labels with nearest neighbour), as in the official script.
"""

import sys

from mask_adapter.data.prepare import prepare_ade20k_full, standard_main


def prepare(root: str) -> int:
    """Convert every listed image; returns the number of label files written."""
    return prepare_ade20k_full(root)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
