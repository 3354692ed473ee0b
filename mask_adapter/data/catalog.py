"""One table of every dataset split (SPEC §9) and one ``register_all(root)``.

Each :class:`Split` is a frozen record: folders relative to the dataset root (``$DETECTRON2_DATASETS``, default
"datasets"), the vocabulary key, the evaluator type and the ignore label. ``register_all`` registers a lazy
loader with ``DatasetCatalog`` and a :class:`~mask_adapter.data.metadata.LazyMetadata` with ``MetadataCatalog``;
no file is read until a split is loaded or its metadata is read.

Metadata of every split: ``dataname`` (its own name), ``vocabulary_key``, ``evaluator_type``, ``ignore_label``,
``image_root``, ``stuff_classes``/``stuff_colors`` ("name,syn,..." strings) and, for panoptic splits,
``thing_classes``, ``thing_colors``, ``thing_dataset_id_to_contiguous_id``, ``stuff_dataset_id_to_contiguous_id``,
``panoptic_root``, ``panoptic_json``, ``json_file`` (instances, when any) and ``label_divisor`` (COCO-style sets).
"""
import functools
import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

from . import loaders
from .metadata import LazyMetadata, class_table, instance_metadata, openvocab_demo_metadata, panoptic_metadata
from .metadata import semantic_metadata
from .vocabulary import load_vocabulary

__all__ = ["Split", "SPLITS", "get_split", "register_split", "register_all", "register_custom_semseg",
           "OPENVOCAB_DEMO_DATASET", "load_split", "split_metadata"]

logger = logging.getLogger(__name__)

# Name of the demo's default vocabulary (COCO + ADE-150 + LVIS, SPEC §12), installed with model.set_metadata.
OPENVOCAB_DEMO_DATASET = "openvocab_dataset"

# Loader kinds.
SEM_SEG, COCO_PANOPTIC, STR_ID_PANOPTIC, INSTANCE, CITYSCAPES = (
    "sem_seg", "coco_panoptic", "str_id_panoptic", "instance", "cityscapes_panoptic")


@dataclass(frozen=True)
class Split:
    """One registered split. Paths are relative to the dataset root (absolute paths are kept as given).

    Attributes:
        name: registered name (official spelling).
        kind: loader kind: "sem_seg", "coco_panoptic" (int image ids), "str_id_panoptic" (string image ids),
            "instance" (COCO instances JSON) or "cityscapes_panoptic".
        vocab: vocabulary key (or file path for custom splits).
        evaluator_type: detectron2 evaluator type (see mask_adapter.evaluation.build).
        image_dir: image folder.
        gt_dir: semantic label folder (sem_seg) or panoptic PNG folder (panoptic kinds).
        json_file: panoptic JSON (panoptic kinds) or instances JSON (instance kind).
        sem_seg_dir: semantic labels of a panoptic split ("" = none).
        instances_json: COCO instances JSON used for instance evaluation of a panoptic split ("" = none).
        ignore_label: label value ignored in semantic maps (255, or 65535 for 16-bit .tif maps).
        label_divisor: panoptic label divisor (0 = not set).
        gt_ext, image_ext: file extensions.
        prepare: datasets/ script that creates the split (named in errors).
        drop_first_class: drop the vocabulary's first class (PAS-20 from the VOC-21 vocabulary).
    """

    name: str
    kind: str
    vocab: str
    evaluator_type: str
    image_dir: str
    gt_dir: str = ""
    json_file: str = ""
    sem_seg_dir: str = ""
    instances_json: str = ""
    ignore_label: int = 255
    label_divisor: int = 0
    gt_ext: str = "png"
    image_ext: str = "jpg"
    prepare: str = ""
    drop_first_class: bool = False


def _semseg(name, vocab, images, gt, prepare, *, ignore=255, ext="png", drop_first=False) -> Split:
    return Split(name, SEM_SEG, vocab, "sem_seg", images, gt, ignore_label=ignore, gt_ext=ext, prepare=prepare,
                 drop_first_class=drop_first)


