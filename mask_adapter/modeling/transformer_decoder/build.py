"""Registry of Mask2Former-style transformer decoders.

``TRANSFORMER_DECODER_REGISTRY`` (named "TRANSFORMER_MODULE" as in Mask2Former) maps
``MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME`` to a class called as ``cls(cfg, in_channels,
mask_classification)``; the module's ``forward(x, mask_features, mask=None, ...)`` returns a dict
with ``pred_logits`` (B, Q, C+1), ``pred_masks`` (B, Q, h, w) and ``aux_outputs``.
"""

import logging

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry
from torch import nn

from ...utils.registry import register_once

__all__ = ["TRANSFORMER_DECODER_REGISTRY", "build_transformer_decoder", "register_once"]

logger = logging.getLogger(__name__)

TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = """
Transformer decoders of mask-classification models: called as ``cls(cfg, in_channels,
mask_classification)``; forward returns pred_logits / pred_masks / aux_outputs.
"""


def build_transformer_decoder(cfg: CfgNode, in_channels: int, mask_classification: bool = True) -> nn.Module:
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
