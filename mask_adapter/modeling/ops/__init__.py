"""Deformable attention: pure-PyTorch reference plus an optional, lazily imported kernel."""

from .ms_deform_attn import (
    MSDeformAttn,
    kernel_available,
    ms_deform_attn_core,
    ms_deform_attn_pytorch,
)

__all__ = ["MSDeformAttn", "kernel_available", "ms_deform_attn_core", "ms_deform_attn_pytorch"]
