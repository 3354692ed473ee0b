"""FC-CLIP's masked-attention transformer decoder: Mask2Former's, with an open-vocabulary head.

Per layer: masked cross-attention to one of 3 pixel-decoder scales (round robin, coarse to fine),
then self-attention, then an FFN; after each layer the queries predict masks as dot products with
the mask features. The class head (FC-CLIP) mask-pools the mask features inside the predicted
(binarized) mask, projects them (LayerNorm + Linear), adds the query, maps to the CLIP space with an
MLP and classifies by cosine similarity against the text rows, max over each class's synonyms.

Shapes: B images; Q queries; E hidden width (256); D CLIP embedding width; T text rows (synonyms)
+ 1 void row; C classes; h×w the stride-4 grid of the mask features.
Key names and registration order follow the released checkpoints (``sem_seg_head.predictor.*``).
"""

import math
from collections.abc import Sequence

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d
from torch import Tensor, nn

from ..adapter.pooling import classification_logits
from .build import TRANSFORMER_DECODER_REGISTRY, register_once
from .position_encoding import PositionEmbeddingSine

__all__ = ["MultiScaleMaskedTransformerDecoder", "mask_pool", "MLP"]


def mask_pool(features: Tensor, mask_logits: Tensor) -> Tensor:
    """Average ``features`` inside each mask binarized at logit > 0 (no gradient through the mask).

    Args:
        features: (B, E, h, w).
        mask_logits: (B, Q, h', w'); resized bilinearly to (h, w) if needed.

    Returns:
        (B, Q, E) pooled features (zero for empty masks).
    """
    if mask_logits.shape[-2:] != features.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        mask = (mask_logits.detach() > 0).to(features.dtype)
        mask = mask / (mask.sum(dim=(-1, -2), keepdim=True) + 1e-8)
    return torch.einsum("bchw,bqhw->bqc", features, mask)


def bilinear_sources(size_in: int, size_out: int, device: torch.device | None = None) -> Tensor:
    """Sorted indices along one axis that a bilinear resize (align_corners=False) from ``size_in`` to ``size_out``
    reads: the two neighbours of every output's source coordinate (computed in float32 and float64, united, so
    that either rounding is covered). A downscale by 4 reads half of the rows, by 8 a quarter."""
    dst = torch.arange(size_out, dtype=torch.float64)
    picked = []
    for dtype in (torch.float32, torch.float64):
        src = ((dst.to(dtype) + 0.5) * (size_in / size_out) - 0.5).clamp(min=0)
        first = src.floor().long().clamp(max=size_in - 1)
        picked += [first, (first + 1).clamp(max=size_in - 1)]
    return torch.unique(torch.cat(picked)).to(device)


def additive_attention_mask(blocked: Tensor, num_heads: int, dtype: torch.dtype) -> Tensor:
    """(B, Q, K) bool (True = blocked) -> (B·heads, Q, K) additive mask: -inf where blocked, 0 elsewhere.

    The values ``nn.MultiheadAttention`` makes of a boolean mask, built once per image instead of once per head (and
    from a per-head copy of the boolean mask): the heads share it through a stride-0 view when B = 1.
    """
    additive = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill_(blocked, float("-inf"))
    b, q, k = blocked.shape
    return additive.unsqueeze(1).expand(b, num_heads, q, k).flatten(0, 1)


