"""Registration of the split table (:mod:`mask_adapter.data.splits`) with one ``register_all(root)``.

Each :class:`Split` is a frozen record: folders relative to the dataset root (``$DETECTRON2_DATASETS``, default
"datasets"), the vocabulary key, the evaluator type and the ignore label. ``register_all`` registers a lazy
loader with ``DatasetCatalog`` and a :class:`~mask_adapter.data.metadata.LazyMetadata` with ``MetadataCatalog``;
no file is read until a split is loaded or its metadata is read.

Metadata of every split: ``dataname`` (its own name), ``vocabulary_key``, ``evaluator_type``, ``ignore_label``,
``image_root``, ``stuff_classes``/``stuff_colors`` ("name,syn,..." strings) and, for panoptic splits,
``thing_classes``, ``thing_colors``, ``thing_dataset_id_to_contiguous_id``, ``stuff_dataset_id_to_contiguous_id``,
``panoptic_root``, ``panoptic_json``, ``json_file`` (instances, when any), ``label_divisor`` (COCO-style sets) and
``gt_dir`` (Cityscapes: ``gtFine/<split>``).
"""

import functools
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog

from . import loaders
from .metadata import (
    ClassInfo,
    LazyMetadata,
    class_table,
    default_colors,
    instance_metadata,
    openvocab_demo_metadata,
    panoptic_metadata,
    semantic_metadata,
)
from .splits import (
    CITYSCAPES,
    COCO_PANOPTIC,
    INSTANCE,
    SEM_SEG,
    SPLITS,
    Split,
    get_split,
    semseg_split,
)
from .vocabulary import load_vocabulary

__all__ = [
    "Split",
    "SPLITS",
    "get_split",
    "register_split",
    "register_all",
    "register_custom_semseg",
    "register_custom_panoptic",
    "register_user_datasets",
    "OPENVOCAB_DEMO_DATASET",
    "load_split",
    "split_metadata",
]

logger = logging.getLogger(__name__)

# Name of the demo's default vocabulary (COCO + ADE-150 + LVIS, as in the official demo), installed with
# model.set_metadata.
OPENVOCAB_DEMO_DATASET = "openvocab_dataset"


def _abs(root: str, rel: str) -> str:
    return os.path.join(root, rel) if rel else ""


def split_metadata(split: Split, root: str) -> dict[str, Any]:
    """All metadata fields of a split (reads its vocabulary)."""
    classes = class_table(split.vocab)
    if split.drop_first_class:
        classes = classes[1:]
    meta: dict[str, Any] = {"image_root": _abs(root, split.image_dir)}
    if split.kind == SEM_SEG:
        meta.update(semantic_metadata(classes), sem_seg_root=_abs(root, split.gt_dir))
    elif split.kind == INSTANCE:
        meta.update(instance_metadata(classes), json_file=_abs(root, split.json_file))
    else:
        meta.update(
            panoptic_metadata(classes),
            panoptic_root=_abs(root, split.gt_dir),
            panoptic_json=_abs(root, split.json_file),
        )
        if split.sem_seg_dir:
            meta["sem_seg_root"] = _abs(root, split.sem_seg_dir)
        if split.instances_json:
            meta["json_file"] = _abs(root, split.instances_json)
        if split.kind == CITYSCAPES:  # gtFine/<split>, read by detectron2's Cityscapes evaluators
            meta["gt_dir"] = os.path.join(os.path.dirname(_abs(root, split.gt_dir)), os.path.basename(split.image_dir))
    if split.label_divisor:
        meta["label_divisor"] = split.label_divisor
    return meta


