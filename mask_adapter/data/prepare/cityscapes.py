"""Cityscapes fine annotations -> the panoptic and train-id files the Cityscapes panoptic splits read.

The panoptic format is the one of cityscapesScripts' ``createPanopticImgs`` (what detectron2's
``load_cityscapes_panoptic``, Mask2Former and FC-CLIP read): one RGB PNG per image whose segment id is the
``*_gtFine_instanceIds.png`` value (label id * 1000 + instance for thing instances, the label id for stuff and for
thing regions without instances, which become ``iscrowd`` segments), and one COCO-style JSON whose category ids are
the label ids of the 19 evaluated classes. Pixels of the other label ids (unlabeled, ego vehicle, caravan, ...) are
0 (void). ``*_gtFine_labelTrainIds.png`` maps label ids to the 19 train ids (255 elsewhere), as cityscapesScripts'
``createTrainIdLabelImgs`` does. Ids, train ids and thing flags come from the ``cityscapes`` class table
(detectron2's CITYSCAPES_CATEGORIES).

Shapes: instance-id and label maps (H, W); panoptic PNGs (H, W, 3) uint8.
"""

import glob
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..metadata import ClassInfo, class_table
from .label_io import apply_lut, id_lut, progress, read_label, require, write_label
from .panoptic import ids_to_rgb, segment_table, write_coco_json
from .runner import convert_label_maps

__all__ = [
    "CITYSCAPES_HINT",
    "CITYSCAPES_NUM_LABEL_IDS",
    "cityscapes_classes",
    "cityscapes_categories",
    "cityscapes_train_id_lut",
    "label_ids_to_train_ids",
    "cityscapes_panoptic",
    "cityscapes_split_files",
    "CITYSCAPES_SPLITS",
    "prepare_cityscapes",
]

CITYSCAPES_SPLITS = ("train", "val")

CITYSCAPES_HINT = (
    "download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "https://www.cityscapes-dataset.com/downloads/ and unzip both into <root>/cityscapes (datasets/README.md)"
)
# Cityscapes label ids are 0..33 (labels.py of cityscapesScripts; license plate, -1, is never drawn).
CITYSCAPES_NUM_LABEL_IDS = 34
# Thing values of *_instanceIds.png at or above this are label id * 1000 + instance index.
_INSTANCE_DIVISOR = 1000


def cityscapes_classes() -> list[ClassInfo]:
    """The 19 evaluated classes in train-id order (``dataset_id`` = Cityscapes label id)."""
    return class_table("cityscapes")


def cityscapes_categories() -> list[dict[str, Any]]:
    """COCO "categories" of the panoptic JSON: label id, first class name, colour and isthing."""
    return [
        {
            "id": c.dataset_id,
            "name": c.names.split(",")[0],
            "color": list(c.color),
            "isthing": int(c.isthing),
        }
        for c in cityscapes_classes()
    ]


def cityscapes_train_id_lut() -> np.ndarray:
    """(34,) uint8 lookup table label id -> train id (0..18), 255 for label ids not evaluated."""
    mapping = {c.dataset_id: k for k, c in enumerate(cityscapes_classes())}
    return id_lut(mapping, CITYSCAPES_NUM_LABEL_IDS, 255)


def label_ids_to_train_ids(label_ids: np.ndarray, path: str) -> np.ndarray:
    """(H, W) ``*_gtFine_labelIds.png`` values -> (H, W) uint8 train ids with 255 = ignore."""
    return apply_lut(label_ids.astype(np.int64), cityscapes_train_id_lut(), path)


