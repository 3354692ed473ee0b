"""A tiny random SAM for tests, CPU quick-starts and the bundled demos (no SAM weights needed).

ViT depth 1, width 32, 256-pixel input, 1-layer two-way mask decoder (package ``segment-anything``). Like the tiny
CLIP (``backbone/tiny_clip.py``), it only shows that the SAM path runs; its masks are meaningless.
"""

from typing import Any

import torch

__all__ = ["TINY_SAM_GENERATOR_SETTINGS", "build_tiny_sam", "tiny_sam_mask_generator"]

# Automatic-mask-generator settings that make a random SAM return masks at all: few points, no quality filters.
TINY_SAM_GENERATOR_SETTINGS = {"points_per_side": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def build_tiny_sam(checkpoint: str | None = None) -> torch.nn.Module:
    """Build the tiny SAM (random weights from the current torch RNG), in eval mode.

    Args:
        checkpoint: optional state-dict file saved from a tiny SAM (same signature as ``sam_model_registry``
            builders, so tests can register this function as a model type).

    Returns:
        A ``segment_anything.modeling.Sam``.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    sam = Sam(
        image_encoder=ImageEncoderViT(img_size=256, patch_size=16, embed_dim=32, depth=1, num_heads=2, out_chans=32),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=32,
            num_multimask_outputs=3,
            iou_head_depth=1,
            iou_head_hidden_dim=16,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=32, num_heads=2),
        ),
    )
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return sam.eval()


def tiny_sam_mask_generator(seed: int = 0, device: str = "cpu") -> Any:
    """A ``SamAutomaticMaskGenerator`` around a tiny SAM seeded with ``seed`` (``TINY_SAM_GENERATOR_SETTINGS``).

    The global torch RNG state is restored afterwards.

    Args:
        seed: seed of the random weights.
        device: where the tiny SAM runs.

    Returns:
        The mask generator (``generate(image) -> list of {"segmentation": (H, W) bool, ...}``).
    """
    from segment_anything import SamAutomaticMaskGenerator

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = build_tiny_sam()
    finally:
        torch.random.set_rng_state(state)
    return SamAutomaticMaskGenerator(sam.to(device), **TINY_SAM_GENERATOR_SETTINGS)
