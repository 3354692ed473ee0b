"""Deformable attention: pure-PyTorch gather (default) and grid_sample reference, plus an optional, lazily imported
compiled kernel."""

from .ms_deform_attn import (
    MSDeformAttn,
    kernel_available,
    ms_deform_attn_core,
    ms_deform_attn_gather,
    ms_deform_attn_pytorch,
)

__all__ = ["MSDeformAttn", "kernel_available", "ms_deform_attn_core", "ms_deform_attn_gather", "ms_deform_attn_pytorch"]
