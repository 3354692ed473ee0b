"""Inference helpers: the geometric ensemble (SPEC §5.6) and Mask2Former post-processing per image (§5.7)."""
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

from ..postprocess import (
    instance_inference,
    panoptic_inference,
    resize_to_original,
    semantic_inference,
    semantic_inference_resized,
)

__all__ = ["geometric_ensemble", "mask2former_postprocess"]


def geometric_ensemble(in_logits: Tensor, out_logits: Tensor, seen: Tensor, alpha: float, beta: float) -> Tensor:
    """Fuse in-vocabulary (generator) and out-of-vocabulary (CLIP/adapter) class scores.

    Seen classes: p_in^(1-α)·p_out^α; unseen: p_in^(1-β)·p_out^β (softmaxes without void). The void probability
    comes from the generator; the result is log(probs + 1e-8).

    Args:
        in_logits, out_logits: (B, Q, C + 1), void last.
        seen: (C,) bool category-overlap mask.
        alpha, beta: ensemble weights of the out-of-vocabulary scores.

    Returns:
        (B, Q, C + 1) log-probabilities.
    """
    p_in = in_logits[..., :-1].softmax(-1)
    p_out = out_logits[..., :-1].softmax(-1)
    seen = seen.to(p_in.device)
    ens_seen = (p_in ** (1 - alpha) * p_out**alpha).log()
    ens_unseen = (p_in ** (1 - beta) * p_out**beta).log()
    ensembled = torch.where(seen, ens_seen, ens_unseen)
    p_void = in_logits.softmax(-1)[..., -1:]
    probs = torch.cat([ensembled.softmax(-1) * (1.0 - p_void), p_void], dim=-1)
    return torch.log(probs + 1e-8)


def mask2former_postprocess(
    model, state, pred_masks: Tensor, logits: Tensor, batched_inputs: List[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """Per image: upsample masks to the padded size, then semantic / panoptic / instance outputs at the original
    size ("height"/"width" of the input dict, else the image size)."""
    opts = model.inference_options
    images = state.images
    masks = F.interpolate(pred_masks.float(), size=images.tensor.shape[-2:], mode="bilinear", align_corners=False)
    num_classes = logits.shape[-1] - 1
    thing_ids = set(state.vocabulary.thing_ids)
    results = []
    for mask_cls, mask_pred, x, image_size in zip(logits.float(), masks, batched_inputs, images.image_sizes):
        height, width = x.get("height", image_size[0]), x.get("width", image_size[1])
        if opts.postprocess_before_inference:
            mask_pred = resize_to_original(mask_pred, image_size, height, width)
        r: Dict[str, Any] = {}
        if opts.semantic_on:
            if opts.postprocess_before_inference:
                sem = semantic_inference(mask_cls, mask_pred, opts.semantic_chunk)
            else:  # resize the Q sigmoid maps, not the C score maps: one C×H×W allocation
                sem = semantic_inference_resized(mask_cls, mask_pred, image_size, height, width)
            r["sem_seg"] = sem
        if opts.panoptic_on or opts.instance_on:
            if not opts.postprocess_before_inference:
                mask_pred = resize_to_original(mask_pred, image_size, height, width)
        if opts.panoptic_on:
            r["panoptic_seg"] = panoptic_inference(
                mask_cls,
                mask_pred,
                num_classes=num_classes,
                object_mask_threshold=opts.object_mask_threshold,
                overlap_threshold=opts.overlap_threshold,
                thing_ids=thing_ids,
            )
        if opts.instance_on:
            r["instances"] = instance_inference(
                mask_cls,
                mask_pred,
                num_classes=num_classes,
                top_k=opts.detections_per_image,
                thing_ids=thing_ids if opts.panoptic_on else None,
                image_size=(height, width),
            )
        results.append(r)
    return results
