"""Registry of Mask2Former-style transformer decoders and a duplicate-safe registration helper.

``TRANSFORMER_DECODER_REGISTRY`` (named "TRANSFORMER_MODULE" as in Mask2Former) maps
``MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME`` to a class called as ``cls(cfg, in_channels,
mask_classification)``; the module's ``forward(x, mask_features, mask=None, ...)`` returns a dict
with ``pred_logits`` (B, Q, C+1), ``pred_masks`` (B, Q, h, w) and ``aux_outputs``.
"""

import logging
from typing import TypeVar

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["TRANSFORMER_DECODER_REGISTRY", "build_transformer_decoder", "register_once"]

logger = logging.getLogger(__name__)

TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Transformer decoders of mask-classification models: called as ``cls(cfg, in_channels,
mask_classification)``; forward returns pred_logits / pred_masks / aux_outputs.
"""

T = TypeVar("T", bound=type)


def register_once(registry: Registry, obj: T) -> T:
    """Register ``obj`` under ``obj.__name__`` unless the name is taken (usable as a decorator).

    The official FC-CLIP / MAFT+ / Mask-Adapter packages all register the same names, so importing
    two of them crashed. Here an existing entry wins and a warning names the conflict.

    Args:
        registry: a detectron2 ``Registry``.
        obj: class to register.

    Returns:
        ``obj`` unchanged.
    """
    key = obj.__name__
    if key not in registry:
        registry.register(obj)
        return obj
    existing = registry.get(key)
    if existing is not obj:
        logger.warning(
            "a registry already holds %r (%s.%s); keeping it, %s.%s is not registered",
            key,
            existing.__module__,
            existing.__qualname__,
            obj.__module__,
            obj.__qualname__,
        )
    return obj


def build_transformer_decoder(
    cfg: CfgNode, in_channels: int, mask_classification: bool = True
) -> nn.Module:
    """Build the decoder named by ``MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME``.

    Args:
        cfg: full config.
        in_channels: channels of the multi-scale decoder input (SEM_SEG_HEAD.CONVS_DIM).
        mask_classification: whether the decoder predicts classes (always True here).

    Returns:
        The decoder module.
    """
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    if name not in TRANSFORMER_DECODER_REGISTRY:
        raise ValueError(
            f"MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME={name!r} is not supported; choose one of "
            f"{sorted(k for k, _ in TRANSFORMER_DECODER_REGISTRY)}"
        )
    return TRANSFORMER_DECODER_REGISTRY.get(name)(cfg, in_channels, mask_classification)