def load_split(split: Split, root: str) -> list[dict[str, Any]]:
    """Dataset dicts of a split (the function registered with ``DatasetCatalog``)."""
    p = functools.partial(_abs, root)
    if split.kind == SEM_SEG:
        return loaders.load_sem_seg_split(
            split.name,
            p(split.image_dir),
            p(split.gt_dir),
            gt_ext=split.gt_ext,
            image_ext=split.image_ext,
            prepare=split.prepare,
        )
    meta = split_metadata(split, root)
    if split.kind == INSTANCE:
        return loaders.load_instance_split(split.name, p(split.json_file), p(split.image_dir), meta, split.prepare)
    if split.kind == CITYSCAPES:
        return loaders.load_cityscapes_split(
            split.name, p(split.image_dir), p(split.gt_dir), p(split.json_file), meta, split.prepare
        )
    return loaders.load_panoptic_split(
        split.name,
        p(split.json_file),
        p(split.image_dir),
        p(split.gt_dir),
        p(split.sem_seg_dir),
        meta,
        split.prepare,
        string_ids=split.kind != COCO_PANOPTIC,
        image_ext=split.image_ext,
    )


def register_split(split: Split, root: str) -> None:
    """Register one split's lazy loader and lazy metadata (replacing existing metadata of that name)."""
    DatasetCatalog.register(split.name, functools.partial(load_split, split, root))
    MetadataCatalog[split.name] = LazyMetadata(
        name=split.name,
        builder=functools.partial(split_metadata, split, root),
        dataname=split.name,
        vocabulary_key=split.vocab,
        evaluator_type=split.evaluator_type,
        ignore_label=split.ignore_label,
    )


def _is_registered(name: str) -> bool:
    return name in DatasetCatalog.list()


def register_all(root: str | None = None, *, overwrite: bool = False) -> list[str]:
    """Register every split of the catalog and the demo vocabulary ``openvocab_dataset``.

    Args:
        root: dataset root; default ``$DETECTRON2_DATASETS`` or "datasets".
        overwrite: replace splits that are already registered (tests use this to point at a temporary root);
            otherwise they are skipped with one warning.

    Returns:
        The names registered by this call.
    """
    root = os.path.expanduser(root if root is not None else os.getenv("DETECTRON2_DATASETS", "datasets"))
    done, skipped = [], []
    for split in SPLITS:
        if _is_registered(split.name):
            if not overwrite:
                skipped.append(split.name)
                continue
            DatasetCatalog.remove(split.name)
        register_split(split, root)
        done.append(split.name)
    if not _is_registered(OPENVOCAB_DEMO_DATASET):
        DatasetCatalog.register(OPENVOCAB_DEMO_DATASET, list)
        MetadataCatalog[OPENVOCAB_DEMO_DATASET] = LazyMetadata(
            name=OPENVOCAB_DEMO_DATASET,
            builder=openvocab_demo_metadata,
            dataname=OPENVOCAB_DEMO_DATASET,
            vocabulary_key="coco_panoptic+ade20k_150+lvis_1203",
            evaluator_type="sem_seg",
            ignore_label=255,
        )
        done.append(OPENVOCAB_DEMO_DATASET)
    if skipped:
        logger.warning(
            "mask_adapter: %d dataset names were already registered and were kept as they are: %s",
            len(skipped),
            ", ".join(skipped),
        )
    return done


def register_custom_semseg(
    name: str,
    image_root: str,
    gt_root: str,
    vocabulary_file: str,
    ignore_label: int = 255,
    *,
    gt_ext: str = "png",
    image_ext: str = "jpg",
) -> Split:
    """Register a user's semantic-segmentation folder pair with its own vocabulary file.

    Args:
        name: new dataset name (must not be registered yet).
        image_root: folder of images; gt_root: folder of label maps with the same relative file names.
        vocabulary_file: an `id:name,synonym,...` file; label value k is the k-th valid line.
        ignore_label: label value to ignore (255 for 8-bit PNGs, 65535 for 16-bit .tif).
        gt_ext, image_ext: file extensions.

    Returns:
        The registered record (evaluator_type "sem_seg").
    """
    if _is_registered(name):
        raise ValueError(f"Dataset '{name}' is already registered; choose another name or DatasetCatalog.remove it")
    load_vocabulary(vocabulary_file)  # fail now, with a clear message, on a bad vocabulary file
    split = semseg_split(
        name,
        os.path.abspath(vocabulary_file),
        os.path.abspath(image_root),
        os.path.abspath(gt_root),
        ignore=ignore_label,
        ext=gt_ext,
        image_ext=image_ext,
    )
    register_split(split, "")
    return split


