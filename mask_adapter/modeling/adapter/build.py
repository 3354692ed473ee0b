"""Registry of mask adapters.

``MASK_ADAPTER_REGISTRY`` maps ``MODEL.MASK_ADAPTER.NAME`` to a class; ``build_mask_adapter(cfg)`` calls
``cls(cfg)`` (detectron2 ``@configurable`` classes accept a cfg) and returns an ``nn.Module`` whose
``forward(clip_feature (B, D, h, w), masks (B, N, H, W)) -> (B, N·K, h, w)`` and which exposes
``num_output_maps`` (K).
"""
from detectron2.config import CfgNode, configurable
from detectron2.utils.registry import Registry
from torch import nn

from .head import MaskAdapterHead
from ...utils.registry import register_once

__all__ = ["MASK_ADAPTER_REGISTRY", "build_mask_adapter", "ConfigurableMaskAdapterHead"]

MASK_ADAPTER_REGISTRY = Registry("MASK_ADAPTER")
MASK_ADAPTER_REGISTRY.__doc__ = "Mask adapters: (dense CLIP feature, binary masks) -> activation maps."


class ConfigurableMaskAdapterHead(MaskAdapterHead):
    """``MaskAdapterHead`` buildable from a cfg (``MODEL.MASK_ADAPTER.*``); the official name is an alias."""

    @configurable
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict:
        from ...config import resolve_clip_dim

        ma = cfg.MODEL.MASK_ADAPTER
        clip_dim = ma.CLIP_DIM if ma.CLIP_DIM > 0 else resolve_clip_dim(cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME)
        return {
            "clip_dim": clip_dim,
            "num_channels": ma.NUM_CHANNELS,
            "mask_in_channels": ma.MASK_IN_CHANNELS,
            "num_output_maps": ma.NUM_OUTPUT_MAPS,
            "use_checkpoint": ma.USE_CHECKPOINT,
            "fast_inference": ma.FAST_INFERENCE,
            "inference_memory_mb": ma.INFERENCE_MEMORY_MB,
            "dedupe_masks": ma.DEDUPE_MASKS,
            "compile_mode": str(ma.COMPILE).lower(),
        }


def build_mask_adapter(cfg: CfgNode) -> nn.Module:
    """Build the adapter named by ``MODEL.MASK_ADAPTER.NAME`` (official name ``MASKAdapterHead`` included)."""
    name = cfg.MODEL.MASK_ADAPTER.NAME
    if name not in MASK_ADAPTER_REGISTRY:
        raise KeyError(
            f"MODEL.MASK_ADAPTER.NAME={name!r} is not a registered mask adapter; "
            f"choose one of {sorted(k for k, _ in MASK_ADAPTER_REGISTRY)}"
        )
    return MASK_ADAPTER_REGISTRY.get(name)(cfg)


register_once(MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead)
