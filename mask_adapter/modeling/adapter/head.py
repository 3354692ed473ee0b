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

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from ...config.resolve import COMPILE_MODES

__all__ = ["MaskAdapterHead", "ConvNeXtBlock", "LayerNorm2d", "COMPILE_MODES"]


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


class _InferenceWeights(NamedTuple):
    """Weights of the no-grad inference path, folded once and cached (see ``MaskAdapterHead._inference_weights``).

    fold_w (16, C) and fold_b (C,): W_fuse·W6 and W_fuse·b6 + b_fuse; fuse_w (C, D); per block
    (dw_w, dw_b, ln_w, ln_b, w1 (4C, C), b1, w2 (C, 4C) scaled by γ, b2 scaled by γ); norm_w, norm_b, final_w (K, C),
    final_b.
    """

    fold_w: Tensor
    fold_b: Tensor
    fuse_w: Tensor
    blocks: tuple[tuple[Tensor, ...], ...]
    norm_w: Tensor
    norm_b: Tensor
    final_w: Tensor
    final_b: Tensor


class MaskAdapterHead(nn.Module):
    """Predicts K semantic activation maps per binary mask from the mask and the dense CLIP feature.

    Two computations give the same maps (to float reassociation, ≤1e-5 in fp32, tested):

    * ``forward_reference``: the official computation, every mask at once on N copies of the CLIP feature. Training
      (and any call that needs gradients) uses it, chunked by ``chunk_size``.
    * the inference path (``forward`` under ``torch.no_grad`` / ``torch.inference_mode`` in eval mode): ``fuse`` runs
      once per image and W_fuse is folded into the patchifier's last 1×1 conv (fuse(F + M) = fuse(F) + W_fuse·M),
      activations stay channels-last (masks·h·w, C) so the ConvNeXt MLPs are plain GEMMs run in blocks of
      ``block_rows`` tokens (the 4C-wide hidden layer never exists for all tokens), masks go in groups sized by
      ``inference_memory_mb``, and identical resized masks (empty masks, duplicated proposals) are computed once.
      Under ``torch.autocast`` it computes in the autocast dtype.

    Args:
        clip_dim: D, channels of the dense CLIP feature (the projected, embedding-width map).
        num_channels: C, width of the ConvNeXt blocks (768 in the released models, also for ConvNeXt-B).
        mask_in_channels: channels after the mask patchifier's second conv (16); the first conv has a quarter.
        num_output_maps: K, activation maps per mask.
        use_checkpoint: non-reentrant activation checkpointing of the ConvNeXt blocks while training.
        inference_memory_mb: memory budget of the inference path's activations; sets the masks per group.
        dedupe_masks: compute identical resized masks once at inference and copy their maps.
        block_rows: tokens per MLP block of the inference path.
        compile_mode: "none", or a ``torch.compile`` mode: at inference, run the reference computation compiled
            (``"reduce-overhead"`` uses CUDA graphs), in groups of the memory budget.
    """

    def __init__(
        self,
        *,
        clip_dim: int,
        num_channels: int = 768,
        mask_in_channels: int = 16,
        num_output_maps: int = 16,
        use_checkpoint: bool = False,
        inference_memory_mb: int = 128,
        dedupe_masks: bool = True,
        block_rows: int = 4096,
        compile_mode: str = "none",
    ) -> None:
        super().__init__()
        if mask_in_channels % 4 != 0 or mask_in_channels <= 0:
            raise ValueError(
                f"mask_in_channels must be a positive multiple of 4, got {mask_in_channels} "
                "(MODEL.MASK_ADAPTER.MASK_IN_CHANNELS)"
            )
        if inference_memory_mb < 1:
            raise ValueError(
                f"inference_memory_mb must be >= 1, got {inference_memory_mb} (MODEL.MASK_ADAPTER.INFERENCE_MEMORY_MB)"
            )
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r} (MODEL.MASK_ADAPTER.COMPILE)"
            )
        self.clip_dim = clip_dim
        self.num_output_maps = num_output_maps
        self.use_checkpoint = use_checkpoint
        self.inference_memory_mb = inference_memory_mb
        self.dedupe_masks = dedupe_masks
        self.block_rows = block_rows
        self.compile_mode = compile_mode
        self._compiled: Callable[[Tensor, Tensor], Tensor] | None = None
        # (masks, unique masks) of the last inference call, summed over the batch.
        self.last_dedupe: tuple[int, int] = (0, 0)
        self._weights_key: tuple | None = None
        self._weights: _InferenceWeights | None = None
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

    # ------------------------------------------------------------------ shared entry
    def _check_inputs(self, clip_feature: Tensor, masks: Tensor) -> None:
        if clip_feature.dim() != 4:
            raise ValueError(f"clip_feature must be (B, D, h, w), got shape {tuple(clip_feature.shape)}")
        if masks.dim() != 4:
            raise ValueError(
                f"masks must be (B, N, H, W), got shape {tuple(masks.shape)}; "
                "add a batch dimension with masks[None] for a single image"
            )
        b, d = clip_feature.shape[:2]
        if masks.shape[0] != b:
            raise ValueError(f"masks batch size {masks.shape[0]} != clip_feature batch size {b}")
        if d != self.clip_dim:
            raise ValueError(f"clip_feature has {d} channels, the head expects clip_dim={self.clip_dim}")

    def uses_inference_path(self, clip_feature: Tensor) -> bool:
        """Whether ``forward`` takes the inference path: eval mode and no gradient can be needed."""
        if self.training:
            return False
        if not torch.is_grad_enabled():
            return True
        return not clip_feature.requires_grad and not any(p.requires_grad for p in self.parameters())

    def forward(self, clip_feature: Tensor, masks: Tensor, chunk_size: int | None = None) -> Tensor:
        """Run the head on every mask of every image.

        Args:
            clip_feature: (B, D, h, w) dense CLIP feature.
            masks: (B, N, Hm, Wm) binary masks of any resolution and dtype (bool, uint8 or float).
            chunk_size: process at most this many masks per image at once (``None`` or 0: all, or as many as the
                memory budget allows on the inference path). Exact; bounds memory.

        Returns:
            (B, N·K, h, w) raw activation-map logits; channel ``n·K + k`` is map k of mask n.
        """
        self._check_inputs(clip_feature, masks)
        b, _, h, w = clip_feature.shape
        n = masks.shape[1]
        if n == 0:
            return clip_feature.new_zeros(b, 0, h, w)
        if self.uses_inference_path(clip_feature):
            if self.compile_mode != "none":
                return self._forward_compiled(clip_feature, masks, chunk_size)
            return self._forward_inference(clip_feature, masks, chunk_size)
        step = n if not chunk_size or chunk_size <= 0 else chunk_size
        outs = [self._forward_masks(clip_feature, masks[:, i : i + step]) for i in range(0, n, step)]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return out.reshape(b, n * self.num_output_maps, h, w)

    def forward_reference(self, clip_feature: Tensor, masks: Tensor) -> Tensor:
        """The official computation: every mask at once, N copies of the CLIP feature; same layout as ``forward``."""
        self._check_inputs(clip_feature, masks)
        b, _, h, w = clip_feature.shape
        if masks.shape[1] == 0:
            return clip_feature.new_zeros(b, 0, h, w)
        return self._forward_masks(clip_feature, masks).reshape(b, -1, h, w)

    # ------------------------------------------------------------------ reference computation
    def _blocks(self, x: Tensor) -> Tensor:
        for block in (self.cnext1, self.cnext2, self.cnext3):
            if self.use_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def _forward_masks(self, clip_feature: Tensor, masks: Tensor) -> Tensor:
        """(B, D, h, w), (B, n, Hm, Wm) -> (B, n, K, h, w). Sizes follow the inputs (no Python ints from shapes in
        the graph), so ``torch.jit.trace`` / ONNX export keep B, n, h, w dynamic."""
        h, w = clip_feature.shape[-2:]
        m = masks.to(clip_feature.dtype).flatten(0, 1).unsqueeze(1)  # (B·n, 1, Hm, Wm), image-major
        m = F.interpolate(m, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
        # expand + flatten repeats each image's feature n times, image-major (= repeat_interleave(n, dim=0)).
        feature = clip_feature.unsqueeze(1).expand(-1, masks.shape[1], -1, -1, -1).flatten(0, 1)
        x = self._blocks(self.fuse(feature + self.mask_downscaling(m)))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.final(x).unflatten(0, (clip_feature.shape[0], -1))

    def forward_traceable(self, clip_feature: Tensor, masks: Tensor) -> Tensor:
        """:meth:`forward_reference` without input checks: one straight-line graph whose sizes follow the inputs,
        for ``torch.jit.trace`` and ONNX export (``mask_adapter.export``).

        Args:
            clip_feature: (B, D, h, w) dense CLIP feature.
            masks: (B, N, Hm, Wm) binary masks (float or any dtype), N >= 1.

        Returns:
            (B, N·K, h, w) raw activation-map logits.
        """
        return self._forward_masks(clip_feature, masks).flatten(1, 2)

    # ------------------------------------------------------------------ inference path
    def _apply(self, fn, *args, **kwargs):
        self._weights_key, self._weights = None, None  # .to() / .double() / .cuda(): refold on the next call
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._weights_key, self._weights = None, None
        super()._load_from_state_dict(*args, **kwargs)

    def _inference_weights(self, dtype: torch.dtype) -> _InferenceWeights:
        """Folded weights in ``dtype``, cached until a parameter changes (identity or in-place version)."""
        key = (dtype,) + tuple((p.data_ptr(), p._version, p.device) for p in self.parameters())
        if self._weights is not None and self._weights_key == key:
            return self._weights
        with torch.no_grad():
            fuse_w = self.fuse.weight.flatten(1)  # (C, D)
            conv6 = self.mask_downscaling[6]
            fold_w = (fuse_w @ conv6.weight.flatten(1)).t()  # (16, C)
            fold_b = fuse_w @ conv6.bias + self.fuse.bias
            blocks = []
            for blk in (self.cnext1, self.cnext2, self.cnext3):
                g = blk.gamma
                blocks.append(
                    tuple(
                        t.to(dtype).contiguous()
                        for t in (
                            blk.dwconv.weight,
                            blk.dwconv.bias,
                            blk.norm.weight,
                            blk.norm.bias,
                            blk.pwconv1.weight,
                            blk.pwconv1.bias,
                            g[:, None] * blk.pwconv2.weight,
                            g * blk.pwconv2.bias,
                        )
                    )
                )
            cast = lambda t: t.detach().to(dtype).contiguous()  # noqa: E731
            weights = _InferenceWeights(
                fold_w=cast(fold_w),
                fold_b=cast(fold_b),
                fuse_w=cast(fuse_w),
                blocks=tuple(blocks),
                norm_w=cast(self.norm.weight),
                norm_b=cast(self.norm.bias),
                final_w=cast(self.final.weight.flatten(1)),
                final_b=cast(self.final.bias),
            )
        self._weights_key, self._weights = key, weights
        return weights

    def masks_per_group(self, h: int, w: int, dtype: torch.dtype = torch.float32) -> int:
        """Masks per group of the inference path under ``inference_memory_mb``: each mask holds the residual
        stream, the depthwise-conv output and the LayerNorm output, (h·w, C) each."""
        c = self.fuse.out_channels
        per_mask = 3 * h * w * c * torch.empty((), dtype=dtype).element_size()
        return max(1, (self.inference_memory_mb << 20) // per_mask)

    def _resized_masks(self, masks: Tensor, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """(N, Hm, Wm) any dtype -> (N, 4h, 4w) bilinear in ``dtype``, converted a few masks at a time."""
        n = masks.shape[0]
        out = torch.empty(n, 4 * h, 4 * w, dtype=dtype, device=masks.device)
        step = max(1, (16 << 20) // max(1, masks[0].numel() * torch.empty((), dtype=dtype).element_size()))
        for i in range(0, n, step):
            m = masks[i : i + step, None].to(dtype)
            out[i : i + step] = F.interpolate(m, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[:, 0]
        return out

    def _forward_compiled(self, clip_feature: Tensor, masks: Tensor, chunk_size: int | None) -> Tensor:
        """The reference computation under ``torch.compile(mode=compile_mode)``, in groups of the memory budget."""
        if self._compiled is None:
            self._compiled = torch.compile(self._forward_masks, mode=self.compile_mode)
        b, _, h, w = clip_feature.shape
        n = masks.shape[1]
        step = self.masks_per_group(h, w, clip_feature.dtype)
        step = min(step, chunk_size) if chunk_size and chunk_size > 0 else step
        outs = [self._compiled(clip_feature, masks[:, i : i + step]) for i in range(0, n, step)]
        return torch.cat(outs, dim=1).reshape(b, n * self.num_output_maps, h, w)

    def _forward_inference(self, clip_feature: Tensor, masks: Tensor, chunk_size: int | None) -> Tensor:
        """The inference path of ``forward`` (same arguments and result)."""
        b, _, h, w = clip_feature.shape
        n, k = masks.shape[1], self.num_output_maps
        device_type = clip_feature.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else clip_feature.dtype
        param_dtype = self.fuse.weight.dtype
        with torch.autocast(device_type, enabled=False):
            wts = self._inference_weights(dtype)
            group = self.masks_per_group(h, w, dtype)
            if chunk_size and chunk_size > 0:
                group = min(group, chunk_size)
            out = clip_feature.new_empty(b, n, k, h, w)
            total = unique_total = 0
            for i in range(b):
                # fuse(F) + W_fuse·b6 once per image, channels-last: (h·w, C)
                feat = clip_feature[i].to(dtype).flatten(1).t()
                base = torch.addmm(wts.fold_b, feat, wts.fuse_w.t())
                m = self._resized_masks(masks[i], h, w, param_dtype)
                inverse = None
                if self.dedupe_masks and n > 1:
                    uniq, inverse = torch.unique(m.flatten(1), dim=0, return_inverse=True)
                    if uniq.shape[0] < n:
                        m = uniq.view(-1, 4 * h, 4 * w)
                    else:
                        inverse = None
                total, unique_total = total + n, unique_total + m.shape[0]
                maps = self._inference_maps(m, base, wts, h, w, group, dtype)  # (U, K, h, w)
                out[i] = maps[inverse] if inverse is not None else maps
            self.last_dedupe = (total, unique_total)
        return out.view(b, n * k, h, w)

    def _inference_maps(
        self, m: Tensor, base: Tensor, wts: _InferenceWeights, h: int, w: int, group: int, dtype: torch.dtype
    ) -> Tensor:
        """(U, 4h, 4w) resized masks, (h·w, C) fused image feature -> (U, K, h, w) maps, ``group`` masks at a time."""
        u, hw, c = m.shape[0], h * w, base.shape[1]
        maps = base.new_empty(u, self.num_output_maps, h, w)
        rows = min(self.block_rows, group * hw)
        hidden = base.new_empty(rows, 4 * c)
        for g0 in range(0, u, group):
            g = min(group, u - g0)
            z = self.mask_downscaling[:6](m[g0 : g0 + g, None])  # (g, 16, h, w)
            z = z.to(dtype).permute(0, 2, 3, 1).reshape(g * hw, -1)
            x = torch.mm(z, wts.fold_w).view(g, hw, c).add_(base).view(g * hw, c)
            for dw_w, dw_b, ln_w, ln_b, w1, b1, w2, b2 in wts.blocks:
                # depthwise 7×7 on the channels-last buffer (an NCHW view in channels_last memory format)
                y = F.conv2d(x.view(g, h, w, c).permute(0, 3, 1, 2), dw_w, dw_b, padding=3, groups=c)
                y = y.permute(0, 2, 3, 1).reshape(g * hw, c)
                for r0 in range(0, g * hw, rows):
                    r1 = min(r0 + rows, g * hw)
                    t = F.layer_norm(y[r0:r1], (c,), ln_w, ln_b, 1e-6)
                    a = torch.addmm(b1, t, w1.t(), out=hidden[: r1 - r0])
                    torch.ops.aten.gelu_(a)
                    x[r0:r1].addmm_(a, w2.t()).add_(b2)
                del y
            x = F.layer_norm(x, (c,), wts.norm_w, wts.norm_b, self.norm.eps)
            o = torch.addmm(wts.final_b, x, wts.final_w.t())  # (g·h·w, K)
            maps[g0 : g0 + g] = o.view(g, h, w, -1).permute(0, 3, 1, 2)
        return maps
