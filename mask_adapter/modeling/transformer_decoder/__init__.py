"""Mask2Former-style transformer decoders, their registry, and the sine position embedding."""

from .build import TRANSFORMER_DECODER_REGISTRY, build_transformer_decoder, register_once
from .fcclip_decoder import MultiScaleMaskedTransformerDecoder, mask_pool
from .position_encoding import PositionEmbeddingSine

__all__ = [
    "TRANSFORMER_DECODER_REGISTRY",
    "build_transformer_decoder",
    "register_once",
    "MultiScaleMaskedTransformerDecoder",
    "mask_pool",
    "PositionEmbeddingSine",
]
