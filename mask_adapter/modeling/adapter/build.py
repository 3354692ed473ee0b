"""Registry of mask adapters.

``MASK_ADAPTER_REGISTRY`` maps ``MODEL.MASK_ADAPTER.NAME`` to a class; ``build_mask_adapter(cfg, clip_dim)`` calls
``cls(cfg, clip_dim=...)`` (detectron2 ``@configurable`` classes accept a cfg) and returns an ``nn.Module`` whose
``forward(clip_feature (B, D, h, w), masks (B, N, H, W)) -> (B, N·K, h, w)`` and which exposes
``num_output_maps`` (K).
"""

from typing import Any

from detectron2.config import CfgNode, configurable
from detectron2.utils.registry import Registry
from torch import nn

from ...utils.registry import register_once
from .head import MaskAdapterHead

__all__ = ["MASK_ADAPTER_REGISTRY", "build_mask_adapter", "ConfigurableMaskAdapterHead"]

MASK_ADAPTER_REGISTRY = Registry("MASK_ADAPTER")
MASK_ADAPTER_REGISTRY.__doc__ = "Mask adapters: (dense CLIP feature, binary masks) -> activation maps."


class ConfigurableMaskAdapterHead(MaskAdapterHead):
    """``MaskAdapterHead`` buildable from a cfg (``MODEL.MASK_ADAPTER.*``); the official name is an alias."""

    @configurable
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @classmethod
    def from_config(cls, cfg: CfgNode, clip_dim: int) -> dict[str, Any]:
        """Head arguments; D is ``clip_dim`` (the CLIP backbone's width) unless MODEL.MASK_ADAPTER.CLIP_DIM > 0."""
        ma = cfg.MODEL.MASK_ADAPTER
        return {
            "clip_dim": int(ma.CLIP_DIM) if ma.CLIP_DIM > 0 else int(clip_dim),
            "num_channels": ma.NUM_CHANNELS,
            "mask_in_channels": ma.MASK_IN_CHANNELS,
            "num_output_maps": ma.NUM_OUTPUT_MAPS,
            "use_checkpoint": ma.USE_CHECKPOINT,
            "inference_memory_mb": ma.INFERENCE_MEMORY_MB,
            "dedupe_masks": ma.DEDUPE_MASKS,
            "compile_mode": str(ma.COMPILE).lower(),
        }


def build_mask_adapter(cfg: CfgNode, clip_dim: int) -> nn.Module:
    """Build the adapter named by ``MODEL.MASK_ADAPTER.NAME`` (official name ``MASKAdapterHead`` included).

    Args:
        cfg: merged config.
        clip_dim: D, the embedding width of the built CLIP backbone (``CLIPBackbone.embed_dim``);
            MODEL.MASK_ADAPTER.CLIP_DIM > 0 overrides it.
    """
    name = cfg.MODEL.MASK_ADAPTER.NAME
    if name not in MASK_ADAPTER_REGISTRY:
        raise KeyError(
            f"MODEL.MASK_ADAPTER.NAME={name!r} is not a registered mask adapter; "
            f"choose one of {sorted(k for k, _ in MASK_ADAPTER_REGISTRY)}"
        )
    return MASK_ADAPTER_REGISTRY.get(name)(cfg, clip_dim=clip_dim)


register_once(MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead)