def _build_table() -> Tuple[Split, ...]:
    t: List[Split] = []
    for split, ds in (("train", "train"), ("val", "val")):
        t.append(Split(f"openvocab_coco_2017_{split}_panoptic_with_sem_seg", COCO_PANOPTIC, "coco_panoptic",
                       "coco_panoptic_seg", f"coco/{ds}2017", f"coco/panoptic_{ds}2017",
                       f"coco/annotations/panoptic_{ds}2017.json", f"coco/panoptic_semseg_{ds}2017",
                       f"coco/annotations/instances_{ds}2017.json", label_divisor=1000,
                       prepare="prepare_coco_semantic_annos_from_panoptic_annos.py"))
        t.append(Split(f"openvocab_coco_2017_{split}", INSTANCE, "coco_panoptic", "coco", f"coco/{ds}2017",
                       json_file=f"coco/annotations/instances_{ds}2017.json", prepare=""))
    for split, ds in (("train", "train"), ("test", "val")):
        t.append(_semseg(f"openvocab_coco_2017_{split}_stuff_sem_seg", "coco_stuff", f"coco/{ds}2017",
                         f"coco/stuffthingmaps_detectron2/{ds}2017", "prepare_coco_stuff_sem_seg.py"))
    for split, d in (("train", "training"), ("val", "validation")):
        ade = "ADEChallengeData2016"
        t.append(Split(f"openvocab_ade20k_panoptic_{split}", STR_ID_PANOPTIC, "ade20k_150", "ade20k_panoptic_seg",
                       f"{ade}/images/{d}", f"{ade}/ade20k_panoptic_{split}", f"{ade}/ade20k_panoptic_{split}.json",
                       f"{ade}/annotations_detectron2/{d}", f"{ade}/ade20k_instance_{split}.json",
                       prepare="prepare_ade20k_pan_seg.py"))
        t.append(_semseg(f"openvocab_ade20k_sem_seg_{split}", "ade20k_150", f"{ade}/images/{d}",
                         f"{ade}/annotations_detectron2/{d}", "prepare_ade20k_sem_seg.py"))
        t.append(_semseg(f"openvocab_ade20k_full_sem_seg_{split}", "ade20k_847",
                         f"ADE20K_2021_17_01/images_detectron2/{d}", f"ADE20K_2021_17_01/annotations_detectron2/{d}",
                         "prepare_ade20k_full_sem_seg.py", ignore=65535, ext="tif"))
        t.append(Split(f"openvocab_ade20k_instance_{split}", INSTANCE, "ade20k_150", "coco", f"{ade}/images/{d}",
                       json_file=f"{ade}/ade20k_instance_{split}.json", prepare="prepare_ade20k_ins_seg.py"))
        t.append(_semseg(f"openvocab_pascal_ctx59_sem_seg_{split}", "pascal_ctx_59", f"pascal_ctx_d2/images/{d}",
                         f"pascal_ctx_d2/annotations_ctx59/{d}", "prepare_pascal_ctx_sem_seg.py"))
        t.append(_semseg(f"openvocab_pascal_ctx459_sem_seg_{split}", "pascal_ctx_459", f"pascal_ctx_d2/images/{d}",
                         f"pascal_ctx_d2/annotations_ctx459/{d}", "prepare_pascal_ctx_full_sem_seg.py",
                         ignore=65535, ext="tif"))
        t.append(_semseg(f"openvocab_pascal20_sem_seg_{split}", "pascal_voc_21", f"pascal_voc_d2/images/{d}",
                         f"pascal_voc_d2/annotations_pascal20/{d}", "prepare_pascal_voc_sem_seg.py", drop_first=True))
        t.append(_semseg(f"openvocab_pascal21_sem_seg_{split}", "pascal_voc_21", f"pascal_voc_d2/images/{d}",
                         f"pascal_voc_d2/annotations_pascal21/{d}", "prepare_pascal_voc_sem_seg.py"))
        mv = f"mapillary_vistas/{d}"
        # Mapillary Vistas: label 65 is "unlabeled" in its semantic maps (as registered by Mask2Former).
        t.append(Split(f"openvocab_mapillary_vistas_panoptic_{split}", STR_ID_PANOPTIC, "mapillary_vistas",
                       "mapillary_vistas_panoptic_seg", f"{mv}/images", f"{mv}/panoptic",
                       f"{mv}/panoptic/panoptic_2018.json", f"{mv}/labels", ignore_label=65, label_divisor=1000))
    for split in ("train", "val"):
        t.append(Split(f"openvocab_cityscapes_fine_panoptic_{split}", CITYSCAPES, "cityscapes",
                       "cityscapes_panoptic_seg", f"cityscapes/leftImg8bit/{split}",
                       f"cityscapes/gtFine/cityscapes_panoptic_{split}",
                       f"cityscapes/gtFine/cityscapes_panoptic_{split}.json", label_divisor=1000, image_ext="png"))
        s = "synthetic_shapes"
        t.append(Split(f"synthetic_shapes_panoptic_{split}", COCO_PANOPTIC, "synthetic_shapes", "coco_panoptic_seg",
                       f"{s}/images/{split}", f"{s}/panoptic/{split}", f"{s}/panoptic_{split}.json",
                       f"{s}/semantic/{split}", label_divisor=1000, prepare="tools/prepare_synthetic_dataset.py"))
    return tuple(t)


