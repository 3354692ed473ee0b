"""FC-CLIP's mask-proposal head: pixel decoder + masked-attention transformer decoder.

The generator of FC-CLIP and MAFT+ (state-dict prefix ``sem_seg_head.``, submodules
``pixel_decoder`` and ``predictor``). Shapes: B images; Q queries; C classes (+1 void); T text rows
(synonyms) + 1 void row; D CLIP width; h×w the stride-4 grid.
"""

from collections.abc import Sequence

from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import Tensor, nn

from ...utils.registry import register_once, register_unsupported

# imported for registration: MSDeformAttnPixelDecoder and MultiScaleMaskedTransformerDecoder
from .. import pixel_decoder as _pixel_decoder  # noqa: F401
from ..transformer_decoder import build_transformer_decoder

__all__ = ["FCCLIPHead", "build_pixel_decoder"]

# Names the official base YAMLs mention but that no released model builds.
_UNSUPPORTED_HEADS = {
    "FCCLIPMASKHead": (
        "it is named by the official ground-truth-warmup base YAML but never built (stage 1 has no "
        "Mask2Former head); use MODEL.SEM_SEG_HEAD.NAME: FCCLIPHead with FCCLIP / MAFT_Plus configs"
    ),
}


def build_pixel_decoder(cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Build ``MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME`` from SEM_SEG_HEADS_REGISTRY.

    Args:
        cfg: full config.
        input_shape: backbone feature shapes by name.

    Returns:
        A module whose ``forward_features(features)`` returns (mask_features, encoder_features,
        multi_scale_features).
    """
    name = cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME
    if name not in SEM_SEG_HEADS_REGISTRY:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME={name!r} is not supported; use "
            "MSDeformAttnPixelDecoder (the pixel decoder of every FC-CLIP / MAFT+ model)"
        )
    model = SEM_SEG_HEADS_REGISTRY.get(name)(cfg, input_shape)
    if not callable(getattr(model, "forward_features", None)):
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME={name!r} has no forward_features method, so it "
            "cannot serve as a pixel decoder; use MSDeformAttnPixelDecoder"
        )
    return model


class FCCLIPHead(nn.Module):
    """Pixel decoder + transformer decoder producing Q masks and open-vocabulary class logits.

    Args:
        input_shape: backbone features read by the head (name -> ShapeSpec).
        num_classes: training-vocabulary size (SEM_SEG_HEAD.NUM_CLASSES; informational).
        pixel_decoder: module with ``forward_features``.
        loss_weight: kept for config compatibility (the generator is frozen; no loss here).
        ignore_value: kept for config compatibility.
        transformer_predictor: the transformer decoder.
        transformer_in_feature: which pixel-decoder output feeds the decoder; only
            "multi_scale_pixel_decoder" is supported.
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        num_classes: int,
        pixel_decoder: nn.Module,
        loss_weight: float = 1.0,
        ignore_value: int = -1,
        transformer_predictor: nn.Module,
        transformer_in_feature: str = "multi_scale_pixel_decoder",
    ) -> None:
        super().__init__()
        if transformer_in_feature != "multi_scale_pixel_decoder":
            raise ValueError(
                f"MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE={transformer_in_feature!r} is not "
                "supported by FCCLIPHead; use multi_scale_pixel_decoder"
            )
        self.in_features = [k for k, _ in sorted(input_shape.items(), key=lambda kv: kv[1].stride)]
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.ignore_value = ignore_value
        self.common_stride = 4
        self.transformer_in_feature = transformer_in_feature
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        in_feature = cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE
        if in_feature != "multi_scale_pixel_decoder":
            raise ValueError(
                f"MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE={in_feature!r} is not supported by "
                "FCCLIPHead; use multi_scale_pixel_decoder"
            )
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "num_classes": head.NUM_CLASSES,
            "ignore_value": head.IGNORE_VALUE,
            "loss_weight": head.LOSS_WEIGHT,
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "transformer_in_feature": in_feature,
            "transformer_predictor": build_transformer_decoder(cfg, head.CONVS_DIM, mask_classification=True),
        }

    def forward(
        self,
        features: dict[str, Tensor],
        text_classifier: Tensor | None = None,
        synonyms_per_class: Sequence[int] | None = None,
        mask: Tensor | None = None,
    ) -> dict[str, object]:
        """Propose masks and classify them against the text rows.

        Args:
            features: backbone maps by name (res2..res5), (B, C_s, H_s, W_s). As in the official
                call, the text rows and the synonyms per class may also be given as the keys ``text_classifier`` /
                ``num_templates`` here (the official key names).
            text_classifier: (T + 1, D) or (B, T + 1, D) L2-normalised text rows, void last.
            synonyms_per_class: synonyms per class, sum == T.
            mask: unused padding mask.

        Returns:
            ``pred_logits`` (B, Q, C + 1), ``pred_masks`` (B, Q, h, w) logits, ``aux_outputs``
            (training only; ``[]`` at inference).
        """
        if text_classifier is None:
            text_classifier = features.get("text_classifier")
        if synonyms_per_class is None:
            synonyms_per_class = features.get("num_templates")  # the official key name
        mask_features, _, multi_scale_features = self.pixel_decoder.forward_features(features)
        return self.predictor(
            multi_scale_features,
            mask_features,
            mask,
            text_classifier=text_classifier,
            synonyms_per_class=synonyms_per_class,
        )


register_once(SEM_SEG_HEADS_REGISTRY, FCCLIPHead)
for _name, _reason in _UNSUPPORTED_HEADS.items():
    register_unsupported(SEM_SEG_HEADS_REGISTRY, _name, _reason)
