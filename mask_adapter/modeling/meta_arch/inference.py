"""Inference helpers: the geometric ensemble and Mask2Former post-processing per image.

Shapes as in ``base.py``. The functions receive everything they use (state, options); they do not call back into
the model.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from .options import InferenceOptions
from .state import ForwardState
from .void_skip import certified_semantic

__all__ = ["geometric_ensemble", "mask2former_postprocess", "SkippedQueries"]


@dataclass(frozen=True)
class SkippedQueries:
    """Queries whose adapter did not run (see ``void_skip.py``) and how to complete them.

    p_void: (B, Q) void probabilities; skipped: (B, Q) bool; complete(b, indices) -> (S, C + 1) final logits of
    image b's queries ``indices`` with the adapter.
    """

    p_void: Tensor
    skipped: Tensor
    complete: Callable[[int, Tensor], Tensor]


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
    state: ForwardState,
    pred_masks: Tensor,
    logits: Tensor,
    batched_inputs: list[dict[str, Any]],
    options: InferenceOptions,
    num_masks: Sequence[int] | None = None,
    skipped: SkippedQueries | None = None,
) -> list[dict[str, Any]]:
    """Per image: upsample masks to the padded size, then semantic / panoptic / instance outputs at the original
    size ("height"/"width" of the input dict, else the image size).

    Args:
        state: the batch's forward state (padded images, vocabulary).
        pred_masks: (B, Q, h', w') mask logits.
        logits: (B, Q, C + 1) class logits.
        batched_inputs: the inputs (output sizes).
        options: which outputs to produce and how.
        num_masks: per image, the leading slots of Q that are real masks (None: all Q).
        skipped: queries whose adapter was skipped (their logits are stand-ins); the semantic output runs the
            adapter for those its argmax needs (``void_skip.certified_semantic``). None: every query ran.

    Returns:
        One dict per image with "sem_seg" (C, height, width), "panoptic_seg", "instances" as enabled.
    """
    images = state.images
    masks = F.interpolate(pred_masks.float(), size=images.tensor.shape[-2:], mode="bilinear", align_corners=False)
    thing_ids = set(state.vocabulary.thing_ids)
    counts = list(num_masks) if num_masks is not None else [masks.shape[1]] * masks.shape[0]
    results = []
    for b, (mask_cls, mask_pred, x, image_size, n) in enumerate(
        zip(logits.float(), masks, batched_inputs, images.image_sizes, counts)
    ):
        output_size = (x.get("height", image_size[0]), x.get("width", image_size[1]))
        image_skip = None
        if skipped is not None:
            image_skip = (skipped.p_void[b, :n], skipped.skipped[b, :n], lambda idx, b=b: skipped.complete(b, idx))
        results.append(
            _image_outputs(mask_cls[:n], mask_pred[:n], image_size, output_size, options, thing_ids, image_skip)
        )
    return results


def _image_outputs(
    mask_cls: Tensor,
    mask_pred: Tensor,
    image_size: tuple[int, int],
    output_size: tuple[int, int],
    opts: InferenceOptions,
    thing_ids: set[int],
    skipped: tuple[Tensor, Tensor, Callable[[Tensor], Tensor]] | None = None,
) -> dict[str, Any]:
    """One image: (Q, C + 1) logits and (Q, H, W) padded-size mask logits -> its enabled outputs at ``output_size``.

    ``mask_pred`` is consumed: its full-size values may be overwritten (pass a tensor the caller does not read again).

    ``skipped``: (p_void (Q,), skipped (Q,) bool, complete(indices) -> final logits) of queries without the adapter.
    """
    height, width = output_size
    num_classes = mask_cls.shape[-1] - 1
    if opts.postprocess_before_inference:
        mask_pred = resize_to_original(mask_pred, image_size, height, width)
    r: dict[str, Any] = {}
    # σ of the full-size masks, computed once when both the semantic and the panoptic merge read it. Without
    # instance outputs the logits are not read again: σ overwrites them in place (``mask_pred`` is this
    # function's own full-size tensor), which saves a Q×H×W allocation and its page faults.
    prob = None
    if opts.postprocess_before_inference and opts.semantic_on and (opts.panoptic_on or not opts.instance_on):
        prob = mask_pred.sigmoid() if opts.instance_on else mask_pred.sigmoid_()
    if opts.semantic_on:
        if opts.postprocess_before_inference:

            def semantic(cls: Tensor, pred: Tensor = mask_pred) -> Tensor:
                return semantic_inference(cls, pred, opts.semantic_chunk, mask_prob=prob)

            def sigmoid_maps(idx: Tensor, pred: Tensor = mask_pred) -> Tensor:
                return pred[idx].sigmoid() if prob is None else prob[idx]

        else:  # resize the Q sigmoid maps, not the C score maps: one C×H×W allocation

            def semantic(cls: Tensor, pred: Tensor = mask_pred) -> Tensor:
                return semantic_inference_resized(cls, pred, image_size, height, width)

            def sigmoid_maps(idx: Tensor, pred: Tensor = mask_pred) -> Tensor:
                return resize_to_original(pred[idx].sigmoid(), image_size, height, width)

        if skipped is None or not bool(skipped[1].any()):
            r["sem_seg"] = semantic(mask_cls)
        else:
            p_void, skip, complete = skipped
            maps = sigmoid_maps if prob is None else prob  # the held σ maps are read in place
            r["sem_seg"], mask_cls, _ = certified_semantic(mask_cls, semantic, maps, p_void, skip, complete)
    if not (opts.panoptic_on or opts.instance_on):
        return r
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
            mask_prob=prob,
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
    return r