# Every split of SPEC §9 plus the synthetic test set, in registration order.
SPLITS: Tuple[Split, ...] = _build_table()
_BY_NAME: Dict[str, Split] = {s.name: s for s in SPLITS}


def get_split(name: str) -> Split:
    """The catalog record of a split name; raises ``KeyError`` with one line listing how to fix it."""
    if name not in _BY_NAME:
        raise KeyError(
            f"Unknown dataset '{name}': not in the mask_adapter catalog ({len(SPLITS)} splits, e.g. "
            "'openvocab_ade20k_panoptic_val'); check the spelling or register your own with register_custom_semseg"
        )
    return _BY_NAME[name]


def _abs(root: str, rel: str) -> str:
    return os.path.join(root, rel) if rel else ""


def split_metadata(split: Split, root: str) -> Dict[str, Any]:
    """All metadata fields of a split (reads its vocabulary)."""
    classes = class_table(split.vocab)
    if split.drop_first_class:
        classes = classes[1:]
    meta: Dict[str, Any] = {"image_root": _abs(root, split.image_dir)}
    if split.kind == SEM_SEG:
        meta.update(semantic_metadata(classes), sem_seg_root=_abs(root, split.gt_dir))
    elif split.kind == INSTANCE:
        meta.update(instance_metadata(classes), json_file=_abs(root, split.json_file))
    else:
        meta.update(panoptic_metadata(classes), panoptic_root=_abs(root, split.gt_dir),
                    panoptic_json=_abs(root, split.json_file))
        if split.sem_seg_dir:
            meta["sem_seg_root"] = _abs(root, split.sem_seg_dir)
        if split.instances_json:
            meta["json_file"] = _abs(root, split.instances_json)
    if split.label_divisor:
        meta["label_divisor"] = split.label_divisor
    return meta


def load_split(split: Split, root: str) -> List[Dict[str, Any]]:
    """Dataset dicts of a split (the function registered with ``DatasetCatalog``)."""
    p = functools.partial(_abs, root)
    if split.kind == SEM_SEG:
        return loaders.load_sem_seg_split(split.name, p(split.image_dir), p(split.gt_dir), gt_ext=split.gt_ext,
                                          image_ext=split.image_ext, prepare=split.prepare)
    meta = split_metadata(split, root)
    if split.kind == INSTANCE:
        return loaders.load_instance_split(split.name, p(split.json_file), p(split.image_dir), meta, split.prepare)
    if split.kind == CITYSCAPES:
        return loaders.load_cityscapes_split(split.name, p(split.image_dir), p(split.gt_dir), p(split.json_file),
                                             meta, split.prepare)
    args = (split.name, p(split.json_file), p(split.image_dir), p(split.gt_dir), p(split.sem_seg_dir), meta,
            split.prepare)
    if split.kind == COCO_PANOPTIC:
        return loaders.load_coco_panoptic_split(*args)
    return loaders.load_panoptic_str_ids(*args, image_ext=split.image_ext)


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


def register_all(root: Optional[str] = None, *, overwrite: bool = False) -> List[str]:
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
            name=OPENVOCAB_DEMO_DATASET, builder=openvocab_demo_metadata, dataname=OPENVOCAB_DEMO_DATASET,
            vocabulary_key="coco_panoptic+ade20k_150+lvis_1203", evaluator_type="sem_seg", ignore_label=255)
        done.append(OPENVOCAB_DEMO_DATASET)
    if skipped:
        logger.warning("mask_adapter: %d dataset names were already registered and were kept as they are: %s",
                       len(skipped), ", ".join(skipped))
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
    split = replace(_semseg(name, os.path.abspath(vocabulary_file), os.path.abspath(image_root),
                            os.path.abspath(gt_root), "", ignore=ignore_label, ext=gt_ext), image_ext=image_ext)
    register_split(split, "")
    return split
