"""Lazy dataset loaders: list the records of one split in detectron2's standard dataset-dict format.

Every loader first checks that the split's folders/files exist and raises one ``FileNotFoundError`` line naming
the expected path and the ``datasets/prepare_*.py`` script that creates it. Annotation images are not opened here;
mappers and evaluators read them.
"""

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from detectron2.data.datasets import load_coco_json, load_sem_seg
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json

__all__ = [
    "missing_path_error",
    "require_paths",
    "load_sem_seg_split",
    "load_panoptic_split",
    "load_instance_split",
    "load_cityscapes_split",
]

logger = logging.getLogger(__name__)


def missing_path_error(dataset: str, path: str, prepare: str) -> FileNotFoundError:
    """One-line error for a missing dataset folder/file, naming the preparation script."""
    script = prepare if "/" in prepare else f"datasets/{prepare}"
    hint = f"run `python {script}`" if prepare else "prepare it as datasets/README.md describes"
    return FileNotFoundError(
        f"Dataset '{dataset}': expected '{path}', which does not exist; {hint} (datasets/README.md) or set "
        "DETECTRON2_DATASETS to the folder that holds it"
    )


def require_paths(dataset: str, prepare: str, *paths: str) -> None:
    """Raise :func:`missing_path_error` for the first path that does not exist."""
    for path in paths:
        if path and not os.path.exists(path):
            raise missing_path_error(dataset, path, prepare)


def load_sem_seg_split(
    dataset: str, image_root: str, gt_root: str, *, gt_ext: str, image_ext: str, prepare: str
) -> list[dict[str, Any]]:
    """Records {file_name, sem_seg_file_name} of a semantic split, via detectron2's ``load_sem_seg``.

    Args:
        dataset: split name (for errors).
        image_root, gt_root: image and label folders; files are matched by their relative path without extension.
        gt_ext, image_ext: file extensions ("png"/"tif", "jpg").
        prepare: preparation script named in errors.

    Returns:
        The records, sorted by file name.
    """
    require_paths(dataset, prepare, image_root, gt_root)
    for folder, ext in ((image_root, image_ext), (gt_root, gt_ext)):
        if not any(f.endswith(ext) for f in os.listdir(folder)):
            raise FileNotFoundError(
                f"Dataset '{dataset}': no '*.{ext}' file directly in '{folder}' (sub-folders are not searched); "
                f"check the folder or run the preparation script ({prepare or 'datasets/README.md'})"
            )
    _warn_unlabeled_images(dataset, image_root, gt_root, image_ext, gt_ext, prepare)
    records = load_sem_seg(gt_root, image_root, gt_ext=gt_ext, image_ext=image_ext)
    if not records:
        raise FileNotFoundError(
            f"Dataset '{dataset}': no '*.{image_ext}' image in '{image_root}' has a '*.{gt_ext}' label in "
            f"'{gt_root}'; check the folders or run the preparation script ({prepare or 'datasets/README.md'})"
        )
    return records


def _warn_unlabeled_images(
    dataset: str, image_root: str, gt_root: str, image_ext: str, gt_ext: str, prepare: str
) -> None:
    """One warning line naming the images without a label file (detectron2 then leaves them out)."""
    images = {os.path.splitext(f)[0]: f for f in os.listdir(image_root) if f.endswith(image_ext)}
    labels = {os.path.splitext(f)[0] for f in os.listdir(gt_root) if f.endswith(gt_ext)}
    missing = sorted(stem for stem in images if stem not in labels)
    if missing:
        logger.warning(
            "Dataset '%s': %d of %d images have no label file and are left out (e.g. %s has no %s); re-run the "
            "preparation script (%s) if that is not intended",
            dataset,
            len(missing),
            len(images),
            os.path.join(image_root, images[missing[0]]),
            os.path.join(gt_root, f"{missing[0]}.{gt_ext}"),
            prepare or "datasets/README.md",
        )


def load_panoptic_split(
    dataset: str,
    json_file: str,
    image_root: str,
    panoptic_root: str,
    sem_seg_root: str,
    meta: Mapping,
    prepare: str,
    *,
    string_ids: bool = False,
    image_ext: str = "jpg",
) -> list[dict[str, Any]]:
    """Records of a COCO-format panoptic split, plus ``sem_seg_file_name`` when a semantic folder is given.

    Integer image ids (COCO) go through detectron2's ``load_coco_panoptic_json``, which casts ``image_id`` to int
    and looks for ``.jpg`` images; with ``string_ids`` (ADE20K, Mapillary Vistas: "ADE_val_00000001") the
    records are built here with the ids kept as given and otherwise the same fields.

    Args:
        dataset: split name (for errors).
        json_file, image_root, panoptic_root: COCO panoptic JSON, image folder and panoptic PNG folder.
        sem_seg_root: folder of semantic PNGs ("" = none); the label of ``x.png`` is ``sem_seg_root/x.png``.
        meta: dict with ``thing_dataset_id_to_contiguous_id`` and ``stuff_dataset_id_to_contiguous_id``.
        prepare: preparation script named in errors.
        string_ids: keep string image ids (see above).
        image_ext: extension of the images (``string_ids`` only).

    Returns:
        Records with file_name, image_id, pan_seg_file_name, segments_info (contiguous category ids, isthing)
        and sem_seg_file_name.
    """
    require_paths(dataset, prepare, json_file, image_root, panoptic_root, sem_seg_root)
    if not string_ids:
        records = load_coco_panoptic_json(json_file, image_root, panoptic_root, dict(meta))
        if sem_seg_root:
            for r in records:
                r["sem_seg_file_name"] = os.path.join(sem_seg_root, os.path.basename(r["pan_seg_file_name"]))
        return records
    with open(json_file, encoding="utf-8") as f:
        info = json.load(f)
    things = meta["thing_dataset_id_to_contiguous_id"]
    stuff = meta["stuff_dataset_id_to_contiguous_id"]
    records = []
    for ann in info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        segments = []
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            seg = dict(seg, isthing=cat in things, category_id=things[cat] if cat in things else stuff[cat])
            segments.append(seg)
        record = {
            "file_name": os.path.join(image_root, f"{stem}.{image_ext}"),
            "image_id": ann["image_id"],
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "segments_info": segments,
        }
        if sem_seg_root:
            record["sem_seg_file_name"] = os.path.join(sem_seg_root, ann["file_name"])
        records.append(record)
    if not records:
        raise FileNotFoundError(
            f"Dataset '{dataset}': '{json_file}' lists no annotation; re-run the preparation script ({prepare})"
        )
    return records


