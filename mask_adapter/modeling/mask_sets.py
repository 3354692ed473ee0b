"""Fixed-size mask sets fed to the adapter during training (stage-1 GT slots, stage-2 mixed set).

Shapes used in this module (one image at a time):
    G           ground-truth masks of the image
    S           GT slots: ``WARMUP_NUM_MASKS`` (32, stage 1) or ``NUM_GT_MASKS`` (16, stage 2)
    P           prediction/matched-GT pairs: ``NUM_PRED_MASKS`` (8)
    Q           generator queries
    h×w         prediction resolution (stride 4 of the padded image)
    Hpad×Wpad   padded batch size of the images

Padding slots carry label -1: cross-entropy ignores them (``ignore_index`` -1). Random choices (which GT masks fill
the slots when there are too many) draw only from the ``generator`` argument (the official random subsampling, kept).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from .matcher import match_via_iou, random_draw_device

__all__ = ["build_mixed_mask_set", "pad_gt_masks", "sample_gt_slots", "valid_gt"]


def valid_gt(gt_masks: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Keep the GT masks with area > 0 (official ``prepare_targets``: ``mask.sum() > 0``).

    Args:
        gt_masks: (G, H, W) float or bool.
        gt_labels: (G,) class ids.

    Returns:
        (masks (G', H, W), labels (G',)) in the original order, G' <= G.
    """
    if gt_labels.shape != gt_masks.shape[:1]:
        raise ValueError(f"gt_labels {tuple(gt_labels.shape)} must have one entry per GT mask ({gt_masks.shape[0]})")
    keep = gt_masks.flatten(1).sum(1) > 0
    return gt_masks[keep], gt_labels[keep]


def sample_gt_slots(
    gt_masks: Tensor,
    gt_labels: Tensor,
    *,
    num_slots: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Fill ``num_slots`` slots with the non-empty GT masks of one image.

    Empty masks are dropped first. With more masks than slots, a random subset in random order (randperm);
    otherwise all masks in their order, then zero masks with label -1.

    Args:
        gt_masks: (G, H, W) float or bool, usually already padded to Hpad×Wpad.
        gt_labels: (G,) class ids.
        num_slots: S, ``WARMUP_NUM_MASKS`` (stage 1, 32) or ``NUM_GT_MASKS`` (stage 2, 16).
        generator: source of the random subset; None uses torch's global RNG.

    Returns:
        masks (S, H, W) float32, labels (S,) long (-1 for padding).
    """
    if num_slots < 0:
        raise ValueError(f"num_slots must be >= 0, got {num_slots}")
    masks, labels = valid_gt(gt_masks, gt_labels)
    if masks.shape[0] > num_slots:
        order = torch.randperm(masks.shape[0], generator=generator, device=random_draw_device(generator, masks.device))[
            :num_slots
        ].to(masks.device)
        masks, labels = masks[order], labels[order]
    num_pad = num_slots - masks.shape[0]
    out_masks = torch.cat([masks.float(), masks.new_zeros((num_pad, *masks.shape[1:]), dtype=torch.float32)])
    out_labels = torch.cat([labels.long(), torch.full((num_pad,), -1, dtype=torch.long, device=labels.device)])
    return out_masks, out_labels


def pad_gt_masks(gt_masks: Tensor, pad_hw: tuple[int, int]) -> Tensor:
    """Zero-pad GT masks at the bottom/right to the padded batch size, as ``ImageList`` pads the image.

    Args:
        gt_masks: (G, h_img, w_img) masks of any dtype (e.g. ``BitMasks.tensor``).
        pad_hw: (Hpad, Wpad), each >= the mask size.

    Returns:
        (G, Hpad, Wpad) with the same dtype; the mask sits in the top-left corner.
    """
    h_pad, w_pad = int(pad_hw[0]), int(pad_hw[1])
    g, h, w = gt_masks.shape
    if h > h_pad or w > w_pad:
        raise ValueError(f"GT masks of size {h}x{w} do not fit the padded size {h_pad}x{w_pad}")
    out = gt_masks.new_zeros((g, h_pad, w_pad))
    out[:, :h, :w] = gt_masks
    return out


def _resize(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """(M, h, w) float -> (M, H, W) bilinear, align_corners False."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size))
    return F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def build_mixed_mask_set(
    pred_mask_logits: Tensor,
    gt_masks: Tensor,
    gt_labels: Tensor,
    *,
    num_gt: int,
    num_pairs: int,
    mask_threshold: float,
    match_pred_threshold: float,
    iou_threshold: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Stage-2 mask set of one image: [S GT | P binarized predictions | P matched GT].

    1. GT masks with area > 0 fill S = ``num_gt`` slots (:func:`sample_gt_slots`).
    2. All valid GT masks (not only the S sampled) are matched to the predictions (:func:`match_via_iou`).
    3. Matched prediction logits are binarized at sigmoid > ``mask_threshold`` (strict) and, like the matched GT
       masks (at the prediction grid), bilinearly resized to Hpad×Wpad.

    Quirk kept on purpose (official ``hustvl/MaskAdapter:maft/maft_plus.py``): the matcher pads with zero
    *logits*; sigmoid(0) = 0.5 > ``mask_threshold`` when it is below 0.5 (MAFTP 0.45 / 0.40), so those padding
    slots become all-ones masks. They carry label -1 (ignored by cross-entropy) but enter the cosine loss.

    Random draws happen in the official order (GT subset, then per-GT pick, then pair subset), all from
    ``generator``.

    Args:
        pred_mask_logits: (Q, h, w) generator mask logits of the image.
        gt_masks: (G, Hpad, Wpad) GT masks padded to the batch size (:func:`pad_gt_masks`), float or bool.
        gt_labels: (G,) class ids.
        num_gt: S, ``NUM_GT_MASKS`` (16).
        num_pairs: P, ``NUM_PRED_MASKS`` (8).
        mask_threshold: ``MASK_THRESHOLD`` used to binarize the matched predictions (0.5 / 0.45 / 0.40).
        match_pred_threshold: binarization of predictions for the IoU (0.4 FC-CLIP, 0.5 MAFT+).
        iou_threshold: ``IOU_THRESHOLD`` (0.7, strict).
        generator: source of every random draw; None uses torch's global RNG.

    Returns:
        masks (S + 2P, Hpad, Wpad) float32; labels (S + 2P,) long = [GT labels | matched | matched], -1 for padding.
        Prediction slots are [S, S+P), matched-GT slots [S+P, S+2P).
    """
    pad_hw = (int(gt_masks.shape[-2]), int(gt_masks.shape[-1]))
    valid_masks, valid_labels = valid_gt(gt_masks, gt_labels)
    slot_masks, slot_labels = sample_gt_slots(valid_masks, valid_labels, num_slots=num_gt, generator=generator)
    match = match_via_iou(
        pred_mask_logits,
        valid_masks,
        valid_labels,
        pred_threshold=match_pred_threshold,
        iou_threshold=iou_threshold,
        num_pairs=num_pairs,
        generator=generator,
    )
    binary_preds = (match.pred_logits.sigmoid() > mask_threshold).float()
    device = slot_masks.device
    pred_slots = _resize(binary_preds, pad_hw).to(device)
    gt_pair_slots = _resize(match.gt_masks.float(), pad_hw).to(device)
    masks = torch.cat([slot_masks, pred_slots, gt_pair_slots])
    match_labels = match.labels.to(device)
    labels = torch.cat([slot_labels.to(device), match_labels, match_labels])
    return masks, labels
