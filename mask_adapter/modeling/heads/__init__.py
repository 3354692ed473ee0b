"""Segmentation heads (detectron2 SEM_SEG_HEADS_REGISTRY)."""

from .fcclip_head import FCCLIPHead, build_pixel_decoder

__all__ = ["FCCLIPHead", "build_pixel_decoder"]