def _require_user_paths(name: str, *paths: str) -> None:
    """One error line for a missing path of a user's dataset (no preparation script applies)."""
    for path in paths:
        if path and not os.path.exists(path):
            raise FileNotFoundError(f"dataset '{name}': '{path}' does not exist; check the path")


def _panoptic_json_classes(panoptic_json: str) -> list[ClassInfo]:
    """Classes of a COCO panoptic JSON's ``categories`` (name, isthing, colour), in the file's order."""
    try:
        with open(panoptic_json, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot read COCO panoptic JSON {panoptic_json}: {e}; give a panopticapi-format file"
        ) from None
    categories = info.get("categories") if isinstance(info, dict) else None
    if not categories or not isinstance(info.get("annotations"), list):
        raise ValueError(
            f"{panoptic_json} has no 'categories' or no 'annotations' list; give a COCO panoptic JSON "
            "(images, annotations with segments_info, categories with id, name, isthing)"
        )
    colors = default_colors(len(categories), panoptic_json)
    out = []
    for k, c in enumerate(categories):
        if "id" not in c or not str(c.get("name", "")).strip():
            raise ValueError(f"{panoptic_json}: category #{k} {c!r} needs an 'id' and a 'name'; fix the JSON")
        color = tuple(int(v) for v in c["color"]) if len(c.get("color") or ()) == 3 else colors[k]
        out.append(ClassInfo(int(c["id"]), str(c["name"]).strip(), bool(c.get("isthing", 0)), color))
    return out


def load_custom_panoptic(
    name: str, image_root: str, panoptic_json: str, panoptic_root: str, sem_seg_root: str = ""
) -> list[dict[str, Any]]:
    """Records of a user's COCO panoptic JSON: image file names from its ``images`` list (any extension),
    contiguous category ids and ``isthing`` in ``segments_info``, ``sem_seg_file_name`` when a folder is given."""
    _require_user_paths(name, image_root, panoptic_json, panoptic_root, sem_seg_root)
    classes = _panoptic_json_classes(panoptic_json)
    contiguous = {c.dataset_id: k for k, c in enumerate(classes)}
    things = {c.dataset_id for c in classes if c.isthing}
    with open(panoptic_json, encoding="utf-8") as f:
        info = json.load(f)
    image_files = {im["id"]: im["file_name"] for im in info.get("images", []) if "id" in im and "file_name" in im}
    records = []
    for ann in info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        image = image_files.get(ann["image_id"], f"{stem}.jpg")
        segments = []
        for seg in ann["segments_info"]:
            if seg["category_id"] not in contiguous:
                raise ValueError(
                    f"{panoptic_json}: image {ann['image_id']} has a segment of category {seg['category_id']}, "
                    "which is not in 'categories'; fix the JSON"
                )
            segments.append(dict(seg, category_id=contiguous[seg["category_id"]], isthing=seg["category_id"] in things))
        record = {
            "file_name": os.path.join(image_root, image),
            "image_id": ann["image_id"],
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "segments_info": segments,
        }
        if sem_seg_root:
            record["sem_seg_file_name"] = os.path.join(sem_seg_root, f"{stem}.png")
        records.append(record)
    if not records:
        raise ValueError(f"{panoptic_json} lists no annotation; give a COCO panoptic JSON with annotations")
    return records


