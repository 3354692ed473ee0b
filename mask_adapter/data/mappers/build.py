"""``DATASET_MAPPER_REGISTRY`` and ``build_dataset_mapper(cfg, is_train)``.

Registry contract: each entry is registered under the ``INPUT.DATASET_MAPPER_NAME`` value of the official
configs and is called as ``entry(cfg, is_train, ignore_color_aug=...)``; it returns a callable mapping one
detectron2 dataset dict to one model input dict. Test-time mapping is detectron2's ``DatasetMapper(cfg, False)``
(ResizeShortestEdge to INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST), so no registry entry is needed for it.
"""

from collections.abc import Callable
from typing import Any

from detectron2.data import DatasetMapper
from fvcore.common.registry import Registry

from .lsj import COCOPanopticLSJMapper, MaskFormerSemanticMapper

__all__ = ["DATASET_MAPPER_REGISTRY", "build_dataset_mapper"]

DATASET_MAPPER_REGISTRY = Registry("DATASET_MAPPER")
DATASET_MAPPER_REGISTRY.__doc__ = """
Training dataset mappers keyed by ``INPUT.DATASET_MAPPER_NAME``. An entry is called as
``entry(cfg, is_train, ignore_color_aug=bool)`` and returns ``Callable[[dict], dict]``.
"""


@DATASET_MAPPER_REGISTRY.register()
def coco_panoptic_lsj(cfg, is_train: bool = True, *, ignore_color_aug: bool = False) -> Callable:
    """LSJ mapper producing one GT mask per panoptic segment (COCOPanopticLSJMapper)."""
    return COCOPanopticLSJMapper(cfg, is_train, ignore_color_aug=ignore_color_aug)


@DATASET_MAPPER_REGISTRY.register()
def mask_former_semantic(cfg, is_train: bool = True, *, ignore_color_aug: bool = False) -> Callable:
    """LSJ mapper producing one GT mask per class of the semantic map (MaskFormerSemanticMapper)."""
    return MaskFormerSemanticMapper(cfg, is_train, ignore_color_aug=ignore_color_aug)


def _unsupported(name: str, reason: str) -> Callable:
    def build(cfg, is_train: bool = True, *, ignore_color_aug: bool = False) -> Callable:
        raise ValueError(f"INPUT.DATASET_MAPPER_NAME '{name}' is not supported: {reason}")

    build.__name__ = name
    build.__doc__ = f"Official name kept so that base YAMLs load; building it raises ({reason})."
    return build


# Official names that base YAMLs set but child configs override: they resolve, building them fails
# with a clear error (the official stage-1 script hit a NameError).
_UNSUPPORTED: dict[str, str] = {
    "coco_combine_lsj": "the multi-dataset (combined) loader is not ported; use 'coco_panoptic_lsj' or "
    "'mask_former_semantic'",
}
for _name, _reason in _UNSUPPORTED.items():
    DATASET_MAPPER_REGISTRY.register(_unsupported(_name, _reason))


def build_dataset_mapper(cfg, is_train: bool, *, ignore_color_aug: bool = False) -> Callable[[dict], dict[str, Any]]:
    """Mapper for a data loader.

    Args:
        cfg: config (INPUT.DATASET_MAPPER_NAME selects the training mapper).
        is_train: True -> the registered LSJ mapper; False -> detectron2 ``DatasetMapper(cfg, False)``.
        ignore_color_aug: ignore INPUT.COLOR_AUG_SSD (set it for the stage-1 MASK_Adapter model, as officially).

    Returns:
        A callable mapping a dataset dict to a model input dict.
    """
    if not is_train:
        return DatasetMapper(cfg, False)
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if name not in DATASET_MAPPER_REGISTRY:
        known = ", ".join(sorted(k for k, _ in DATASET_MAPPER_REGISTRY))
        raise KeyError(f"Unknown INPUT.DATASET_MAPPER_NAME '{name}'; registered mappers: {known}")
    return DATASET_MAPPER_REGISTRY.get(name)(cfg, is_train, ignore_color_aug=ignore_color_aug)
