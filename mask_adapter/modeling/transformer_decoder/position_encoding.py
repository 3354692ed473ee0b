"""Parameter-free sine position embedding (DETR / Mask2Former), used by the pixel decoder, the
transformer decoder and MAFT+'s content-dependent transfer.

Shapes: B images, H×W feature grid, F = num_pos_feats; the embedding has 2F channels (y, then x).
"""

import math

import torch
from torch import Tensor, nn

__all__ = ["PositionEmbeddingSine"]


class PositionEmbeddingSine(nn.Module):
    """Sine/cosine embedding of the (y, x) pixel index, interleaved sin/cos per frequency.

    Args:
        num_pos_feats: F, channels per axis (output has 2F channels).
        temperature: base of the geometric frequency progression.
        normalize: divide the cumulative index by the last one (so it spans (0, 1]) and multiply by
            ``scale``.
        scale: multiplier used with ``normalize``; default 2π. Passing it without ``normalize``
            raises.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000,
        normalize: bool = False,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("PositionEmbeddingSine: scale is only used with normalize=True; set both")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Embed the grid of ``x``.

        Args:
            x: (B, *, H, W); only its batch size, spatial size and device are used.
            mask: optional (B, H, W) bool, True at padded pixels (not counted in the index).

        Returns:
            (B, 2F, H, W) float32 embedding.
        """
        if mask is None:
            mask = torch.zeros((x.size(0), x.size(-2), x.size(-1)), device=x.device, dtype=torch.bool)
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )
