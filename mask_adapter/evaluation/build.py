"""Evaluator table: ``evaluator_type`` of a split x ``MODEL.MASK_FORMER.TEST.*_ON`` flags -> evaluators.

| evaluator_type | semantic (SEMANTIC_ON) | panoptic (PANOPTIC_ON) | instance (INSTANCE_ON) |
|---|---|---|---|
| sem_seg | OpenVocabSemSegEvaluator (always) | - | - |
| coco_panoptic_seg | OpenVocabSemSegEvaluator | COCOPanopticEvaluator | COCOEvaluator (metadata json_file) |
| ade20k_panoptic_seg, mapillary_vistas_panoptic_seg | OpenVocabSemSegEvaluator | COCOPanopticEvaluator | InstanceSegEvaluator |
| cityscapes_panoptic_seg | OpenVocabSemSegEvaluator | COCOPanopticEvaluator | CityscapesInstanceEvaluator |
| coco (instance splits) | - | - | COCOEvaluator |
| lvis | - | - | LVISEvaluator |

COCO evaluation uses the official pycocotools path (``use_fast_impl=False``): detectron2's fast evaluator needs
the compiled ``detectron2._C``. The flags only choose evaluators; the model's behaviour (CDT variant,
post-processing order) comes from its own config keys, never from which evaluators run.
"""

import logging
import os
from collections.abc import Callable

from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluator,
    DatasetEvaluators,
)

from ..utils.env import environment_versions
from .instance import InstanceSegEvaluator
from .sem_seg import OpenVocabSemSegEvaluator

__all__ = ["EVALUATOR_TABLE", "build_evaluator"]

logger = logging.getLogger(__name__)

Builder = Callable[[str, str | None], DatasetEvaluator]


def _semseg(name: str, out: str | None) -> DatasetEvaluator:
    return OpenVocabSemSegEvaluator(name, distributed=True, output_dir=out)


def _panoptic(name: str, out: str | None) -> DatasetEvaluator:
    return COCOPanopticEvaluator(name, out)


def _require_instance_json(name: str) -> None:
    json_file = MetadataCatalog.get(name).get("json_file")
    if not json_file or not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"Instance evaluation of '{name}' needs its COCO instances JSON (metadata json_file = {json_file!r}); "
            "create it (datasets/README.md) or set MODEL.MASK_FORMER.TEST.INSTANCE_ON False"
        )


def _coco(name: str, out: str | None) -> DatasetEvaluator:
    _require_instance_json(name)
    return COCOEvaluator(name, output_dir=out, use_fast_impl=False)


def _instance(name: str, out: str | None) -> DatasetEvaluator:
    _require_instance_json(name)
    return InstanceSegEvaluator(name, output_dir=out)


def _cityscapes_instance(name: str, out: str | None) -> DatasetEvaluator:
    from detectron2.evaluation import CityscapesInstanceEvaluator

    return CityscapesInstanceEvaluator(name)


def _lvis(name: str, out: str | None) -> DatasetEvaluator:
    from detectron2.evaluation import LVISEvaluator

    return LVISEvaluator(name, output_dir=out)


# flag: "always" or the TEST key that enables the evaluator.
EVALUATOR_TABLE: dict[str, list[tuple[str, Builder]]] = {
    "sem_seg": [("always", _semseg)],
    "coco_panoptic_seg": [
        ("SEMANTIC_ON", _semseg),
        ("PANOPTIC_ON", _panoptic),
        ("INSTANCE_ON", _coco),
    ],
    "ade20k_panoptic_seg": [
        ("SEMANTIC_ON", _semseg),
        ("PANOPTIC_ON", _panoptic),
        ("INSTANCE_ON", _instance),
    ],
    "mapillary_vistas_panoptic_seg": [
        ("SEMANTIC_ON", _semseg),
        ("PANOPTIC_ON", _panoptic),
        ("INSTANCE_ON", _instance),
    ],
    "cityscapes_panoptic_seg": [
        ("SEMANTIC_ON", _semseg),
        ("PANOPTIC_ON", _panoptic),
        ("INSTANCE_ON", _cityscapes_instance),
    ],
    "coco": [("INSTANCE_ON", _coco)],
    "lvis": [("INSTANCE_ON", _lvis)],
}


def build_evaluator(cfg, dataset_name: str, output_folder: str | None = None) -> DatasetEvaluator:
    """Evaluator(s) of one test split.

    Args:
        cfg: config; reads MODEL.MASK_FORMER.TEST.{SEMANTIC_ON, PANOPTIC_ON, INSTANCE_ON}.
        dataset_name: a registered split (its metadata gives ``evaluator_type``).
        output_folder: where evaluators write their files (None = nowhere).

    Returns:
        One evaluator, or a ``DatasetEvaluators`` when several apply.

    Raises:
        KeyError: the split's evaluator_type is not in ``EVALUATOR_TABLE``.
        ValueError: no evaluator is enabled by the TEST flags.
    """
    meta = MetadataCatalog.get(dataset_name)
    evaluator_type = meta.get("evaluator_type")
    if evaluator_type not in EVALUATOR_TABLE:
        raise KeyError(
            f"Dataset '{dataset_name}' has evaluator_type {evaluator_type!r}, which has no evaluator; known types: "
            f"{', '.join(EVALUATOR_TABLE)} (is the dataset registered? import mask_adapter registers the catalog)"
        )
    test = cfg.MODEL.MASK_FORMER.TEST
    evaluators = [
        build(dataset_name, output_folder)
        for flag, build in EVALUATOR_TABLE[evaluator_type]
        if flag == "always" or test.get(flag, False)
    ]
    if not evaluators:
        flags = [flag for flag, _ in EVALUATOR_TABLE[evaluator_type]]
        raise ValueError(
            f"No evaluator for '{dataset_name}' (evaluator_type {evaluator_type}): enable one of "
            f"MODEL.MASK_FORMER.TEST.{{{', '.join(flags)}}}"
        )
    logger.info(
        "Evaluating %s with %s; %s",
        dataset_name,
        [type(e).__name__ for e in evaluators],
        ", ".join(f"{k} {v}" for k, v in environment_versions().items()),
    )
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