def register_custom_panoptic(
    name: str,
    image_root: str,
    panoptic_json: str,
    panoptic_root: str | None = None,
    *,
    sem_seg_root: str = "",
    ignore_label: int = 255,
) -> str:
    """Register a user's COCO panoptic dataset (panopticapi format) for evaluation: PQ and mIoU.

    Args:
        name: new dataset name (must not be registered yet).
        image_root: folder of the images named in the JSON's ``images[*].file_name``.
        panoptic_json: COCO panoptic JSON; its ``categories`` (id, name — "name,synonym,..." allowed —, isthing,
            optional color) are the vocabulary, in the file's order.
        panoptic_root: folder of the panoptic PNGs; default: the JSON's path without ``.json`` (COCO's layout,
            ``panoptic_val2017.json`` next to ``panoptic_val2017/``).
        sem_seg_root: optional folder of semantic label maps (contiguous ids in the categories' order); without
            it the semantic evaluator derives the labels from the panoptic PNGs.
        ignore_label: semantic value of unlabelled pixels.

    Returns:
        ``name`` (evaluator_type "coco_panoptic_seg": the semantic and panoptic evaluators apply).
    """
    if _is_registered(name):
        raise ValueError(f"Dataset '{name}' is already registered; choose another name or DatasetCatalog.remove it")
    panoptic_json = os.path.abspath(panoptic_json)
    panoptic_root = os.path.abspath(panoptic_root or os.path.splitext(panoptic_json)[0])
    image_root = os.path.abspath(image_root)
    sem_seg_root = os.path.abspath(sem_seg_root) if sem_seg_root else ""
    _require_user_paths(name, image_root, panoptic_json, panoptic_root, sem_seg_root)
    classes = _panoptic_json_classes(panoptic_json)  # fail now, with a clear message, on a bad JSON

    def metadata() -> dict[str, Any]:
        return {
            **panoptic_metadata(classes),
            "image_root": image_root,
            "panoptic_root": panoptic_root,
            "panoptic_json": panoptic_json,
            **({"sem_seg_root": sem_seg_root} if sem_seg_root else {}),
        }

    DatasetCatalog.register(
        name, functools.partial(load_custom_panoptic, name, image_root, panoptic_json, panoptic_root, sem_seg_root)
    )
    MetadataCatalog[name] = LazyMetadata(
        name=name,
        builder=metadata,
        dataname=name,
        vocabulary_key=panoptic_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=ignore_label,
    )
    return name


def register_user_datasets(semseg: Sequence[Sequence[str]] = (), panoptic: Sequence[Sequence[str]] = ()) -> list[str]:
    """Register datasets given on a command line; returns their names in order.

    Args:
        semseg: ``(NAME, IMAGES, LABELS, CLASSES)`` tuples: a folder of images, a folder of PNG label maps with the
            same file stems (value k = k-th class, 255 = ignore) and a class-name file (one ``id:name,synonym,...``
            line per class).
        panoptic: ``(NAME, IMAGES, PANOPTIC_JSON[, PANOPTIC_DIR])`` tuples (see :func:`register_custom_panoptic`).
    """
    names = []
    for spec in semseg:
        if len(spec) != 4:
            raise ValueError(f"--semseg takes NAME IMAGES LABELS CLASSES, got {list(spec)}")
        name, images, labels, classes = spec
        _require_user_paths(name, images, labels, classes)
        image_ext = _dominant_extension(images)
        register_custom_semseg(name, images, labels, classes, image_ext=image_ext)
        names.append(name)
    for spec in panoptic:
        if len(spec) not in (3, 4):
            raise ValueError(f"--coco-panoptic takes NAME IMAGES PANOPTIC_JSON [PANOPTIC_DIR], got {list(spec)}")
        names.append(register_custom_panoptic(spec[0], spec[1], spec[2], spec[3] if len(spec) == 4 else None))
    return names


def _dominant_extension(folder: str) -> str:
    """The most common image extension in ``folder`` (jpg when there is none)."""
    counts: dict[str, int] = {}
    for entry in os.listdir(folder):
        ext = os.path.splitext(entry)[1].lower().lstrip(".")
        if ext in ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"):
            counts[ext] = counts.get(ext, 0) + 1
    return max(counts, key=lambda e: counts[e]) if counts else "jpg"
