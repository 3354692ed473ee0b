"""IoU-based matching of generator predictions to ground-truth masks (stage-2 mixed-mask training).

The generator (FC-CLIP / MAFT+) is frozen, so matching is not Hungarian: every ground-truth mask picks, uniformly
at random, one prediction whose IoU with it exceeds a threshold; the resulting pairs are capped and padded to a
fixed count (official ``match_via_iou`` in ``hustvl/MaskAdapter:fcclip/fcclip.py``).

Shapes used in this module (one image at a time):
    Q     generator queries (250 FC-CLIP, 100 MAFT+)
    G     valid ground-truth masks of the image (area > 0)
    P     ``num_pairs`` = ``MODEL.MASK_ADAPTER.NUM_PRED_MASKS`` (8)
    h×w   prediction resolution (stride 4 of the padded image)
    H×W   ground-truth resolution (the padded image, Hpad × Wpad)

Randomness (as in the official code, kept on purpose): the per-GT pick and the subset of pairs are random. Every draw
comes from the ``generator`` argument, so seeding one ``torch.Generator`` per image makes matching reproducible.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IouMatch", "mask_iou", "match_via_iou", "random_draw_device"]

# Added to the union before dividing, as in the official ``compute_mask_iou``.
_IOU_EPS = 1e-6
# Ground truth, bilinearly resized to the prediction grid, counts as foreground above this value.
_GT_BINARIZE_THRESHOLD = 0.5


class IouMatch(NamedTuple):
    """Result of :func:`match_via_iou` for one image; rows [0, num_valid) are pairs, the rest padding.

    Attributes:
        pred_logits: (P, h, w) matched prediction *logits* (zeros in padding rows), detached.
        gt_masks: (P, h, w) float, the matched GT masks bilinearly resized to the prediction grid, not binarized
            (zeros in padding rows). The official code returns them at this resolution and resizes them back to
            H×W afterwards (see :func:`mask_adapter.modeling.mask_sets.build_mixed_mask_set`).
        labels: (P,) long, class of the matched GT, -1 in padding rows.
        num_valid: number of real pairs, 0 <= num_valid <= P.
    """

    pred_logits: Tensor
    gt_masks: Tensor
    labels: Tensor
    num_valid: int


def random_draw_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """Device on which random numbers must be drawn: the generator's own device, or ``fallback`` without one."""
    return generator.device if generator is not None else fallback


def mask_iou(pred_mask_logits: Tensor, gt_masks: Tensor, *, pred_threshold: float) -> Tensor:
    """IoU matrix between binarized predictions and binarized ground truth at the same resolution.

    Args:
        pred_mask_logits: (Q, h, w) logits; foreground where sigmoid >= ``pred_threshold`` (non-strict).
        gt_masks: (G, h, w) float in [0, 1]; foreground where > 0.5 (strict).
        pred_threshold: probability threshold of the predictions (0.4 FC-CLIP, 0.5 MAFT+).

    Returns:
        (Q, G) float32 IoU = intersection / (union + 1e-6).
    """
    pred = (pred_mask_logits.sigmoid() >= pred_threshold).flatten(1).float()
    gt = (gt_masks > _GT_BINARIZE_THRESHOLD).flatten(1).float()
    inter = pred @ gt.t()
    union = pred.sum(1)[:, None] + gt.sum(1)[None, :] - inter
    return inter / (union + _IOU_EPS)


def _pick_random_candidate(candidates: Tensor, generator: torch.Generator | None) -> Tensor:
    """For each column of a (Q, G) bool matrix, the row index of one True entry chosen uniformly at random.

    Columns without a True entry get -1. One uniform draw per column, from ``generator``.
    """
    num_q, num_g = candidates.shape
    counts = candidates.sum(0)  # (G,)
    u = torch.rand(num_g, generator=generator, device=random_draw_device(generator, candidates.device))
    u = u.to(candidates.device)
    # k-th candidate (0-based) of each column, k uniform in [0, count).
    k = torch.minimum((u * counts).floor().long(), (counts - 1).clamp(min=0))
    rank = candidates.long().cumsum(0) - 1  # (Q, G) 0-based rank of each True entry within its column
    hit = candidates & (rank == k[None, :])
    picked = hit.long().argmax(0)
    return torch.where(counts > 0, picked, torch.full_like(picked, -1))


