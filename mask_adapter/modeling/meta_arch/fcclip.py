"""FC-CLIP and MAFT+ with the Mask-Adapter: generator masks, adapter logits, geometric ensemble."""

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import Tensor

from ...config.resolve import ArchDefaults
from ...utils.registry import register_once
from .base import ForwardState, OpenVocabMaskFormer
from .inference import geometric_ensemble
from .state import Proposals

logger = logging.getLogger(__name__)

__all__ = ["FCCLIP", "MAFTPlus"]


class FCCLIP(OpenVocabMaskFormer):
    """FC-CLIP generator + Mask-Adapter: in-vocabulary logits from the decoder, out-of-vocabulary logits from the
    adapter on the binarised predicted masks, fused by the geometric ensemble; void from the generator.

    Args:
        ensemble_alpha / ensemble_beta: out-of-vocabulary weights for seen / unseen classes (α, β). Negative values
            (as in original MAFT+ configs) use the out-of-vocabulary logits alone.
        (others: see ``OpenVocabMaskFormer``)
    """

    @configurable
    def __init__(self, *, ensemble_alpha: float, ensemble_beta: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ensemble_alpha = ensemble_alpha
        self.ensemble_beta = ensemble_beta

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        args = super().from_config(cfg)
        args["ensemble_alpha"] = cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA
        args["ensemble_beta"] = cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA
        args["trainable"] = cls.trainable_parameters()
        return args

    @classmethod
    def trainable_parameters(cls) -> Sequence[str]:
        """FC-CLIP trains the adapter and the void embedding (the official code freezes only the generator)."""
        return ("mask_adapter.", "void_embedding.")

    def classify_masks(self, state: ForwardState, outputs: Proposals) -> Tensor:
        out_logits = self.out_vocab_logits(state, outputs["pred_masks"])
        if self.ensemble_alpha < 0 or self.ensemble_beta < 0:
            return out_logits
        return geometric_ensemble(
            outputs["pred_logits"],
            out_logits,
            self.seen_mask(state.vocabulary),
            self.ensemble_alpha,
            self.ensemble_beta,
        )


class MAFTPlus(FCCLIP):
    """MAFT+ generator + Mask-Adapter. Differences from FCCLIP are configuration: the adapter's text rows go
    through the frozen CDT per image, the dense input is the ``maftp_scrambled`` projection, IoU binarisation at 0.5,
    no stop-gradient in the cosine loss, seed 123 when SEED is negative (as the official script), and only the
    adapter trains (void and CDT frozen)."""

    auto_defaults: ClassVar[ArchDefaults] = ArchDefaults(
        dense_projection="maftp_scrambled", match_pred_threshold=0.5, cos_stop_grad=False, seed=123
    )

    @classmethod
    def uses_cdt(cls, cfg: CfgNode) -> bool:
        return True

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        args = super().from_config(cfg)
        variant = args["cdt"].variant
        if variant == "semantic" and args["backbone"].embed_dim == 768:
            logger.warning(
                "MAFT+ (ConvNeXt-L) runs with the 'semantic' CDT variant because TEST.PANOPTIC_ON is False; the "
                "released MAFTP-L+MA weights were evaluated with the 'panoptic' variant. Set "
                "MODEL.MASK_ADAPTER.CDT_VARIANT panoptic to reproduce the reported numbers."
            )
        return args

    @classmethod
    def trainable_parameters(cls) -> Sequence[str]:
        return ("mask_adapter.",)


register_once(META_ARCH_REGISTRY, FCCLIP)
register_once(META_ARCH_REGISTRY, MAFTPlus)
