"""ADE20K-150 panoptic and instance ground truth in the form the official preparation scripts write it
(``prepare_ade20k_pan_seg.py`` / ``prepare_ade20k_ins_seg.py`` of Mask2Former, copied by FC-CLIP and Mask-Adapter).

What matches the official files:

- panoptic segments: stuff segments come from the semantic map (one per stuff class present), thing segments from
  the instance map, painted over the stuff afterwards. Each segment's ``area`` and ``bbox`` are measured on its own
  mask *before* later segments are painted, and stuff segments that things then cover completely are kept (their
  area stays > 0 although the PNG holds none of their pixels). ``visible_areas=True`` measures the painted PNG
  instead and drops segments left without pixels (not the official files; see datasets/README.md);
- segment ids are colours (id = R + 256 G + 256^2 B) chosen by the rule of panopticapi's ``IdGenerator``: a stuff
  segment gets its class colour, the first instance of a thing class its class colour, further instances a colour
  drawn within +-30 per channel of it that no other segment of the image uses. The official draws are unseeded;
  here they come from a generator seeded per image, so re-runs give the same files;
- JSON strings, colours, key order and ``json.dump`` formatting of the official files: category names from the
  official tables (``prepared_panoptic_names`` / ``prepared_instance_names`` of ``ade20k_150_meta.json``), the
  official panoptic palette (skyscraper [140, 140, 200]; the registration metadata keeps [140, 140, 140] for drawing).

Shapes: semantic maps (H, W) (0 unlabeled, 1..150); instance PNGs (H, W, 3) uint8; segment id maps (H, W) int64.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util

from ..vocabulary import load_vocabulary_meta
from .ade import ADE_CATID_MAPPING, ade_image_entry, ade_instances, ade_split_images, read_ade_catid_mapping
from .label_io import read_label, read_rgb, write_label
from .panoptic import ids_to_rgb, mask_bbox, rgb_to_ids, segment_table, write_json
from .runner import TRAIN_VAL_FOLDERS

__all__ = [
    "JITTER",
    "SegmentColors",
    "ade_panoptic_categories",
    "ade_instance_categories",
    "ade_panoptic_segments",
    "prepare_ade20k_panoptic",
    "prepare_ade20k_instances",
]

# Largest per-channel offset from the class colour of the colour of a further instance of a thing class.
JITTER = 30

_PANOPTIC_ANNOTATIONS = (
    ("annotations", "ADE20K annotation"),
    ("annotations_instance", "ADE20K instance annotation"),
)
_INSTANCE_ANNOTATIONS = (("annotations_instance", "ADE20K instance annotation"),)


def ade_panoptic_categories(mapping: Mapping[int, int]) -> list[dict[str, Any]]:
    """The 150 "categories" of the panoptic JSON: name (official string), id (0-based class), isthing (the class is
    a target of ``mapping``, the instance-class table), color (official preparation palette), in class order."""
    meta = load_vocabulary_meta("ade20k_150")
    names, colors = meta["prepared_panoptic_names"], [list(c) for c in meta["colors"]]
    for index, color in meta["prepared_panoptic_colors"].items():
        colors[int(index)] = list(color)
    things = set(mapping.values())
    return [{"name": name, "id": k, "isthing": int(k in things), "color": colors[k]} for k, name in enumerate(names)]


def ade_instance_categories(mapping: Mapping[int, int], path: str = "") -> list[dict[str, Any]]:
    """The 100 "categories" of the instance JSON: id (0-based ADE-150 class of the instance class), name (official
    string), in instance-class order (1..100). ``path`` (the mapping file) is named in errors."""
    names = load_vocabulary_meta("ade20k_150")["prepared_instance_names"]
    if sorted(mapping) != list(range(1, len(names) + 1)):
        raise ValueError(
            f"ADE20K instance category mapping '{path}' lists {len(mapping)} instance classes; expected the "
            f"{len(names)} classes 1..{len(names)}: use the package's ade20k_instance_catid_mapping.txt"
        )
    return [{"id": mapping[k], "name": names[k - 1]} for k in sorted(mapping)]


class SegmentColors:
    """Colours (= segment ids) of the segments of one panoptic image, by the rule of panopticapi's ``IdGenerator``.

    Args:
        categories: {category id: {"isthing", "color"}}.
        seed: seed of the draws for further instances of a thing class.
    """

    def __init__(self, categories: Mapping[int, Mapping[str, Any]], seed: int = 0) -> None:
        self._categories = categories
        self._taken = {(0, 0, 0)} | {tuple(c["color"]) for c in categories.values() if not c["isthing"]}
        self._rng = np.random.RandomState(seed)

    def next(self, category_id: int) -> tuple[int, int, int]:
        """Colour of a new segment of ``category_id``."""
        category = self._categories[category_id]
        base = tuple(int(v) for v in category["color"])
        if not category["isthing"]:
            return base
        color = base
        while color in self._taken:
            offset = self._rng.randint(-JITTER, JITTER + 1, size=3)
            color = tuple(int(v) for v in np.clip(np.asarray(base) + offset, 0, 255))
        self._taken.add(color)
        return color


def ade_panoptic_segments(
    semantic: np.ndarray,
    instances: Sequence[tuple[int, np.ndarray]],
    categories: Sequence[Mapping[str, Any]],
    path: str = "",
    *,
    visible_areas: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Panoptic segment ids and segments_info of one ADE20K image.

    Args:
        semantic: (H, W) semantic map (0 unlabeled, 1..150).
        instances: [(0-based class, (H, W) bool mask)] (see :func:`~.ade.ade_instances`), painted after the stuff.
        categories: :func:`ade_panoptic_categories`.
        path: the semantic map's file, named in errors.
        visible_areas: measure area and box on the painted map and drop segments left without pixels (default:
            the official rule, each segment measured on its own mask before later ones are painted).
        seed: seed of :class:`SegmentColors`.

    Returns:
        (H, W) int64 segment ids (0 = void) and the segments [{"id", "category_id", "area", "bbox", "iscrowd"}] in
        painting order.
    """
    by_id = {c["id"]: c for c in categories}
    labels = semantic.astype(np.int64)
    if labels.size and int(labels.max()) > len(categories):
        raise ValueError(
            f"Annotation '{path}' has label value {int(labels.max())}, outside the expected range "
            f"0..{len(categories)}; is it an ADEChallengeData2016 annotations/ map?"
        )
    painted = [(int(v) - 1, labels == v) for v in np.unique(labels) if v > 0 and not by_id[int(v) - 1]["isthing"]]
    painted += [(int(c), mask) for c, mask in instances]
    colors, ids, segments = SegmentColors(by_id, seed), np.zeros(labels.shape, dtype=np.int64), []
    for category_id, mask in painted:
        r, g, b = colors.next(category_id)
        segment_id = r + 256 * g + 65536 * b
        ids[mask] = segment_id
        segments.append(
            {
                "id": segment_id,
                "category_id": category_id,
                "area": int(mask.sum()),
                "bbox": mask_bbox(mask),
                "iscrowd": 0,
            }
        )
    if visible_areas:
        values, _, areas, boxes = segment_table(ids)
        found = {int(v): (int(a), [int(x) for x in box]) for v, a, box in zip(values, areas, boxes)}
        segments = [dict(s, area=found[s["id"]][0], bbox=found[s["id"]][1]) for s in segments if s["id"] in found]
    return ids, segments