def cityscapes_panoptic(
    instance_ids: np.ndarray, classes: Mapping[int, bool], path: str
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Panoptic PNG and segments of one ``*_gtFine_instanceIds.png``.

    Args:
        instance_ids: (H, W) instance-id map.
        classes: {label id: isthing} of the evaluated classes; segments of other label ids are dropped (void).
        path: the file, named in errors.

    Returns:
        (H, W, 3) uint8 panoptic PNG (id = R + 256 G + 256^2 B) and its segments_info, one dict per segment in
        increasing id order with id, category_id (label id), area, bbox [x, y, w, h] and iscrowd.
    """
    values, inverse, areas, boxes = segment_table(instance_ids)
    labels = np.where(values < _INSTANCE_DIVISOR, values, values // _INSTANCE_DIVISOR)
    bad = values[(labels < 0) | (labels >= CITYSCAPES_NUM_LABEL_IDS)]
    if bad.size:
        raise ValueError(
            f"Annotation '{path}' has instance id {int(bad[0])}, which encodes no Cityscapes label id "
            "(0..33); is it a *_gtFine_instanceIds.png?"
        )
    kept = np.zeros(len(values), dtype=np.int64)
    segments = []
    for k, (value, label) in enumerate(zip(values.tolist(), labels.tolist(), strict=True)):
        if label not in classes:
            continue
        kept[k] = value
        segments.append(
            {
                "id": value,
                "category_id": label,
                "area": int(areas[k]),
                "bbox": [int(v) for v in boxes[k]],
                "iscrowd": int(classes[label] and value < _INSTANCE_DIVISOR),
            }
        )
    return ids_to_rgb(kept[inverse]), segments


def cityscapes_split_files(cityscapes: str, split: str) -> Iterator[tuple[str, str, str, str]]:
    """The annotated images of one split.

    Args:
        cityscapes: the ``cityscapes`` folder (holding ``leftImg8bit/`` and ``gtFine/``).
        split: "train" or "val".

    Returns:
        (image id ``<city>_<seq>_<frame>``, image, ``*_gtFine_instanceIds.png``, ``*_gtFine_labelIds.png``) for
        every ``gtFine/<split>/<city>/*_gtFine_instanceIds.png``, in file-name order; a missing image or label-id
        file raises one ``FileNotFoundError`` line.
    """
    image_dir = require(os.path.join(cityscapes, "leftImg8bit", split), "Cityscapes images", CITYSCAPES_HINT)
    gt_dir = require(os.path.join(cityscapes, "gtFine", split), "Cityscapes annotations", CITYSCAPES_HINT)
    files = sorted(glob.glob(os.path.join(gt_dir, "*", "*_gtFine_instanceIds.png")))
    if not files:
        raise FileNotFoundError(
            f"No <city>/*_gtFine_instanceIds.png annotation in '{gt_dir}'; re-extract gtFine_trainvaltest.zip"
        )
    for ins_path in files:
        city = os.path.basename(os.path.dirname(ins_path))
        stem = os.path.basename(ins_path)[: -len("_gtFine_instanceIds.png")]
        image = os.path.join(image_dir, city, f"{stem}_leftImg8bit.png")
        labels = ins_path[: -len("instanceIds.png")] + "labelIds.png"
        yield (
            stem,
            require(image, "Cityscapes image", CITYSCAPES_HINT),
            ins_path,
            require(labels, "Cityscapes label-id annotation", "re-extract gtFine_trainvaltest.zip"),
        )


def prepare_cityscapes(root: str) -> int:
    """Write the train-id maps and the panoptic PNGs + JSON of both splits under ``<root>/cityscapes/gtFine``.

    A split whose panoptic JSON and PNGs all exist is skipped (train-id maps that exist are kept).

    Returns:
        The number of files written.
    """
    cityscapes = os.path.join(root, "cityscapes")
    things = {c.dataset_id: c.isthing for c in cityscapes_classes()}
    written = 0
    for split in CITYSCAPES_SPLITS:
        files = list(cityscapes_split_files(cityscapes, split))
        json_path = os.path.join(cityscapes, "gtFine", f"cityscapes_panoptic_{split}.json")
        pan_dir = os.path.join(cityscapes, "gtFine", f"cityscapes_panoptic_{split}")
        train_ids = [(lab, lab[: -len("labelIds.png")] + "labelTrainIds.png") for _, _, _, lab in files]
        written += convert_label_maps(
            train_ids,
            lambda path: label_ids_to_train_ids(read_label(path), path),
            f"Cityscapes train ids {split}",
        )
        pan_paths = [os.path.join(pan_dir, f"{stem}_gtFine_panoptic.png") for stem, _, _, _ in files]
        if os.path.exists(json_path) and all(os.path.exists(p) for p in pan_paths):
            continue
        images, annotations = [], []
        for (stem, image, ins_path, _), out in progress(
            list(zip(files, pan_paths, strict=True)), f"Cityscapes panoptic {split}"
        ):
            rgb, segments = cityscapes_panoptic(read_label(ins_path), things, ins_path)
            images.append(
                {
                    "id": stem,
                    "file_name": os.path.basename(image),
                    "height": int(rgb.shape[0]),
                    "width": int(rgb.shape[1]),
                }
            )
            annotations.append({"image_id": stem, "file_name": os.path.basename(out), "segments_info": segments})
            if not os.path.exists(out):
                write_label(out, rgb)
                written += 1
        # Written last, through a temporary name: an interrupted run never leaves a JSON that looks complete.
        write_coco_json(json_path + ".tmp", images, annotations, cityscapes_categories())
        os.replace(json_path + ".tmp", json_path)
        written += 1
    return written
