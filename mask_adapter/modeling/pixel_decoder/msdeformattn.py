"""Mask2Former's multi-scale deformable-attention pixel decoder (as used by FC-CLIP and MAFT+).

A deformable-attention transformer encoder refines the stride-8/16/32 features (res3–res5); an FPN
branch adds the stride-4 level; a 1×1 conv gives the per-pixel mask features.

Shapes: B images; C_in backbone channels of a level; E = conv_dim (256); D_m = mask_dim (256);
H_s×W_s the grid of stride s; S = Σ_l H_l·W_l over the encoder levels.
Submodule names follow the official checkpoints (``input_proj``, ``transformer.encoder.layers.N``,
``transformer.level_embed``, ``mask_features``, ``adapter_1``, ``layer_1``).
"""

import copy
import math
from collections.abc import Callable

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import Tensor, nn

from ..ops import MSDeformAttn
from ..transformer_decoder.build import register_once
from ..transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = [
    "MSDeformAttnPixelDecoder",
    "MSDeformAttnTransformerEncoderOnly",
    "MSDeformAttnTransformerEncoderLayer",
]

# Mask2Former hard-codes the encoder FFN width to 1024 (MASK_FORMER.DIM_FEEDFORWARD is the
# decoder's); the released checkpoints have linear1 of shape 1024×256.
ENCODER_DIM_FEEDFORWARD = 1024


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    table = {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}
    if name not in table:
        raise ValueError(f"activation must be one of {sorted(table)}, got {name!r}")
    return table[name]


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention, then a ReLU FFN."""

    def __init__(
        self,
        d_model: int = 256,
        d_ffn: int = 1024,
        dropout: float = 0.1,
        activation: str = "relu",
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = _activation(activation)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """src, pos: (B, S, E); reference_points (B, S, L, 2). Returns (B, S, E)."""
        attn = self.self_attn(src + pos, reference_points, src, spatial_shapes, level_start_index, padding_mask)
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class MSDeformAttnTransformerEncoder(nn.Module):
    """A stack of identical (deep-copied) encoder layers sharing one set of reference points."""

    def __init__(self, encoder_layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers

    @staticmethod
    def get_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor, device: torch.device) -> Tensor:
        """Normalised pixel centres of all levels, (B, S, L, 2) as (x, y), times valid ratios."""
        refs = []
        for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                indexing="ij",
            )
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]

    def forward(
        self,
        src: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        valid_ratios: Tensor,
        pos: Tensor,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """src, pos: (B, S, E); valid_ratios (B, L, 2). Returns (B, S, E)."""
        reference_points = self.get_reference_points(spatial_shapes, valid_ratios, src.device)
        out = src
        for layer in self.layers:
            out = layer(out, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return out


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Deformable-DETR encoder over L levels; a learned level embedding is added to positions."""

    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.1,
        activation: str = "relu",
        num_feature_levels: int = 4,
        enc_n_points: int = 4,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        layer = MSDeformAttnTransformerEncoderLayer(
            d_model, dim_feedforward, dropout, activation, num_feature_levels, nhead, enc_n_points
        )
        self.encoder = MSDeformAttnTransformerEncoder(layer, num_encoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: list[Tensor], pos_embeds: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Encode the levels jointly (no padding mask: all positions are valid, as in Mask2Former).

        Args:
            srcs: L tensors (B, E, H_l, W_l), coarse to fine.
            pos_embeds: L position embeddings of the same shapes.

        Returns:
            memory (B, S, E), spatial_shapes (L, 2) long, level_start_index (L,) long.
        """
        flat, flat_pos, shapes = [], [], []
        for lvl, (src, pos) in enumerate(zip(srcs, pos_embeds)):
            shapes.append(src.shape[-2:])
            flat.append(src.flatten(2).transpose(1, 2))
            flat_pos.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        src_flatten = torch.cat(flat, 1)
        pos_flatten = torch.cat(flat_pos, 1)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=src_flatten.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = src_flatten.new_ones(src_flatten.shape[0], len(srcs), 2)
        memory = self.encoder(src_flatten, spatial_shapes, level_start_index, valid_ratios, pos_flatten)
        return memory, spatial_shapes, level_start_index


class MSDeformAttnPixelDecoder(nn.Module):
    """Pixel decoder: deformable encoder on ``transformer_in_features``, FPN to ``common_stride``.

    Args:
        input_shape: backbone features used by the decoder (name -> ShapeSpec).
        transformer_dropout: encoder dropout (MASK_FORMER.DROPOUT).
        transformer_nheads: encoder heads (MASK_FORMER.NHEADS, as in Mask2Former).
        transformer_dim_feedforward: encoder FFN width (1024 in every official model).
        transformer_enc_layers: number of encoder layers (SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS).
        transformer_n_points: sampling points per head and level (4).
        conv_dim: E, channels of the intermediate features.
        mask_dim: D_m, channels of the mask features.
        norm: detectron2 norm name for the FPN convs ("GN"); "" means no norm and biased convs.
        transformer_in_features: names of the encoder levels (res3, res4, res5).
        common_stride: stride of the mask features (4).
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int = ENCODER_DIM_FEEDFORWARD,
        transformer_enc_layers: int,
        transformer_n_points: int = 4,
        conv_dim: int,
        mask_dim: int,
        norm: str | Callable | None = None,
        transformer_in_features: list[str],
        common_stride: int,
    ) -> None:
        super().__init__()
        enc_shapes = self._set_feature_layout(input_shape, transformer_in_features)

        # input_proj[i] projects the i-th coarsest encoder level (index 0 = res5)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(v.channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
            for _, v in enc_shapes[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim,
            dropout=transformer_dropout,
            nhead=transformer_nheads,
            dim_feedforward=transformer_dim_feedforward,
            num_encoder_layers=transformer_enc_layers,
            num_feature_levels=self.transformer_num_feature_levels,
            enc_n_points=transformer_n_points,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1, stride=1, padding=0)
        weight_init.c2_xavier_fill(self.mask_features)

        self.maskformer_num_feature_levels = 3  # the transformer decoder always reads 3 scales
        self.common_stride = common_stride
        stride = min(self.transformer_feature_strides)
        self.num_fpn_levels = int(math.log2(stride) - math.log2(common_stride))
        self._build_fpn(conv_dim, norm)

    def _set_feature_layout(
        self, input_shape: dict[str, ShapeSpec], transformer_in_features: list[str]
    ) -> list[tuple[str, ShapeSpec]]:
        """Record the names, strides and channels of all levels and of the encoder levels (fine to coarse)."""
        missing = [f for f in transformer_in_features if f not in input_shape]
        if missing:
            raise ValueError(
                f"transformer_in_features {missing} are not among the input features "
                f"{sorted(input_shape)}; check MODEL.SEM_SEG_HEAD.IN_FEATURES and "
                "DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES"
            )
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.in_features = [k for k, _ in shapes]  # fine to coarse, e.g. res2..res5
        self.feature_strides = [v.stride for _, v in shapes]
        self.feature_channels = [v.channels for _, v in shapes]
        enc_shapes = [(k, v) for k, v in shapes if k in transformer_in_features]
        self.transformer_in_features = [k for k, _ in enc_shapes]
        self.transformer_feature_strides = [v.stride for _, v in enc_shapes]
        self.transformer_num_feature_levels = len(enc_shapes)
        return enc_shapes

    def _build_fpn(self, conv_dim: int, norm: str | Callable | None) -> None:
        """Lateral 1×1 and output 3×3 convs of the top-down levels (official names adapter_i / layer_i)."""
        use_bias = norm == ""
        lateral_convs, output_convs = [], []
        for idx, in_channels in enumerate(self.feature_channels[: self.num_fpn_levels]):
            lateral = Conv2d(in_channels, conv_dim, kernel_size=1, bias=use_bias, norm=get_norm(norm, conv_dim))
            output = Conv2d(
                conv_dim,
                conv_dim,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, conv_dim),
                activation=F.relu,
            )
            weight_init.c2_xavier_fill(lateral)
            weight_init.c2_xavier_fill(output)
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        # plain lists (already registered above), ordered coarse to fine for the top-down pass
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
            "norm": head.NORM,
            "transformer_dropout": cfg.MODEL.MASK_FORMER.DROPOUT,
            # Mask2Former reads the decoder's NHEADS here (DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS is
            # unused officially); both are 8 in every shipped config.
            "transformer_nheads": cfg.MODEL.MASK_FORMER.NHEADS,
            "transformer_dim_feedforward": ENCODER_DIM_FEEDFORWARD,
            "transformer_enc_layers": head.TRANSFORMER_ENC_LAYERS,
            "transformer_n_points": head.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
            "transformer_in_features": list(head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES),
            "common_stride": head.COMMON_STRIDE,
        }

    def forward_features(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Run in fp32 with autocast disabled (deformable attention has no half-precision path).

        Args:
            features: backbone maps by name, (B, C_in, H_s, W_s); must contain ``in_features``.

        Returns:
            mask_features (B, D_m, H_4, W_4); transformer_encoder_features (B, E, H_32, W_32), the
            coarsest encoder level; multi_scale_features: 3 maps (B, E, ·, ·), coarse to fine
            (strides 32, 16, 8).
        """
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise ValueError(f"pixel decoder needs features {missing}; got {sorted(features)}")
        device_type = features[self.in_features[0]].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            srcs, pos = [], []
            for idx, name in enumerate(self.transformer_in_features[::-1]):
                x = features[name].float()
                srcs.append(self.input_proj[idx](x))
                pos.append(self.pe_layer(x))
            memory, spatial_shapes, level_start_index = self.transformer(srcs, pos)
            bs = memory.shape[0]
            sizes = spatial_shapes.prod(1).tolist()
            out = [
                z.transpose(1, 2).reshape(bs, -1, h, w)
                for z, (h, w) in zip(memory.split(sizes, dim=1), spatial_shapes.tolist())
            ]
            for idx, name in enumerate(self.in_features[: self.num_fpn_levels][::-1]):
                cur = self.lateral_convs[idx](features[name].float())
                up = F.interpolate(out[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False)
                out.append(self.output_convs[idx](cur + up))
            multi_scale_features = out[: self.maskformer_num_feature_levels]
            return self.mask_features(out[-1]), out[0], multi_scale_features

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Same as ``forward_features``."""
        return self.forward_features(features)


register_once(SEM_SEG_HEADS_REGISTRY, MSDeformAttnPixelDecoder)
