from .build import MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead, build_mask_adapter
from .head import ConvNeXtBlock, LayerNorm2d, MaskAdapterHead
from .pooling import (
    aggregate_synonym_logits,
    classification_logits,
    embeddings_from_activation_maps,
    mask_pooling_embeddings,
)
