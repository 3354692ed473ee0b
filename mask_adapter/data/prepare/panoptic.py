"""COCO panoptic colour encoding and COCO-format JSON writing.

Shapes: segment ids and masks (H, W); panoptic PNGs (H, W, 3) uint8, id = R + 256 G + 256^2 B.
"""

import json

import numpy as np

from ...utils.atomic import atomic_write

__all__ = ["ids_to_rgb", "rgb_to_ids", "mask_bbox", "segment_table", "write_json", "write_coco_json"]

# Id maps whose ids are all in [0, this) are tabulated with a bincount (no sort).
_BINCOUNT_LIMIT = 1 << 22


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) panoptic segment ids -> (H, W, 3) uint8 COCO panoptic PNG colours (id = R + 256 G + 256^2 B)."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) COCO panoptic PNG colours -> (H, W) int64 segment ids R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x, y, w, h] box of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]


def segment_table(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every id of an (H, W) integer id map with its area and box, in one pass (no mask per segment).

    Returns:
        values: (S,) the ids present, increasing; inverse: (H, W) index of each pixel's id in ``values``;
        areas: (S,) pixel counts; boxes: (S, 4) [x, y, w, h] (as :func:`mask_bbox`).
    """
    h, w = ids.shape
    flat = ids.ravel().astype(np.int64)
    if flat.size and 0 <= flat.min() and flat.max() < _BINCOUNT_LIMIT:
        counts = np.bincount(flat)
        values = np.flatnonzero(counts)
        index = np.zeros(len(counts), dtype=np.int64)
        index[values] = np.arange(len(values))
        inverse, areas = index[flat], counts[values]
    else:
        values, inverse, areas = np.unique(flat, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(h, w)
    rows = np.zeros((len(values), h), dtype=bool)
    rows[inverse, np.arange(h)[:, None]] = True
    cols = np.zeros((len(values), w), dtype=bool)
    cols[inverse, np.arange(w)[None, :]] = True
    y0, x0 = rows.argmax(axis=1), cols.argmax(axis=1)
    y1, x1 = h - rows[:, ::-1].argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    return values, inverse, areas, boxes


def write_json(path: str, data: dict) -> None:
    """Write ``data`` as JSON with ``json.dump``'s default formatting, keys in insertion order (atomically)."""
    with atomic_write(path, "w") as f:
        json.dump(data, f)


def write_coco_json(path: str, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    """Write a COCO-format JSON {"images", "annotations", "categories"} (atomically)."""
    write_json(path, {"images": images, "annotations": annotations, "categories": categories})
