#!/usr/bin/env python
"""Mapillary Vistas v1.2 panoptic splits (65 classes) in the layout the registered splits read.

Input:  <root>/mapillary_vistas/{training,validation}/images/*.jpg and the v1.2 annotations, either
        {training,validation}/{panoptic/*.png, panoptic/panoptic_2018.json, labels/*.png}   (v1.2 archive) or
        {training,validation}/v1.2/{panoptic/..., labels/...}                               (v2.0 archive)
Output: <root>/mapillary_vistas/{training,validation}/{panoptic,labels}: for the v2.0 archive, relative links to
        (with --copy: copies of) the v1.2/ folders; label PNGs (class id - 1, 65 = unlabeled) missing from the
        download are rendered from the panoptic PNGs. The panoptic JSON is checked against the 65 v1.2 classes and
        every image, panoptic PNG and label it lists must exist.
"""

import functools
import os
import sys
from typing import Any

import numpy as np

from mask_adapter.data.prepare import (
    MAPILLARY_HINT,
    MAPILLARY_PANOPTIC_JSON,
    TRAIN_VAL_FOLDERS,
    convert_label_maps,
    mapillary_semantic,
    mapillary_v12_folder,
    place_folder,
    read_mapillary_panoptic_json,
    read_rgb,
    require,
    standard_main,
)

SPLITS = tuple(folder for _, folder in TRAIN_VAL_FOLDERS)
OPTIONS = (
    (
        "--copy",
        {
            "action": "store_true",
            "help": "copy the v1.2/ files of a v2.0 archive instead of linking them",
        },
    ),
)
_REEXTRACT = "re-extract the Mapillary Vistas archive (datasets/README.md)"


def prepare(root: str, copy: bool = False) -> int:
    """Place and check both splits; returns the number of label PNGs rendered from panoptic PNGs."""
    written = 0
    for split in SPLITS:
        split_dir = os.path.join(root, "mapillary_vistas", split)
        source = mapillary_v12_folder(split_dir)
        images = require(os.path.join(split_dir, "images"), "Mapillary Vistas images", MAPILLARY_HINT)
        panoptic, labels = os.path.join(split_dir, "panoptic"), os.path.join(split_dir, "labels")
        place_folder(os.path.join(source, "panoptic"), panoptic, copy, f"Mapillary panoptic {split}")
        json_path = os.path.join(panoptic, MAPILLARY_PANOPTIC_JSON)
        annotations = read_mapillary_panoptic_json(json_path)["annotations"]
        if not annotations:
            raise ValueError(f"'{json_path}' lists no annotation; {_REEXTRACT}")
        linked = source != split_dir and os.path.isdir(os.path.join(source, "labels"))
        if linked:
            place_folder(os.path.join(source, "labels"), labels, copy, f"Mapillary labels {split}")
        for ann in annotations:
            stem = os.path.splitext(ann["file_name"])[0]
            require(os.path.join(images, stem + ".jpg"), "Mapillary Vistas image", MAPILLARY_HINT)
            require(
                os.path.join(panoptic, ann["file_name"]),
                "Mapillary Vistas panoptic PNG",
                _REEXTRACT,
            )
            if linked:
                require(os.path.join(labels, ann["file_name"]), "Mapillary Vistas label PNG", _REEXTRACT)
        if not linked:
            written += convert_label_maps(
                [(ann, os.path.join(labels, ann["file_name"])) for ann in annotations],
                functools.partial(render_label, panoptic),
                f"Mapillary labels {split}",
            )
    return written


def render_label(panoptic: str, ann: dict[str, Any]) -> np.ndarray:
    """Semantic labels of one JSON annotation, from its PNG in the ``panoptic`` folder."""
    path = os.path.join(panoptic, ann["file_name"])
    return mapillary_semantic(read_rgb(path), ann["segments_info"], path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return standard_main(__doc__, prepare, argv, OPTIONS)


if __name__ == "__main__":
    sys.exit(main())
