"""Mask2Former proposals classified by CLIP alone: plain mask pooling or the Mask-Adapter (a config switch).

``MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER``: "mask_pooling" (the classic CLIP mask-pooling classifier) or
"adapter" (the same model with the adapter swapped in). Out-of-vocabulary logits only, no ensemble.
"""

from detectron2.modeling import META_ARCH_REGISTRY

from ...utils.registry import register_once
from .base import OpenVocabMaskFormer

__all__ = ["Mask2FormerCLIP"]


class Mask2FormerCLIP(OpenVocabMaskFormer):
    """All behaviour is the base template's: generator masks -> CLIP logits (adapter or mask pooling)."""


register_once(META_ARCH_REGISTRY, Mask2FormerCLIP)
