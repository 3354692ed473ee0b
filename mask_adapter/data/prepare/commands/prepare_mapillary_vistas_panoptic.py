"""Mapillary Vistas v1.2 panoptic splits (65 classes) in the layout the registered splits read.

Input:  <root>/mapillary_vistas/{training,validation}/images/*.jpg and the v1.2 annotations, either
        {training,validation}/{panoptic/*.png, panoptic/panoptic_2018.json, labels/*.png}   (v1.2 archive) or
        {training,validation}/v1.2/{panoptic/..., labels/...}                               (v2.0 archive)
Output: <root>/mapillary_vistas/{training,validation}/{panoptic,labels}: for the v2.0 archive, relative links to
        (with --copy: copies of) the v1.2/ folders; label PNGs (class id - 1, 65 = unlabeled) missing from the
        download are rendered from the panoptic PNGs. The panoptic JSON is checked against the 65 v1.2 classes and
        every image, panoptic PNG and label it lists must exist.

Command line: ``python datasets/prepare_mapillary_vistas_panoptic.py [--root ROOT] [--copy] [--quiet] [--debug]``.
"""

from .. import MAPILLARY_OPTIONS, prepare_mapillary, standard_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run :func:`.prepare_mapillary` with ``argv`` (default: the command line); returns the exit code."""
    return standard_main(__doc__, prepare_mapillary, argv, MAPILLARY_OPTIONS)
