"""Mapillary Vistas v1.2 panoptic files in the layout of the registered splits, from either download.

The splits read ``mapillary_vistas/<split>/{images, panoptic/*.png, panoptic/panoptic_2018.json, labels/*.png}``
(Mask2Former / FC-CLIP layout): the v1.2 archive unzips to it as is, while the v2.0 archive keeps the v1.2 files in
``<split>/v1.2/{labels,panoptic}``, which are linked (or copied) into place. The panoptic JSON is checked against
the ``mapillary_vistas`` class table (category ids 1..65 with their thing flags; v2.0's 124 classes are another
label set); the semantic label of class id c is c - 1 (0..64, 65 = unlabeled), and missing label PNGs are rendered
from the panoptic PNG and JSON.

Shapes: label maps (H, W) uint8; panoptic PNGs (H, W, 3) uint8, id = R + 256 G + 256^2 B.
"""

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..metadata import class_table
from .label_io import copy_file, progress, read_rgb, require
from .panoptic import rgb_to_ids
from .runner import TRAIN_VAL_FOLDERS, Option, convert_label_maps

__all__ = [
    "MAPILLARY_HINT",
    "MAPILLARY_UNLABELED",
    "MAPILLARY_PANOPTIC_JSON",
    "mapillary_v12_folder",
    "read_mapillary_panoptic_json",
    "place_folder",
    "mapillary_semantic",
    "MAPILLARY_SPLITS",
    "MAPILLARY_OPTIONS",
    "mapillary_render_label",
    "prepare_mapillary",
]

MAPILLARY_HINT = (
    "download Mapillary Vistas (the v1.2 archive, or v2.0, which holds v1.2 in <split>/v1.2/) from "
    "https://www.mapillary.com/dataset/vistas and unzip it as <root>/mapillary_vistas (datasets/README.md)"
)
# Semantic label value of "unlabeled" (the splits' ignore label); class id c has label value c - 1.
MAPILLARY_UNLABELED = 65
MAPILLARY_PANOPTIC_JSON = "panoptic_2018.json"
MAPILLARY_SPLITS = tuple(folder for _, folder in TRAIN_VAL_FOLDERS)
# Command-line option of the Mapillary Vistas script (``prepare_mapillary(root, copy)``).
MAPILLARY_OPTIONS: tuple[Option, ...] = (
    (
        "--copy",
        {
            "action": "store_true",
            "help": "copy the v1.2/ files of a v2.0 archive instead of linking them",
        },
    ),
)
_REEXTRACT = "re-extract the Mapillary Vistas archive (datasets/README.md)"


def mapillary_v12_folder(split_dir: str) -> str:
    """The folder holding the v1.2 ``panoptic/`` and ``labels/`` of one split.

    Args:
        split_dir: ``mapillary_vistas/training`` or ``mapillary_vistas/validation``.

    Returns:
        ``split_dir`` itself (v1.2 archive) or ``split_dir/v1.2`` (v2.0 archive); neither raises one
        ``FileNotFoundError`` line (saying so when only the v2.0 label set is there).
    """
    require(split_dir, "Mapillary Vistas split folder", MAPILLARY_HINT)
    for folder in (split_dir, os.path.join(split_dir, "v1.2")):
        if os.path.isfile(os.path.join(folder, "panoptic", MAPILLARY_PANOPTIC_JSON)):
            return folder
    if os.path.isdir(os.path.join(split_dir, "v2.0")):
        raise FileNotFoundError(
            f"'{split_dir}' has Mapillary Vistas v2.0 annotations but no "
            f"v1.2/panoptic/{MAPILLARY_PANOPTIC_JSON}; the registered splits use the 65 v1.2 classes: "
            "re-extract the archive with its v1.2/ folders"
        )
    raise FileNotFoundError(
        f"Mapillary Vistas v1.2 panoptic annotations not found at "
        f"'{split_dir}/panoptic/{MAPILLARY_PANOPTIC_JSON}' or "
        f"'{split_dir}/v1.2/panoptic/{MAPILLARY_PANOPTIC_JSON}'; {MAPILLARY_HINT}"
    )


