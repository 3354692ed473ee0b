"""COCO panoptic colour encoding and COCO-format JSON writing.

Shapes: segment ids and masks (H, W); panoptic PNGs (H, W, 3) uint8, id = R + 256 G + 256^2 B.
"""

import json
from typing import Dict, List

import numpy as np

from ...utils.atomic import atomic_write

__all__ = ["ids_to_rgb", "rgb_to_ids", "mask_bbox", "write_coco_json"]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) panoptic segment ids -> (H, W, 3) uint8 COCO panoptic PNG colours (id = R + 256 G + 256^2 B)."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) COCO panoptic PNG colours -> (H, W) int64 segment ids R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


def mask_bbox(mask: np.ndarray) -> List[int]:
    """[x, y, w, h] box of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]


def write_coco_json(
    path: str, images: List[Dict], annotations: List[Dict], categories: List[Dict]
) -> None:
    """Write a COCO-format JSON {"images", "annotations", "categories"} (atomically)."""
    with atomic_write(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