@torch.no_grad()
def match_via_iou(
    pred_mask_logits: Tensor,
    gt_masks: Tensor,
    gt_labels: Tensor,
    *,
    pred_threshold: float,
    iou_threshold: float,
    num_pairs: int,
    generator: torch.Generator | None = None,
) -> IouMatch:
    """Match the valid ground-truth masks of one image to generator predictions by IoU.

    1. All GT masks are bilinearly resized (align_corners False) to the prediction grid h×w.
    2. IoU of predictions binarized at sigmoid >= ``pred_threshold`` with GT binarized at > 0.5.
    3. For each GT, candidates are the queries with IoU > ``iou_threshold`` (strict); one is picked uniformly at
       random. GTs may share a query; unmatched predictions are never used.
    4. More than ``num_pairs`` pairs: a random subset (random order). Fewer: padding rows with zero prediction
       logits, zero GT masks and label -1.

    Args:
        pred_mask_logits: (Q, h, w) prediction logits of the frozen generator.
        gt_masks: (G, H, W) float or bool ground-truth masks of the image (already filtered to area > 0 and padded
            to the batch size by the caller). G may be 0.
        gt_labels: (G,) class ids.
        pred_threshold: ``MATCH_PRED_THRESHOLD`` (0.4 FC-CLIP, 0.5 MAFT+, the official values).
        iou_threshold: ``MODEL.MASK_ADAPTER.IOU_THRESHOLD`` (0.7).
        num_pairs: P, ``MODEL.MASK_ADAPTER.NUM_PRED_MASKS`` (8).
        generator: source of every random draw; None uses torch's global RNG.

    Returns:
        :class:`IouMatch` with P rows.
    """
    _check_match_inputs(pred_mask_logits, gt_masks, gt_labels, num_pairs)
    device = pred_mask_logits.device
    h, w = pred_mask_logits.shape[-2:]
    pred_idx = torch.zeros(0, dtype=torch.long, device=device)
    gt_idx = torch.zeros(0, dtype=torch.long, device=device)
    gt_small = torch.zeros((0, h, w), dtype=torch.float32, device=device)
    if gt_masks.shape[0] > 0 and pred_mask_logits.shape[0] > 0:
        gt_small = _resize_gt(gt_masks, (h, w), device)
        ious = mask_iou(pred_mask_logits, gt_small, pred_threshold=pred_threshold)
        picked = _pick_random_candidate(ious > iou_threshold, generator)
        gt_idx = torch.nonzero(picked >= 0, as_tuple=True)[0]
        pred_idx = picked[gt_idx]
    pred_idx, gt_idx = _subsample_pairs(pred_idx, gt_idx, num_pairs, generator)
    return _padded_match(pred_mask_logits, gt_small, gt_labels, pred_idx, gt_idx, num_pairs)


def _check_match_inputs(pred_mask_logits: Tensor, gt_masks: Tensor, gt_labels: Tensor, num_pairs: int) -> None:
    if pred_mask_logits.dim() != 3 or gt_masks.dim() != 3:
        raise ValueError(
            f"match_via_iou expects pred_mask_logits (Q, h, w) and gt_masks (G, H, W); got "
            f"{tuple(pred_mask_logits.shape)} and {tuple(gt_masks.shape)}"
        )
    if gt_labels.shape != gt_masks.shape[:1]:
        raise ValueError(f"gt_labels {tuple(gt_labels.shape)} must have one entry per GT mask ({gt_masks.shape[0]})")
    if num_pairs < 0:
        raise ValueError(f"num_pairs must be >= 0, got {num_pairs}")


def _resize_gt(gt_masks: Tensor, size: tuple[int, int], device: torch.device) -> Tensor:
    """(G, H, W) GT masks -> (G, h, w) float, bilinear (align_corners False), on ``device``."""
    return F.interpolate(
        gt_masks[:, None].to(device=device, dtype=torch.float32), size=size, mode="bilinear", align_corners=False
    )[:, 0]


def _subsample_pairs(
    pred_idx: Tensor, gt_idx: Tensor, num_pairs: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """At most ``num_pairs`` (prediction, GT) pairs: a random subset in random order when there are more."""
    if gt_idx.numel() <= num_pairs:
        return pred_idx, gt_idx
    device = gt_idx.device
    keep = torch.randperm(gt_idx.numel(), generator=generator, device=random_draw_device(generator, device))
    keep = keep[:num_pairs].to(device)
    return pred_idx[keep], gt_idx[keep]


def _padded_match(
    pred_mask_logits: Tensor, gt_small: Tensor, gt_labels: Tensor, pred_idx: Tensor, gt_idx: Tensor, num_pairs: int
) -> IouMatch:
    """The matched pairs followed by padding rows (zero logits, zero GT mask, label -1) up to ``num_pairs``."""
    device = pred_mask_logits.device
    h, w = pred_mask_logits.shape[-2:]
    num_valid = int(gt_idx.numel())
    num_pad = num_pairs - num_valid
    pred_out = torch.cat([pred_mask_logits[pred_idx], pred_mask_logits.new_zeros((num_pad, h, w))])
    gt_out = torch.cat([gt_small[gt_idx], gt_small.new_zeros((num_pad, h, w))])
    labels = torch.cat(
        [
            gt_labels.to(device=device, dtype=torch.long)[gt_idx],
            torch.full((num_pad,), -1, dtype=torch.long, device=device),
        ]
    )
    return IouMatch(pred_logits=pred_out, gt_masks=gt_out, labels=labels, num_valid=num_valid)