def load_instance_split(
    dataset: str, json_file: str, image_root: str, meta: Mapping, prepare: str
) -> list[dict[str, Any]]:
    """COCO-format instance records with contiguous category ids, via detectron2's ``load_coco_json``.

    ``load_coco_json`` is called without a dataset name because, given one, it would overwrite
    ``thing_classes`` with the JSON's plain category names; the ids are mapped here instead.

    Args:
        dataset: split name (for errors).
        json_file, image_root: COCO instances JSON and image folder.
        meta: dict with ``thing_dataset_id_to_contiguous_id``.
        prepare: preparation script named in errors.

    Returns:
        Records with "annotations" whose category_id is contiguous; annotations of unknown ids are dropped.
    """
    require_paths(dataset, prepare, json_file, image_root)
    id_map = meta["thing_dataset_id_to_contiguous_id"]
    records = load_coco_json(json_file, image_root)
    for r in records:
        anns = [a for a in r.get("annotations", []) if a["category_id"] in id_map]
        for a in anns:
            a["category_id"] = id_map[a["category_id"]]
        r["annotations"] = anns
    return records


def load_cityscapes_split(
    dataset: str, image_root: str, panoptic_root: str, json_file: str, meta: Mapping, prepare: str
) -> list[dict[str, Any]]:
    """Cityscapes panoptic records in the form of detectron2's ``load_cityscapes_panoptic``, plus ``isthing``.

    Built here rather than by that function, which derives the label path with ``str.split(".")`` (wrong under a
    root whose path has a dot) and reports missing files with bare asserts.

    Args:
        dataset: split name (for errors).
        image_root: ``cityscapes/leftImg8bit/<split>`` (``<city>/*_leftImg8bit.png``).
        panoptic_root, json_file: ``cityscapes/gtFine/cityscapes_panoptic_<split>`` and its ``.json``.
        meta: dict with ``thing_dataset_id_to_contiguous_id`` and ``stuff_dataset_id_to_contiguous_id``.
        prepare: preparation script named in errors.

    Returns:
        Records with file_name, image_id ("<city>_<seq>_<frame>"), sem_seg_file_name (the
        ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``), pan_seg_file_name and segments_info (contiguous
        category ids, isthing), in the JSON's order.
    """
    require_paths(dataset, prepare, image_root, panoptic_root, json_file)
    with open(json_file, encoding="utf-8") as f:
        info = json.load(f)
    suffix = "_leftImg8bit.png"
    images = {
        name[: -len(suffix)]: os.path.join(image_root, city, name)
        for city in sorted(os.listdir(image_root))
        if os.path.isdir(os.path.join(image_root, city))
        for name in os.listdir(os.path.join(image_root, city))
        if name.endswith(suffix)
    }
    gt_root = os.path.join(os.path.dirname(panoptic_root), os.path.basename(image_root))
    things = meta["thing_dataset_id_to_contiguous_id"]
    stuff = meta["stuff_dataset_id_to_contiguous_id"]
    records = []
    for ann in info["annotations"]:
        if ann["image_id"] not in images:
            raise missing_path_error(dataset, os.path.join(image_root, "<city>", ann["image_id"] + suffix), prepare)
        image = images[ann["image_id"]]
        city = os.path.basename(os.path.dirname(image))
        stem = os.path.basename(image)[: -len(suffix)]
        record = {
            "file_name": image,
            "image_id": "_".join(stem.split("_")[:3]),
            "sem_seg_file_name": os.path.join(gt_root, city, stem + "_gtFine_labelTrainIds.png"),
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "segments_info": [],
        }
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            if cat not in stuff:
                raise ValueError(
                    f"Dataset '{dataset}': '{json_file}' gives segment {seg['id']} of {ann['image_id']} the "
                    f"category id {cat}, which is not one of the split's classes; re-run the preparation script "
                    f"({prepare})"
                )
            record["segments_info"].append(dict(seg, isthing=cat in things, category_id=things.get(cat, stuff[cat])))
        require_paths(dataset, prepare, record["sem_seg_file_name"], record["pan_seg_file_name"])
        records.append(record)
    if not records:
        raise FileNotFoundError(
            f"Dataset '{dataset}': '{json_file}' lists no annotation; re-run the preparation script ({prepare})"
        )
    return records
