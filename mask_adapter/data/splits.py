"""The split table: one frozen :class:`Split` record per registered dataset split (the official registrations).

Paths are relative to the dataset root (``$DETECTRON2_DATASETS``, default "datasets"); names, folders, evaluator
types and ignore labels follow the official registrations. :mod:`mask_adapter.data.catalog` registers them.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Split",
    "SPLITS",
    "get_split",
    "semseg_split",
    "SEM_SEG",
    "COCO_PANOPTIC",
    "STR_ID_PANOPTIC",
    "INSTANCE",
    "CITYSCAPES",
]

# Loader kinds.
SEM_SEG, COCO_PANOPTIC, STR_ID_PANOPTIC, INSTANCE, CITYSCAPES = (
    "sem_seg",
    "coco_panoptic",
    "str_id_panoptic",
    "instance",
    "cityscapes_panoptic",
)


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


def semseg_split(
    name: str,
    vocab: str,
    images: str,
    gt: str,
    prepare: str = "",
    *,
    ignore: int = 255,
    ext: str = "png",
    image_ext: str = "jpg",
    drop_first: bool = False,
) -> Split:
    """A semantic-segmentation :class:`Split` (evaluator "sem_seg"); arguments as the Split attributes."""
    return Split(
        name,
        SEM_SEG,
        vocab,
        "sem_seg",
        images,
        gt,
        ignore_label=ignore,
        gt_ext=ext,
        image_ext=image_ext,
        prepare=prepare,
        drop_first_class=drop_first,
    )


def _render(template: Split, **fields: str) -> Split:
    """``template`` with every string attribute formatted with ``fields`` ({split}, {d})."""
    values = {f.name: getattr(template, f.name) for f in dataclasses.fields(template)}
    return Split(**{k: v.format(**fields) if isinstance(v, str) else v for k, v in values.items()})


def _per_split(templates: Sequence[Split], pairs: Sequence[tuple[str, str]]) -> list[Split]:
    """Every template for every (split, folder) pair, pair by pair."""
    return [_render(t, split=split, d=d) for split, d in pairs for t in templates]


_ADE = "ADEChallengeData2016"
_CTX = "pascal_ctx_d2"
_VOC = "pascal_voc_d2"
_MV = "mapillary_vistas/{d}"
_SYN = "synthetic_shapes"

# Templates: {split} is the registered split name, {d} the folder name of that split.
_COCO = (
    Split(
        "openvocab_coco_2017_{split}_panoptic_with_sem_seg",
        COCO_PANOPTIC,
        "coco_panoptic",
        "coco_panoptic_seg",
        "coco/{d}2017",
        "coco/panoptic_{d}2017",
        "coco/annotations/panoptic_{d}2017.json",
        "coco/panoptic_semseg_{d}2017",
        "coco/annotations/instances_{d}2017.json",
        label_divisor=1000,
        prepare="prepare_coco_semantic_annos_from_panoptic_annos.py",
    ),
    Split(
        "openvocab_coco_2017_{split}",
        INSTANCE,
        "coco_panoptic",
        "coco",
        "coco/{d}2017",
        json_file="coco/annotations/instances_{d}2017.json",
    ),
)
_COCO_STUFF = (
    semseg_split(
        "openvocab_coco_2017_{split}_stuff_sem_seg",
        "coco_stuff",
        "coco/{d}2017",
        "coco/stuffthingmaps_detectron2/{d}2017",
        "prepare_coco_stuff_sem_seg.py",
    ),
)
_ADE_PASCAL_MAPILLARY = (
    Split(
        "openvocab_ade20k_panoptic_{split}",
        STR_ID_PANOPTIC,
        "ade20k_150",
        "ade20k_panoptic_seg",
        f"{_ADE}/images/{{d}}",
        f"{_ADE}/ade20k_panoptic_{{split}}",
        f"{_ADE}/ade20k_panoptic_{{split}}.json",
        f"{_ADE}/annotations_detectron2/{{d}}",
        f"{_ADE}/ade20k_instance_{{split}}.json",
        prepare="prepare_ade20k_pan_seg.py",
    ),
    semseg_split(
        "openvocab_ade20k_sem_seg_{split}",
        "ade20k_150",
        f"{_ADE}/images/{{d}}",
        f"{_ADE}/annotations_detectron2/{{d}}",
        "prepare_ade20k_sem_seg.py",
    ),
    semseg_split(
        "openvocab_ade20k_full_sem_seg_{split}",
        "ade20k_847",
        "ADE20K_2021_17_01/images_detectron2/{d}",
        "ADE20K_2021_17_01/annotations_detectron2/{d}",
        "prepare_ade20k_full_sem_seg.py",
        ignore=65535,
        ext="tif",
    ),
    Split(
        "openvocab_ade20k_instance_{split}",
        INSTANCE,
        "ade20k_150",
        "coco",
        f"{_ADE}/images/{{d}}",
        json_file=f"{_ADE}/ade20k_instance_{{split}}.json",
        prepare="prepare_ade20k_ins_seg.py",
    ),
    semseg_split(
        "openvocab_pascal_ctx59_sem_seg_{split}",
        "pascal_ctx_59",
        f"{_CTX}/images/{{d}}",
        f"{_CTX}/annotations_ctx59/{{d}}",
        "prepare_pascal_ctx_sem_seg.py",
    ),
    semseg_split(
        "openvocab_pascal_ctx459_sem_seg_{split}",
        "pascal_ctx_459",
        f"{_CTX}/images/{{d}}",
        f"{_CTX}/annotations_ctx459/{{d}}",
        "prepare_pascal_ctx_full_sem_seg.py",
        ignore=65535,
        ext="tif",
    ),
    semseg_split(
        "openvocab_pascal20_sem_seg_{split}",
        "pascal_voc_21",
        f"{_VOC}/images/{{d}}",
        f"{_VOC}/annotations_pascal20/{{d}}",
        "prepare_pascal_voc_sem_seg.py",
        drop_first=True,
    ),
    semseg_split(
        "openvocab_pascal21_sem_seg_{split}",
        "pascal_voc_21",
        f"{_VOC}/images/{{d}}",
        f"{_VOC}/annotations_pascal21/{{d}}",
        "prepare_pascal_voc_sem_seg.py",
    ),
    # Mapillary Vistas: label 65 is "unlabeled" in its semantic maps (as registered by Mask2Former).
    Split(
        "openvocab_mapillary_vistas_panoptic_{split}",
        STR_ID_PANOPTIC,
        "mapillary_vistas",
        "mapillary_vistas_panoptic_seg",
        f"{_MV}/images",
        f"{_MV}/panoptic",
        f"{_MV}/panoptic/panoptic_2018.json",
        f"{_MV}/labels",
        ignore_label=65,
        label_divisor=1000,
        prepare="prepare_mapillary_vistas_panoptic.py",
    ),
)
_CITYSCAPES_SYNTHETIC = (
    Split(
        "openvocab_cityscapes_fine_panoptic_{split}",
        CITYSCAPES,
        "cityscapes",
        "cityscapes_panoptic_seg",
        "cityscapes/leftImg8bit/{split}",
        "cityscapes/gtFine/cityscapes_panoptic_{split}",
        "cityscapes/gtFine/cityscapes_panoptic_{split}.json",
        label_divisor=1000,
        image_ext="png",
        prepare="prepare_cityscapes_panoptic.py",
    ),
    Split(
        "synthetic_shapes_panoptic_{split}",
        COCO_PANOPTIC,
        "synthetic_shapes",
        "coco_panoptic_seg",
        f"{_SYN}/images/{{split}}",
        f"{_SYN}/panoptic/{{split}}",
        f"{_SYN}/panoptic_{{split}}.json",
        f"{_SYN}/semantic/{{split}}",
        f"{_SYN}/instances_{{split}}.json",
        label_divisor=1000,
        prepare="tools/prepare_synthetic_dataset.py",
    ),
)


# Every officially registered split plus the synthetic test set, in registration order.
SPLITS: tuple[Split, ...] = tuple(
    _per_split(_COCO, (("train", "train"), ("val", "val")))
    + _per_split(_COCO_STUFF, (("train", "train"), ("test", "val")))
    + _per_split(_ADE_PASCAL_MAPILLARY, (("train", "training"), ("val", "validation")))
    + _per_split(_CITYSCAPES_SYNTHETIC, (("train", "train"), ("val", "val")))
)
_BY_NAME: dict[str, Split] = {s.name: s for s in SPLITS}


def get_split(name: str) -> Split:
    """The catalog record of a split name; raises ``KeyError`` with one line listing how to fix it."""
    if name not in _BY_NAME:
        raise KeyError(
            f"Unknown dataset '{name}': not in the mask_adapter catalog ({len(SPLITS)} splits, e.g. "
            "'openvocab_ade20k_panoptic_val'); check the spelling or register your own with register_custom_semseg"
        )
    return _BY_NAME[name]