def read_mapillary_panoptic_json(path: str) -> dict[str, Any]:
    """Read a v1.2 ``panoptic_2018.json`` and check its classes against the ``mapillary_vistas`` class table.

    Every class of the table must be listed with its id and thing flag, and every segment must use one of them;
    otherwise one ``ValueError`` line names the file and the first mismatch.

    Returns:
        The JSON (images, annotations, categories).
    """
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        listed = {c["id"]: bool(c["isthing"]) for c in info["categories"]}
        annotations = info["annotations"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(
            f"Cannot read '{path}' as a COCO panoptic JSON ({type(e).__name__}: {e}); re-extract it from the archive"
        ) from None
    for c in class_table("mapillary_vistas"):
        if listed.get(c.dataset_id) != c.isthing:
            raise ValueError(
                f"'{path}' does not list class id {c.dataset_id} ({c.names.split(',')[0]}) with isthing="
                f"{int(c.isthing)}; expected the Mapillary Vistas v1.2 {MAPILLARY_PANOPTIC_JSON} (65 classes)"
            )
    valid = {c.dataset_id for c in class_table("mapillary_vistas")}
    for ann in annotations:
        for seg in ann["segments_info"]:
            if seg["category_id"] not in valid:
                raise ValueError(
                    f"'{path}': segment {seg['id']} of '{ann['file_name']}' has category id "
                    f"{seg['category_id']}, not one of the 65 v1.2 classes (1..65)"
                )
    return info


def place_folder(src: str, dst: str, copy: bool, desc: str) -> None:
    """Make ``dst`` hold the files of folder ``src``: a relative symbolic link, or file copies when ``copy``.

    Nothing happens when ``dst`` is ``src`` or already exists (a broken link raises one ``FileNotFoundError``
    line); copies skip files that exist.
    """
    if os.path.abspath(src) == os.path.abspath(dst):
        return
    if os.path.lexists(dst) and not os.path.exists(dst):
        raise FileNotFoundError(
            f"'{dst}' is a broken link (to '{os.readlink(dst)}'); delete it and run the script again"
        )
    if copy:
        for name in progress(sorted(os.listdir(src)), desc):
            copy_file(os.path.join(src, name), os.path.join(dst, name))
    elif not os.path.exists(dst):
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst, target_is_directory=True)


def mapillary_semantic(pan_rgb: np.ndarray, segments: list[Mapping[str, Any]], path: str) -> np.ndarray:
    """(H, W) uint8 semantic labels (class id - 1, 65 unlabeled) of one panoptic PNG and its segments_info.

    A segment id listed in ``segments`` but absent from the PNG is fine (it has no pixels); a non-zero PNG id
    without a segment raises one ``ValueError`` line naming ``path``.
    """
    ids = rgb_to_ids(pan_rgb)
    values, inverse = np.unique(ids, return_inverse=True)
    by_id: dict[int, int] = {int(s["id"]): int(s["category_id"]) - 1 for s in segments}
    lut: list[int | None] = [by_id.get(v, MAPILLARY_UNLABELED if v == 0 else None) for v in values.tolist()]
    missing = [int(v) for v, label in zip(values.tolist(), lut, strict=True) if label is None]
    if missing:
        raise ValueError(
            f"Panoptic PNG '{path}' has segment id {missing[0]}, which its segments_info does not list; "
            "re-extract the panoptic PNGs and JSON from the same archive"
        )
    return np.asarray(lut, dtype=np.uint8)[inverse.reshape(ids.shape)]


def mapillary_render_label(panoptic: str, ann: Mapping[str, Any]) -> np.ndarray:
    """Semantic labels of one panoptic JSON annotation, from its PNG in the ``panoptic`` folder."""
    path = os.path.join(panoptic, ann["file_name"])
    return mapillary_semantic(read_rgb(path), ann["segments_info"], path)


def prepare_mapillary(root: str, copy: bool = False) -> int:
    """Place and check both splits of ``<root>/mapillary_vistas`` (see the module docstring).

    Args:
        root: dataset root.
        copy: copy the ``v1.2/`` folders of a v2.0 archive instead of linking them.

    Returns:
        The number of label PNGs rendered from panoptic PNGs.
    """
    written = 0
    for split in MAPILLARY_SPLITS:
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
                functools.partial(mapillary_render_label, panoptic),
                f"Mapillary labels {split}",
            )
    return written