def _xavier_init(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class SelfAttentionLayer(nn.Module):
    """Query self-attention with residual and LayerNorm (post-norm unless ``normalize_before``)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init(self)

    def forward(self, tgt: Tensor, query_pos: Tensor | None = None) -> Tensor:
        """tgt, query_pos: (Q, B, E). Returns (Q, B, E)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        q = k = x if query_pos is None else x + query_pos
        tgt = tgt + self.dropout(self.self_attn(q, k, value=x)[0])
        return tgt if self.normalize_before else self.norm(tgt)


class CrossAttentionLayer(nn.Module):
    """Masked cross-attention from queries to one feature level, residual and LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init(self)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        pos: Tensor | None = None,
        query_pos: Tensor | None = None,
    ) -> Tensor:
        """tgt (Q, B, E); memory, pos (HW, B, E); memory_mask (B·heads, Q, HW): bool (True blocks) or additive."""
        x = self.norm(tgt) if self.normalize_before else tgt
        attn = self.multihead_attn(
            query=x if query_pos is None else x + query_pos,
            key=memory if pos is None else memory + pos,
            value=memory,
            attn_mask=memory_mask,
        )[0]
        tgt = tgt + self.dropout(attn)
        return tgt if self.normalize_before else self.norm(tgt)


class FFNLayer(nn.Module):
    """Two-layer ReLU feed-forward block with residual and LayerNorm."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier_init(self)

    def forward(self, tgt: Tensor) -> Tensor:
        """tgt: (Q, B, E). Returns (Q, B, E)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        tgt = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x)))))
        return tgt if self.normalize_before else self.norm(tgt)


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU in between (keys ``layers.{i}``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MultiScaleMaskedTransformerDecoder(nn.Module):
    """FC-CLIP decoder; at inference only the last layer is classified (no aux outputs).

    Args:
        in_channels: channels of the multi-scale features (SEM_SEG_HEAD.CONVS_DIM).
        mask_classification: must be True (FC-CLIP always classifies).
        num_classes: training-vocabulary size (informational; the text rows set the vocabulary).
        hidden_dim: E.
        num_queries: Q (250 FC-CLIP, 100 MAFT+).
        nheads: attention heads.
        dim_feedforward: FFN width.
        dec_layers: number of decoder layers actually built (MASK_FORMER.DEC_LAYERS - 1, as in
            Mask2Former: the learnable query features count as the first prediction).
        pre_norm: pre-LayerNorm layers.
        mask_dim: channels of the mask features.
        enforce_input_project: add a 1×1 conv on the features even when in_channels == hidden_dim.
        clip_embedding_dim: D, output width of ``class_embed``.

    ``full_attention_masks = True`` (attribute) computes every prediction's masks over the whole stride-4 map at
    inference too, as the official code (the reference computation of exactness benchmarks).
    """

    full_attention_masks: bool = False

    @configurable
    def __init__(
        self,
        in_channels: int,
        mask_classification: bool = True,
        *,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
        clip_embedding_dim: int,
    ) -> None:
        super().__init__()
        if not mask_classification:
            raise ValueError("MultiScaleMaskedTransformerDecoder only supports mask_classification=True")
        self.mask_classification = mask_classification
        self.num_classes = num_classes
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.num_heads = nheads
        self.num_layers = dec_layers
        # FC-CLIP: a learnable (log-space) temperature, exp clamped at 100 when classifying
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads, 0.0, pre_norm) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads, 0.0, pre_norm) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward, 0.0, pre_norm) for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # learnable query features
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # learnable query positions
        self.num_feature_levels = 3  # always 3 scales
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = Conv2d(in_channels, hidden_dim, kernel_size=1)
                weight_init.c2_xavier_fill(proj)
                self.input_proj.append(proj)
            else:
                self.input_proj.append(nn.Sequential())
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self._mask_pooling_proj = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim))
        self.class_embed = MLP(hidden_dim, hidden_dim, clip_embedding_dim, 3)

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int, mask_classification: bool) -> dict:
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 1:
            raise ValueError(f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mf.DEC_LAYERS}")
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            "dec_layers": mf.DEC_LAYERS - 1,
            "pre_norm": mf.PRE_NORM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
            "clip_embedding_dim": cfg.MODEL.FC_CLIP.EMBED_DIM,
        }

    def forward(
        self,
        x: list[Tensor],
        mask_features: Tensor,
        mask: Tensor | None = None,
        text_classifier: Tensor | None = None,
        synonyms_per_class: Sequence[int] | None = None,
    ) -> dict[str, object]:
        """Decode Q queries into masks and open-vocabulary class logits.

        Args:
            x: 3 multi-scale features (B, E_in, H_l, W_l), coarse to fine.
            mask_features: (B, mask_dim, h, w).
            mask: unused (padding masks are disabled, as in FC-CLIP).
            text_classifier: (T + 1, D) or (B, T + 1, D) L2-normalised text rows, void last.
            synonyms_per_class: synonyms per class, sum == T.

        Returns:
            ``pred_logits`` (B, Q, C + 1), ``pred_masks`` (B, Q, h, w) of the last layer, and
            ``aux_outputs``: one such dict per earlier prediction in training, ``[]`` at inference.
        """
        del mask
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature levels, got {len(x)}")
        if text_classifier is None or synonyms_per_class is None:
            raise ValueError("the FC-CLIP decoder needs text_classifier and synonyms_per_class")
        src, pos, sizes = self._flatten_levels(x)
        bs = src[0].shape[1]
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)
        text = (text_classifier, synonyms_per_class)
        all_layers = self.training  # classify every layer only when aux outputs are needed (inference uses the last)
        # at inference the earlier predictions only feed attention masks: their masks at the pixels the resize reads
        sampled = None if (all_layers or self.full_attention_masks) else _SampledMasks(mask_features, sizes)

        last = self.num_layers == 0
        logits, masks, attn_mask = self._prediction_heads(
            output,
            mask_features,
            None if last else sizes[0],
            text if (all_layers or last) else None,
            None if last else sampled,
        )
        predictions = [(logits, masks)]
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            output = self._decoder_layer(i, output, src[level], pos[level], query_embed, attn_mask)
            last = i == self.num_layers - 1
            next_size = None if last else sizes[(i + 1) % self.num_feature_levels]
            logits, masks, attn_mask = self._prediction_heads(
                output, mask_features, next_size, text if (all_layers or last) else None, None if last else sampled
            )
            predictions.append((logits, masks))

        aux = [{"pred_logits": c, "pred_masks": m} for c, m in predictions[:-1]] if all_layers else []
        return {
            "pred_logits": predictions[-1][0],
            "pred_masks": predictions[-1][1],
            "aux_outputs": aux,
        }

    def _flatten_levels(self, x: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[tuple[int, int]]]:
        """Per level: projected features + level embedding (HW, B, E), positional encodings (HW, B, E), sizes."""
        src, pos, sizes = [], [], []
        for i, feat in enumerate(x):
            sizes.append(feat.shape[-2:])
            pos.append(self.pe_layer(feat).flatten(2).permute(2, 0, 1))
            proj = self.input_proj[i](feat).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(proj.permute(2, 0, 1))  # (HW, B, E)
        return src, pos, sizes

    def _decoder_layer(
        self,
        i: int,
        output: Tensor,
        src: Tensor,
        pos: Tensor,
        query_embed: Tensor,
        blocked: Tensor,
    ) -> Tensor:
        """Layer ``i``: masked cross-attention to one feature level, self-attention, FFN; (Q, B, E) -> (Q, B, E).

        ``blocked``: (B, Q, H_l·W_l) bool, the positions each query may not attend to.
        """
        # a query whose mask blocks every position attends everywhere instead
        blocked = blocked & ~blocked.all(-1, keepdim=True)
        memory_mask = additive_attention_mask(blocked, self.num_heads, output.dtype)
        output = self.transformer_cross_attention_layers[i](
            output, src, memory_mask=memory_mask, pos=pos, query_pos=query_embed
        )
        output = self.transformer_self_attention_layers[i](output, query_pos=query_embed)
        return self.transformer_ffn_layers[i](output)

    def _prediction_heads(
        self,
        output: Tensor,
        mask_features: Tensor,
        attn_mask_size: tuple[int, int] | None,
        text: tuple[Tensor, Sequence[int]] | None,
        sampled: "_SampledMasks | None" = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Masks (and, if ``text`` is given, class logits) from the queries ``output`` (Q, B, E).

        ``sampled`` (inference, a prediction without ``text``): compute the masks only at the pixels the resize to
        ``attn_mask_size`` reads; the masks are then not returned (None).

        Returns:
            logits (B, Q, C + 1) or None; masks (B, Q, h, w) or None; the next layer's attention mask
            (B, Q, H_l·W_l) bool (True = blocked) or None when ``attn_mask_size`` is None.
        """
        decoder_output = self.decoder_norm(output).transpose(0, 1)  # (B, Q, E)
        embed = self.mask_embed(decoder_output)
        if sampled is not None and text is None and sampled.reads_part(attn_mask_size):
            masks = None
            resized = sampled.resized(embed, attn_mask_size)
        else:
            masks = torch.einsum("bqc,bchw->bqhw", embed, mask_features)
            resized = None
        logits = None
        if text is not None:
            pooled = self._mask_pooling_proj(mask_pool(mask_features, masks))
            class_embed = self.class_embed(pooled + decoder_output)
            logits = classification_logits(class_embed, text[0], self.logit_scale, text[1])
        attn_mask = None
        if attn_mask_size is not None:
            if resized is None:
                resized = F.interpolate(masks, size=attn_mask_size, mode="bilinear", align_corners=False)
            blocked = resized.sigmoid().flatten(2) < 0.5  # (B, Q, H_l·W_l)
            attn_mask = blocked.detach()
        return logits, masks, attn_mask


class _SampledMasks:
    """Attention-mask logits of one forward from the mask features at only the pixels the resize reads.

    A bilinear downscale by 4 (8) reads a quarter (a sixteenth) of the stride-4 pixels. Per attention size, the
    mask features at those pixels are gathered once; each prediction then computes its mask logits there (the same
    dot products, over fewer pixels), writes them into a per-size buffer at their places (zeros elsewhere, never
    read) and resizes the buffer with the same ``F.interpolate`` call as the full masks. Sizes whose resize reads
    every pixel have no plan: their predictions compute the full masks.
    """

    def __init__(self, mask_features: Tensor, sizes: Sequence[tuple[int, int]]) -> None:
        self.mask_features = mask_features
        self.plans: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor] | None] = {}
        h, w = mask_features.shape[-2:]
        for size in sizes:
            key = (int(size[0]), int(size[1]))
            rows = bilinear_sources(h, key[0], mask_features.device)
            cols = bilinear_sources(w, key[1], mask_features.device)
            if len(rows) * len(cols) == h * w:
                self.plans[key] = None
            else:
                features = mask_features.index_select(2, rows).index_select(3, cols)
                self.plans[key] = (rows, cols, features)
        self.buffers: dict[tuple[int, int], Tensor] = {}

    def reads_part(self, size: tuple[int, int] | None) -> bool:
        """Whether the resize to ``size`` reads only part of the pixels (then ``resized`` applies)."""
        return size is not None and self.plans[(int(size[0]), int(size[1]))] is not None

    def resized(self, embed: Tensor, size: tuple[int, int]) -> Tensor:
        """(B, Q, mask_dim) mask embeddings -> (B, Q, H_l, W_l) mask logits resized to ``size`` (one with a plan)."""
        key = (int(size[0]), int(size[1]))
        rows, cols, features = self.plans[key]
        buffer = self.buffers.get(key)
        if buffer is None or buffer.shape[:2] != embed.shape[:2] or buffer.dtype != embed.dtype:
            b, q = embed.shape[:2]
            buffer = embed.new_zeros((b, q, *self.mask_features.shape[-2:]))
            self.buffers[key] = buffer
        buffer[:, :, rows[:, None], cols] = torch.einsum("bqc,bchw->bqhw", embed, features)
        return F.interpolate(buffer, size=key, mode="bilinear", align_corners=False)


register_once(TRANSFORMER_DECODER_REGISTRY, MultiScaleMaskedTransformerDecoder)
