"""MaskAdapterHead: binary proposal masks + dense CLIP features -> semantic activation maps.

Shapes used in this module:
    B   images in the batch
    N   masks per image
    K   semantic activation maps per mask (``num_output_maps``, 16 in every released model)
    D   width of the dense CLIP feature given to the head (``clip_dim``: 768 ConvNeXt-L, 640 ConvNeXt-B)
    C   internal width of the head (``num_channels``, 768 in every released model)
    h×w the stride-32 grid of the padded image; masks are resized to (4h, 4w) before being patchified.

The module names and ``nn.Sequential`` indices below are part of the released checkpoints' key layout
(``mask_adapter.fuse``, ``mask_adapter.cnext1.dwconv``, ``mask_adapter.mask_downscaling.6`` ...): do not rename.
"""
from typing import Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

__all__ = ["MaskAdapterHead", "ConvNeXtBlock", "LayerNorm2d"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (SAM's mask-downscaler norm)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt v1 block: depthwise 7×7 -> LayerNorm (channels-last, eps 1e-6) -> MLP ×4 -> layer scale + residual.

    No drop-path (rate 0 in the released models) and no GRN.
    """

    def __init__(self, dim: int, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class MaskAdapterHead(nn.Module):
    """Predicts K semantic activation maps per binary mask from the mask and the dense CLIP feature.

    Args:
        clip_dim: D, channels of the dense CLIP feature (the projected, embedding-width map).
        num_channels: C, width of the ConvNeXt blocks (768 in the released models, also for ConvNeXt-B).
        mask_in_channels: channels after the mask patchifier's second conv (16); the first conv has a quarter.
        num_output_maps: K, activation maps per mask.
        use_checkpoint: non-reentrant activation checkpointing of the ConvNeXt blocks while training.
        fast_inference: at inference, use fuse(F + M) = fuse(F) + W_fuse·M: run ``fuse`` once per image and fold
            W_fuse into the mask patchifier's last 1×1 conv (exact up to float reassociation).
    """

    def __init__(
        self,
        *,
        clip_dim: int,
        num_channels: int = 768,
        mask_in_channels: int = 16,
        num_output_maps: int = 16,
        use_checkpoint: bool = False,
        fast_inference: bool = False,
    ) -> None:
        super().__init__()
        if mask_in_channels % 4 != 0 or mask_in_channels <= 0:
            raise ValueError(
                f"mask_in_channels must be a positive multiple of 4, got {mask_in_channels} "
                "(MODEL.MASK_ADAPTER.MASK_IN_CHANNELS)"
            )
        self.clip_dim = clip_dim
        self.num_output_maps = num_output_maps
        self.use_checkpoint = use_checkpoint
        self.fast_inference = fast_inference
        # Registration order matters only for readability; the names are the checkpoint keys.
        self.fuse = nn.Conv2d(clip_dim, num_channels, kernel_size=1)
        self.cnext1 = ConvNeXtBlock(num_channels)
        self.cnext2 = ConvNeXtBlock(num_channels)
        self.cnext3 = ConvNeXtBlock(num_channels)
        self.norm = nn.LayerNorm(num_channels)  # eps 1e-5, applied channels-last
        self.final = nn.Conv2d(num_channels, num_output_maps, kernel_size=1)
        quarter = mask_in_channels // 4
        # SAM-style mask patchifier: two stride-2 convs (stride 4 in total) then a 1x1 to D.
        # Indices 0..6 are part of the released key layout (2 and 5 are the parameter-free GELUs).
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=3, stride=2, padding=1),
            LayerNorm2d(quarter),
            nn.GELU(),
            nn.Conv2d(quarter, mask_in_channels, kernel_size=3, stride=2, padding=1),
            LayerNorm2d(mask_in_channels),
            nn.GELU(),
            nn.Conv2d(mask_in_channels, clip_dim, kernel_size=1),
        )

    def _blocks(self, x: Tensor) -> Tensor:
        for block in (self.cnext1, self.cnext2, self.cnext3):
            if self.use_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, clip_feature: Tensor, masks: Tensor, chunk_size: Optional[int] = None) -> Tensor:
        """Run the head on every mask of every image.

        Args:
            clip_feature: (B, D, h, w) dense CLIP feature.
            masks: (B, N, Hm, Wm) binary masks of any resolution and dtype (bool, uint8 or float).
            chunk_size: process at most this many masks per image at once (``None`` or 0: all). Exact; bounds memory.

        Returns:
            (B, N·K, h, w) raw activation-map logits; channel ``n·K + k`` is map k of mask n.
        """
        if clip_feature.dim() != 4:
            raise ValueError(
                f"clip_feature must be (B, D, h, w), got shape {tuple(clip_feature.shape)}"
            )
        if masks.dim() != 4:
            raise ValueError(
                f"masks must be (B, N, H, W), got shape {tuple(masks.shape)}; "
                "add a batch dimension with masks[None] for a single image"
            )
        b, d, h, w = clip_feature.shape
        if masks.shape[0] != b:
            raise ValueError(f"masks batch size {masks.shape[0]} != clip_feature batch size {b}")
        if d != self.clip_dim:
            raise ValueError(f"clip_feature has {d} channels, the head expects clip_dim={self.clip_dim}")
        n = masks.shape[1]
        if n == 0:
            return clip_feature.new_zeros(b, 0, h, w)
        step = n if not chunk_size or chunk_size <= 0 else chunk_size
        outs = [self._forward_masks(clip_feature, masks[:, i : i + step]) for i in range(0, n, step)]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return out.reshape(b, n * self.num_output_maps, h, w)

    def _fused_input(self, clip_feature: Tensor, m: Tensor, n: int) -> Tensor:
        """fuse(F_rep + conv6(z)) computed as fuse(F)_rep + (W_fuse·W6) z + W_fuse·b6: (B·n, C, h, w)."""
        conv6 = self.mask_downscaling[6]
        w_fuse = self.fuse.weight.flatten(1)  # (C, D)
        weight = (w_fuse @ conv6.weight.flatten(1))[:, :, None, None]  # (C, 16, 1, 1)
        bias = w_fuse @ conv6.bias
        z = self.mask_downscaling[:6](m)
        return self.fuse(clip_feature).repeat_interleave(n, dim=0) + F.conv2d(z, weight, bias)

    def _forward_masks(self, clip_feature: Tensor, masks: Tensor) -> Tensor:
        """(B, D, h, w), (B, n, Hm, Wm) -> (B, n, K, h, w)."""
        b, d, h, w = clip_feature.shape
        n = masks.shape[1]
        m = masks.to(clip_feature.dtype).reshape(b * n, 1, *masks.shape[-2:])
        m = F.interpolate(m, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
        if self.fast_inference and not self.training:
            x = self._fused_input(clip_feature, m, n)
        else:
            x = self.fuse(clip_feature.repeat_interleave(n, dim=0) + self.mask_downscaling(m))
        x = self._blocks(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.final(x).reshape(b, n, self.num_output_maps, h, w)

    def forward_traceable(self, clip_feature: Tensor, masks: Tensor) -> Tensor:
        """The math of :meth:`forward` without input checks, chunking or ``fast_inference``: one straight-line graph
        whose sizes follow the inputs, for ``torch.jit.trace`` and ONNX export (``mask_adapter.export``).

        Args:
            clip_feature: (B, D, h, w) dense CLIP feature.
            masks: (B, N, Hm, Wm) binary masks (float or any dtype), N >= 1.

        Returns:
            (B, N·K, h, w) raw activation-map logits, equal to ``forward(clip_feature, masks)``.
        """
        h, w = clip_feature.shape[-2:]
        m = masks.to(clip_feature.dtype).flatten(0, 1).unsqueeze(1)  # (B·N, 1, Hm, Wm), image-major
        m = F.interpolate(m, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
        # expand + flatten repeats each image's feature N times, image-major, like repeat_interleave(N, dim=0).
        feature = clip_feature.unsqueeze(1).expand(-1, masks.shape[1], -1, -1, -1).flatten(0, 1)
        x = self._blocks(self.fuse(feature + self.mask_downscaling(m)))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.final(x).unflatten(0, (clip_feature.shape[0], -1)).flatten(1, 2)
