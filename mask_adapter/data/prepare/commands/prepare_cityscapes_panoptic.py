"""Cityscapes panoptic annotations (cityscapesScripts format) and train-id label maps from the fine annotations.

Input:  <root>/cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
        <root>/cityscapes/gtFine/{train,val}/<city>/*_gtFine_{instanceIds,labelIds}.png
Output: <root>/cityscapes/gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png  (0..18, 255 = ignore)
        <root>/cityscapes/gtFine/cityscapes_panoptic_{train,val}/*_gtFine_panoptic.png and
        <root>/cityscapes/gtFine/cityscapes_panoptic_{train,val}.json (category ids = Cityscapes label ids),
        as cityscapesScripts' createTrainIdLabelImgs and createPanopticImgs write them (cityscapesscripts is not
        needed). A split whose JSON and files all exist is skipped.

Command line: ``python datasets/prepare_cityscapes_panoptic.py [--root ROOT] [--quiet] [--debug]``.
"""

from .. import prepare_cityscapes, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_cityscapes` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_cityscapes, argv)