def _write_png_if_changed(path: str, rgb: np.ndarray) -> bool:
    """Write ``rgb`` unless ``path`` already holds the same ids (a file from an older run is replaced)."""
    if os.path.exists(path) and np.array_equal(rgb_to_ids(read_rgb(path)), rgb_to_ids(rgb)):
        return False
    write_label(path, rgb)
    return True


def prepare_ade20k_panoptic(root: str, catid_mapping: str = ADE_CATID_MAPPING, visible_areas: bool = False) -> int:
    """Write ``ADEChallengeData2016/ade20k_panoptic_{train,val}/*.png`` and ``ade20k_panoptic_{train,val}.json``.

    Args:
        root: dataset root holding ``ADEChallengeData2016``.
        catid_mapping: ``ade20k_instance_catid_mapping.txt`` (default: the copy shipped with the package).
        visible_areas: see :func:`ade_panoptic_segments`.

    Returns:
        The number of PNGs written (a PNG that already holds the same segments is kept).
    """
    ade = os.path.join(root, "ADEChallengeData2016")
    mapping = read_ade_catid_mapping(catid_mapping)
    categories = ade_panoptic_categories(mapping)
    written = 0
    for name, split in TRAIN_VAL_FOLDERS:
        out_dir, images, annotations = os.path.join(ade, f"ade20k_panoptic_{name}"), [], []
        pairs = ade_split_images(ade, split, f"ADE20K panoptic {name}", _PANOPTIC_ANNOTATIONS)
        for stem, (sem_path, ins_path) in pairs:
            instances = ade_instances(read_rgb(ins_path), mapping, ins_path)
            ids, segments = ade_panoptic_segments(
                read_label(sem_path), instances, categories, sem_path, visible_areas=visible_areas
            )
            images.append(ade_image_entry(stem, ids.shape))
            annotations.append({"image_id": stem, "file_name": stem + ".png", "segments_info": segments})
            written += _write_png_if_changed(os.path.join(out_dir, stem + ".png"), ids_to_rgb(ids))
        info = {"images": images, "annotations": annotations, "categories": categories}
        write_json(os.path.join(ade, f"ade20k_panoptic_{name}.json"), info)
    return written


def prepare_ade20k_instances(root: str, catid_mapping: str = ADE_CATID_MAPPING) -> list[str]:
    """Write ``ADEChallengeData2016/ade20k_instance_{train,val}.json`` (a split whose JSON exists is skipped).

    Category ids are the 0-based ADE-150 classes shared with the panoptic files; annotations hold an RLE mask, its
    box and area, ids counting from 1 per split. Returns the written paths.
    """
    ade = os.path.join(root, "ADEChallengeData2016")
    mapping = read_ade_catid_mapping(catid_mapping)
    categories = ade_instance_categories(mapping, catid_mapping)
    written = []
    for name, split in TRAIN_VAL_FOLDERS:
        out = os.path.join(ade, f"ade20k_instance_{name}.json")
        if os.path.exists(out):
            continue
        images, annotations = [], []
        for stem, (ins_path,) in ade_split_images(ade, split, f"ADE20K instances {name}", _INSTANCE_ANNOTATIONS):
            rgb = read_rgb(ins_path)
            images.append(ade_image_entry(stem, rgb.shape))
            for category_id, mask in ade_instances(rgb, mapping, ins_path):
                rle = mask_util.encode(np.asfortranarray(mask[:, :, None].astype(np.uint8)))[0]
                rle["counts"] = rle["counts"].decode("utf-8")
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": stem,
                        "iscrowd": 0,
                        "category_id": int(category_id),
                        "bbox": mask_bbox(mask),
                        "segmentation": rle,
                        "area": int(mask.sum()),
                    }
                )
        write_json(out, {"images": images, "categories": categories, "annotations": annotations})
        written.append(out)
    return written
