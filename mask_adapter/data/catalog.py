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
import logging
import os
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog

from . import loaders
from .metadata import (
    LazyMetadata,
    class_table,
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
