"""Content-Dependent Transfer (CDT) of MAFT+: conditions the text classifier on each image.

Shapes: B images; T+1 text rows (void last); D CLIP embedding width; h×w dense-feature grid.
Keys (``cdt.cross_atten.{multihead_attn,norm,MLP}.*``) follow the released MAFT+ checkpoints.
"""

from torch import Tensor, nn

from .transformer_decoder.position_encoding import PositionEmbeddingSine

__all__ = ["ContentDependentTransfer", "CDT_VARIANTS"]

CDT_VARIANTS = ("panoptic", "semantic")


class _ShortcutCrossAttention(nn.Module):
    """Text rows attend to the dense image feature; a single Linear ("MLP") and a LayerNorm on the residual."""

    def __init__(self, d_model: int, nhead: int, variant: str) -> None:
        super().__init__()
        if variant not in CDT_VARIANTS:
            raise ValueError(f"unknown CDT variant {variant!r}; choose one of {CDT_VARIANTS}")
        self.variant = variant
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)
        self.MLP = nn.Linear(d_model, d_model)
        if variant == "panoptic":
            nn.init.zeros_(self.MLP.weight)
            nn.init.zeros_(self.MLP.bias)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        """tgt (T+1, B, D), memory and pos (hw, B, D) -> (T+1, B, D)."""
        attended = self.multihead_attn(query=tgt, key=memory + pos, value=memory, need_weights=False)[0]
        if self.variant == "panoptic":
            return tgt + self.norm(self.MLP(attended))
        return self.norm(tgt + self.MLP(attended))


class ContentDependentTransfer(nn.Module):
    """MAFT+ CDT.

    Kept for checkpoint compatibility: the residual arrangement is a build-time choice. The official code picks it from
    ``MODEL.MASK_FORMER.TEST.PANOPTIC_ON`` ("panoptic": t + LN(MLP(a)); "semantic": LN(t + MLP(a))), see
    hustvl/MaskAdapter:maft/modeling/maft/content_dependent_transfer.py; ours reads
    ``MODEL.MASK_ADAPTER.CDT_VARIANT`` whose ``auto`` reproduces that rule.

    Args:
        d_model: D.
        nhead: attention heads (8).
        variant: "panoptic" or "semantic".
    """

    def __init__(self, *, d_model: int, nhead: int = 8, variant: str = "panoptic") -> None:
        super().__init__()
        self.pe_layer = PositionEmbeddingSine(d_model // 2, normalize=True)
        self.cross_atten = _ShortcutCrossAttention(d_model, nhead, variant)

    @property
    def variant(self) -> str:
        return self.cross_atten.variant

    def forward(self, dense: Tensor, text: Tensor) -> Tensor:
        """Condition text rows on the image.

        Args:
            dense: (B, D, h, w) dense CLIP feature (MAFT+ uses the scrambled projection).
            text: (T+1, D) shared text rows.

        Returns:
            (B, T+1, D) per-image text rows.
        """
        b = dense.shape[0]
        pos = self.pe_layer(dense).to(dense.dtype).flatten(2).permute(2, 0, 1)
        memory = dense.flatten(2).permute(2, 0, 1)
        tgt = text[:, None, :].expand(-1, b, -1).to(dense.dtype)
        return self.cross_atten(tgt, memory, pos).transpose(0, 1)
