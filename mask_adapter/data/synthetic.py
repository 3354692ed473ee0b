"""A tiny synthetic COCO-panoptic-format dataset ("synthetic shapes") for tests and smoke training.

Each image has a sky/grass background split at a random horizon and 1-3 filled shapes (square, circle,
triangle) drawn with OpenCV, on a 2-pixel void frame. Layout under ``<root>/synthetic_shapes``::

    images/{train,val}/<id>.jpg          RGB images, random sizes in [min_size, max_size]
    panoptic/{train,val}/<id>.png        COCO panoptic PNGs (id = R + 256 G + 256^2 B, 0 = void)
    panoptic_{train,val}.json            COCO panoptic JSON (images, annotations, categories)
    instances_{train,val}.json           COCO instances JSON of the thing segments (RLE masks), for instance AP
    semantic/{train,val}/<id>.png        contiguous class ids 0-4, 255 = void

Dataset category ids are 1 square, 2 circle, 3 triangle (things), 4 sky, 5 grass (stuff), as in
``vocabularies/synthetic_shapes_with_prompt_eng.txt``; the catalog registers ``synthetic_shapes_panoptic_{train,val}``
(metadata ``json_file`` = the instances JSON, as for the ADE20K panoptic splits). The instances JSON has one
annotation per visible thing segment of the panoptic JSON (same image ids, category ids, areas and boxes;
``iscrowd`` 0) and lists the thing categories only, as COCO's instances JSON does.
"""

import os
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_util

from .prepare import ids_to_rgb, mask_bbox, write_coco_json

__all__ = ["SYNTHETIC_CATEGORIES", "make_synthetic_dataset"]

# (dataset id, name, isthing, base RGB colour of the drawn pixels)
SYNTHETIC_CATEGORIES: tuple[tuple[int, str, int, tuple[int, int, int]], ...] = (
    (1, "square", 1, (220, 40, 40)),
    (2, "circle", 1, (240, 200, 30)),
    (3, "triangle", 1, (160, 40, 220)),
    (4, "sky", 0, (90, 150, 230)),
    (5, "grass", 0, (60, 160, 60)),
)
_VOID_BORDER = 2


