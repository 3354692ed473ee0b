"""Pixel decoders (registered in detectron2's SEM_SEG_HEADS_REGISTRY, as in Mask2Former)."""

from .msdeformattn import MSDeformAttnPixelDecoder, MSDeformAttnTransformerEncoderOnly

__all__ = ["MSDeformAttnPixelDecoder", "MSDeformAttnTransformerEncoderOnly"]
