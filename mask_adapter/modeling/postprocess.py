"""Mask2Former post-processing as pure functions, for one image at a time.

Shapes: Q queries; C classes, the class logits carry C + 1 columns (last = void / no-object);
H×W the resolution of the mask logits (already upsampled by the caller).
"""

from typing import Any

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances
from torch import Tensor

__all__ = [
    "semantic_inference",
    "semantic_inference_resized",
    "panoptic_inference",
    "instance_inference",
    "resize_to_original",
]


def _check_pair(mask_cls: Tensor, mask_pred: Tensor) -> None:
    if mask_cls.dim() != 2 or mask_pred.dim() != 3 or mask_cls.shape[0] != mask_pred.shape[0]:
        raise ValueError(
            f"expected mask_cls (Q, C+1) and mask_pred (Q, H, W) with the same Q, got "
            f"{tuple(mask_cls.shape)} and {tuple(mask_pred.shape)}"
        )


def _checked_prob(mask_prob: Tensor, mask_pred: Tensor) -> Tensor:
    if mask_prob.shape != mask_pred.shape:
        raise ValueError(
            f"mask_prob must be σ(mask_pred) of the same shape {tuple(mask_pred.shape)}, got {tuple(mask_prob.shape)}"
        )
    return mask_prob


def semantic_inference(
    mask_cls: Tensor, mask_pred: Tensor, class_chunk: int = 0, *, mask_prob: Tensor | None = None
) -> Tensor:
    """Per-class score map Σ_q softmax(cls_q)[c] · σ(mask_q).

    Args:
        mask_cls: (Q, C + 1) class logits.
        mask_pred: (Q, H, W) mask logits.
        class_chunk: if > 0, compute ``class_chunk`` classes at a time into a preallocated output
            (same sums, bounded temporaries for large vocabularies); 0 computes it at once.
        mask_prob: σ(mask_pred) when the caller already holds it (reused as is; the same values).

    Returns:
        (C, H, W) scores.
    """
    _check_pair(mask_cls, mask_pred)
    if class_chunk < 0:
        raise ValueError(f"class_chunk must be >= 0 (0 = no chunking), got {class_chunk}")
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    masks = mask_pred.sigmoid() if mask_prob is None else _checked_prob(mask_prob, mask_pred)
    if class_chunk == 0:
        return torch.einsum("qc,qhw->chw", probs, masks)
    q, h, w = masks.shape
    num_classes = probs.shape[1]
    flat = masks.reshape(q, h * w)
    out = masks.new_empty((num_classes, h * w))
    for start in range(0, num_classes, class_chunk):
        stop = min(start + class_chunk, num_classes)
        out[start:stop] = probs[:, start:stop].t() @ flat
    return out.view(num_classes, h, w)