def _draw_shape(rng: np.random.RandomState, kind: int, mask: np.ndarray) -> None:
    h, w = mask.shape
    size = int(rng.randint(max(8, min(h, w) // 6), max(9, min(h, w) // 3)))
    cx, cy = int(rng.randint(size, w - size)), int(rng.randint(size, h - size))
    if kind == 1:
        cv2.rectangle(mask, (cx - size // 2, cy - size // 2), (cx + size // 2, cy + size // 2), 1, -1)
    elif kind == 2:
        cv2.circle(mask, (cx, cy), size // 2, 1, -1)
    else:
        pts = np.array(
            [
                [cx, cy - size // 2],
                [cx - size // 2, cy + size // 2],
                [cx + size // 2, cy + size // 2],
            ]
        )
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)


def _make_image(rng: np.random.RandomState, h: int, w: int):
    """One sample: (RGB image, panoptic id map, semantic map, segments_info)."""
    colors = {c[0]: np.array(c[3], dtype=np.float32) for c in SYNTHETIC_CATEGORIES}
    label = np.zeros((h, w), np.int32)  # dataset category id per pixel
    segment = np.zeros((h, w), np.int32)  # panoptic segment id per pixel
    horizon = int(rng.randint(h // 4, 3 * h // 4))
    label[:horizon], segment[:horizon] = 4, 1
    label[horizon:], segment[horizon:] = 5, 2
    for k in range(int(rng.randint(1, 4))):
        kind = int(rng.randint(1, 4))
        mask = np.zeros((h, w), np.uint8)
        _draw_shape(rng, kind, mask)
        label[mask > 0], segment[mask > 0] = kind, 3 + k
    (
        label[:_VOID_BORDER],
        label[-_VOID_BORDER:],
        label[:, :_VOID_BORDER],
        label[:, -_VOID_BORDER:],
    ) = (0, 0, 0, 0)
    segment[label == 0] = 0
    image = np.zeros((h, w, 3), np.float32) + 128
    for cat_id, color in colors.items():
        image[label == cat_id] = color
    image += rng.normal(0, 8, size=image.shape)
    semantic = np.full((h, w), 255, np.uint8)
    segments = []
    for seg_id in np.unique(segment):
        if seg_id == 0:
            continue
        m = segment == seg_id
        cat_id = int(np.bincount(label[m]).argmax())
        semantic[m] = cat_id - 1
        segments.append(
            {
                "id": int(seg_id),
                "category_id": cat_id,
                "iscrowd": 0,
                "area": int(m.sum()),
                "bbox": mask_bbox(m),
            }
        )
    return np.clip(image, 0, 255).astype(np.uint8), segment, semantic, segments


def _instance_annotations(
    segment: np.ndarray, segments: list[dict[str, Any]], image_id: int, first_id: int
) -> list[dict[str, Any]]:
    """COCO instance annotations (RLE segmentation) of the thing segments of one panoptic id map."""
    things = {c[0] for c in SYNTHETIC_CATEGORIES if c[2]}
    out = []
    for seg in segments:
        if seg["category_id"] not in things:
            continue
        mask = np.asfortranarray((segment == seg["id"]).astype(np.uint8))
        rle = mask_util.encode(mask)
        rle["counts"] = rle["counts"].decode("ascii")
        out.append(
            {
                "id": first_id + len(out),
                "image_id": image_id,
                "category_id": seg["category_id"],
                "segmentation": rle,
                "area": seg["area"],
                "bbox": seg["bbox"],
                "iscrowd": 0,
            }
        )
    return out


def _write_split(root: str, split: str, n: int, size: tuple[int, int], rng: np.random.RandomState) -> None:
    dirs = {k: os.path.join(root, k, split) for k in ("images", "panoptic", "semantic")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    images, annotations, instances = [], [], []
    for i in range(n):
        h, w = (int(x) for x in rng.randint(size[0], size[1] + 1, size=2))
        image, segment, semantic, segments = _make_image(rng, h, w)
        stem = f"{split}_{i:05d}"
        cv2.imwrite(
            os.path.join(dirs["images"], stem + ".jpg"),
            image[:, :, ::-1],
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        cv2.imwrite(os.path.join(dirs["panoptic"], stem + ".png"), ids_to_rgb(segment)[:, :, ::-1])
        cv2.imwrite(os.path.join(dirs["semantic"], stem + ".png"), semantic)
        images.append({"id": i + 1, "file_name": stem + ".jpg", "height": h, "width": w})
        annotations.append({"image_id": i + 1, "file_name": stem + ".png", "segments_info": segments})
        instances.extend(_instance_annotations(segment, segments, i + 1, len(instances) + 1))
    categories = [{"id": c[0], "name": c[1], "isthing": c[2], "color": list(c[3])} for c in SYNTHETIC_CATEGORIES]
    write_coco_json(os.path.join(root, f"panoptic_{split}.json"), images, annotations, categories)
    things = [{"id": c["id"], "name": c["name"]} for c in categories if c["isthing"]]
    write_coco_json(os.path.join(root, f"instances_{split}.json"), images, instances, things)


def make_synthetic_dataset(
    root: str, n_train: int = 16, n_val: int = 4, size: tuple[int, int] = (96, 160), seed: int = 0
) -> dict[str, str]:
    """Write the synthetic shapes dataset under ``<root>/synthetic_shapes`` (overwriting it).

    Args:
        root: dataset root (the folder ``$DETECTRON2_DATASETS`` points to).
        n_train, n_val: number of images per split.
        size: (min, max) side length in pixels; height and width are drawn independently.
        seed: random seed; the same arguments give byte-identical PNG/JSON files.

    Returns:
        {"root": dataset folder, "train_json", "val_json" (panoptic JSONs), "train_instances_json",
        "val_instances_json" (COCO instances JSONs)}.
    """
    if size[0] < 48 or size[1] < size[0]:
        raise ValueError(f"size must be (min, max) with 48 <= min <= max, got {size}")
    out = os.path.join(root, "synthetic_shapes")
    rng = np.random.RandomState(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        _write_split(out, split, n, size, rng)
    return {
        "root": out,
        "train_json": os.path.join(out, "panoptic_train.json"),
        "val_json": os.path.join(out, "panoptic_val.json"),
        "train_instances_json": os.path.join(out, "instances_train.json"),
        "val_instances_json": os.path.join(out, "instances_val.json"),
    }