def semantic_inference_resized(
    mask_cls: Tensor, mask_pred: Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> Tensor:
    """``resize_to_original(semantic_inference(mask_cls, mask_pred), ...)`` with one (C, H_out, W_out) allocation.

    The crop and bilinear resize are linear, so they are applied to the Q sigmoid maps instead of the C score maps
    (same values up to float reassociation); the scores are then one (C, Q) × (Q, H_out·W_out) product written
    straight into the output. For large vocabularies (A-847) nothing of size C × H × W exists except the result.

    Args:
        mask_cls: (Q, C + 1) class logits.
        mask_pred: (Q, H_pad, W_pad) mask logits at the padded input size.
        img_size, output_height, output_width: as ``resize_to_original``.

    Returns:
        (C, output_height, output_width) scores.
    """
    _check_pair(mask_cls, mask_pred)
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    masks = resize_to_original(mask_pred.sigmoid(), img_size, output_height, output_width)
    out = masks.new_empty((probs.shape[1], output_height * output_width))
    torch.mm(probs.t(), masks.flatten(1), out=out)
    return out.view(probs.shape[1], output_height, output_width)


def panoptic_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    *,
    num_classes: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: set[int],
    mask_prob: Tensor | None = None,
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Mask2Former panoptic merging: non-overlapping segments, stuff of the same class merged.

    Queries predicting void or with score <= ``object_mask_threshold`` are dropped. Each pixel goes
    to the query maximising score·σ(mask); a query is dropped if the pixels it wins are fewer than
    ``overlap_threshold`` × its own area σ(mask) ≥ 0.5; it is painted where it wins and σ ≥ 0.5.

    Args:
        mask_cls: (Q, C + 1) class logits.
        mask_pred: (Q, H, W) mask logits.
        num_classes: C (the void label is C).
        object_mask_threshold: minimum class probability of a kept query.
        overlap_threshold: minimum (won area / own area) of a kept query.
        thing_ids: contiguous ids of the thing classes.
        mask_prob: σ(mask_pred) when the caller already holds it (its kept rows are used; the same values).

    Returns:
        panoptic_seg (H, W) int32, 0 = void, segment ids 1..n; segments_info: one dict per segment
        with ``id``, ``isthing``, ``category_id`` and ``area`` (pixels of the id in panoptic_seg).
    """
    _check_pair(mask_cls, mask_pred)
    if mask_cls.shape[1] != num_classes + 1:
        raise ValueError(f"mask_cls has {mask_cls.shape[1]} columns, expected num_classes + 1 = {num_classes + 1}")
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    # σ only of the kept queries (elementwise: the same values as σ of all then the selection); no copy when all kept
    all_kept = bool(keep.all())
    if mask_prob is not None:
        prob = _checked_prob(mask_prob, mask_pred)
        cur_masks = prob if all_kept else prob[keep]
    else:
        cur_masks = (mask_pred if all_kept else mask_pred[keep]).sigmoid()
    cur_scores, cur_classes = scores[keep], labels[keep]
    panoptic_seg = torch.zeros(mask_pred.shape[-2:], dtype=torch.int32, device=mask_pred.device)
    if cur_masks.shape[0] == 0:
        return panoptic_seg, []
    segments_info = _paint_segments(
        panoptic_seg, cur_scores, cur_classes, cur_masks, overlap_threshold=overlap_threshold, thing_ids=thing_ids
    )
    areas = torch.bincount(panoptic_seg.flatten().long(), minlength=len(segments_info) + 1).tolist()
    for info in segments_info:
        info["area"] = int(areas[info["id"]])
    return panoptic_seg, segments_info


def _paint_segments(
    panoptic_seg: Tensor,
    scores: Tensor,
    classes: Tensor,
    masks: Tensor,
    *,
    overlap_threshold: float,
    thing_ids: set[int],
) -> list[dict[str, Any]]:
    """Paint the kept queries into ``panoptic_seg`` (in place) and return their segments (without areas).

    Args:
        panoptic_seg: (H, W) int32 zeros.
        scores, classes: (K,) of the kept queries; masks: (K, H, W) their σ(mask logits).
    """
    mask_ids = (scores.view(-1, 1, 1) * masks).argmax(0)
    stuff_segment: dict[int, int] = {}
    segments_info: list[dict[str, Any]] = []
    segment_id = 0
    for k in range(classes.shape[0]):
        pred_class = int(classes[k].item())
        isthing = pred_class in thing_ids
        won = mask_ids == k
        own = masks[k] >= 0.5
        mask_area = int(won.sum().item())
        original_area = int(own.sum().item())
        mask = won & own
        if mask_area == 0 or original_area == 0 or not bool(mask.any()):
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing and pred_class in stuff_segment:
            panoptic_seg[mask] = stuff_segment[pred_class]  # merge into the class's stuff segment
            continue
        segment_id += 1
        if not isthing:
            stuff_segment[pred_class] = segment_id
        panoptic_seg[mask] = segment_id
        segments_info.append({"id": segment_id, "isthing": bool(isthing), "category_id": pred_class})
    return segments_info


def instance_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    *,
    num_classes: int,
    top_k: int,
    thing_ids: set[int] | None,
    image_size: tuple[int, int] | None = None,
) -> Instances:
    """Top-k (query, class) pairs as instances; mask = logit > 0; boxes are zeros.

    The score of a pair is softmax(cls)[c] × mean σ(mask) inside its binary mask. As in Mask2Former
    the top-k is taken over all Q·C pairs first, then (if ``thing_ids`` is given, i.e. with
    PANOPTIC_ON) pairs of non-thing classes are removed.

    Args:
        mask_cls: (Q, C + 1) class logits.
        mask_pred: (Q, H, W) mask logits.
        num_classes: C.
        top_k: pairs kept (TEST.DETECTIONS_PER_IMAGE); capped at Q·C.
        thing_ids: contiguous thing-class ids to keep, or None to keep every class.
        image_size: (H, W) of the returned Instances; defaults to the mask size.

    Returns:
        ``Instances`` with pred_masks (n, H, W) bool, pred_boxes zeros, scores and pred_classes
        (n,).
    """
    _check_pair(mask_cls, mask_pred)
    if mask_cls.shape[1] != num_classes + 1:
        raise ValueError(f"mask_cls has {mask_cls.shape[1]} columns, expected num_classes + 1 = {num_classes + 1}")
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]
    k = min(top_k, scores.numel())
    scores_per_image, topk_indices = scores.flatten().topk(k, sorted=False)
    labels_per_image = topk_indices % num_classes
    masks = mask_pred[torch.div(topk_indices, num_classes, rounding_mode="floor")]
    if thing_ids is not None:
        things = torch.tensor(sorted(thing_ids), dtype=labels_per_image.dtype, device=labels_per_image.device)
        keep = torch.isin(labels_per_image, things)
        scores_per_image, labels_per_image, masks = (
            scores_per_image[keep],
            labels_per_image[keep],
            masks[keep],
        )

    result = Instances(tuple(image_size) if image_size is not None else tuple(mask_pred.shape[-2:]))
    binary = masks > 0
    result.pred_masks = binary
    result.pred_boxes = Boxes(torch.zeros(masks.shape[0], 4, device=masks.device))
    flat = binary.flatten(1).to(masks.dtype)
    mask_scores = (masks.sigmoid().flatten(1) * flat).sum(1) / (flat.sum(1) + 1e-6)
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
    return result


def resize_to_original(result: Tensor, img_size: tuple[int, int], output_height: int, output_width: int) -> Tensor:
    """detectron2 ``sem_seg_postprocess``: crop the padding to ``img_size``, then bilinear resize.

    Args:
        result: (C, H_pad, W_pad) (or (H_pad, W_pad)) scores or logits at the padded input size.
        img_size: (h, w) of the resized image before padding.
        output_height, output_width: size of the original image.

    Returns:
        (C, output_height, output_width) (or (output_height, output_width)). When the crop already has the output
        size the bilinear resize is the identity (the same values): the crop is returned without resizing,
        a view of ``result`` when nothing is cropped (callers own the result; do not rely on it being a copy).
    """
    squeeze = result.dim() == 2
    x = result[None] if squeeze else result
    x = x[:, : img_size[0], : img_size[1]]
    if x.shape[-2:] == (output_height, output_width):
        x = x if x.is_contiguous() else x.contiguous()
    else:
        x = F.interpolate(x.unsqueeze(0), size=(output_height, output_width), mode="bilinear", align_corners=False)[0]
    return x[0] if squeeze else x
