"""Training losses of the meta-architectures: the stage-2 mixed mask set and the stage-1 GT-mask set.

Shapes as in ``base.py``; S = NUM_GT_MASKS, P = NUM_PRED_MASKS, N = S + 2P (stage 2) or WARMUP_NUM_MASKS (stage 1).
"""
from typing import Any, Dict, List

import torch
from torch import Tensor

from ..adapter.pooling import classification_logits
from ..criterion import AdapterLoss
from ..mask_sets import build_mixed_mask_set, sample_gt_slots

__all__ = ["mixed_mask_losses", "gt_mask_losses"]


def _classify(model, state, masks: Tensor):
    emb = model.mask_embeddings(state, masks)
    logits = classification_logits(emb, state.adapter_text, model.backbone.logit_scale, state.num_templates)
    return emb, logits


def mixed_mask_losses(
    model, state, outputs: Dict[str, Any], batched_inputs: List[Dict[str, Any]]
) -> Dict[str, Tensor]:
    """Stage 2: [S GT | P binarised matched predictions | P matched GT] per image -> CE + cosine (SPEC §5.3, §6)."""
    opts = model.training_options
    pred_masks = outputs["pred_masks"].detach()
    masks, labels = [], []
    for i, (gt, gt_labels) in enumerate(model.padded_gt(state, batched_inputs)):
        m, lab = build_mixed_mask_set(
            pred_masks[i].float(),
            gt,
            gt_labels,
            num_gt=opts.num_gt_masks,
            num_pairs=opts.num_pred_masks,
            mask_threshold=model.mask_threshold,
            match_pred_threshold=opts.match_pred_threshold,
            iou_threshold=opts.iou_threshold,
            generator=model.match_generator(batched_inputs, i),
        )
        masks.append(m)
        labels.append(lab)
    masks_t, labels_t = torch.stack(masks), torch.stack(labels).to(model.device)
    emb, logits = _classify(model, state, masks_t)
    loss = AdapterLoss(
        ce_weight=opts.class_weight,
        cos_weight=opts.cos_weight,
        num_gt=opts.num_gt_masks,
        num_pairs=opts.num_pred_masks,
        stop_grad=opts.cos_stop_grad,
        skip_padding=opts.cos_skip_padding,
    )
    return loss(logits, labels_t, emb)


def gt_mask_losses(
    model, state, outputs: Dict[str, Any], batched_inputs: List[Dict[str, Any]]
) -> Dict[str, Tensor]:
    """Stage 1: WARMUP_NUM_MASKS GT slots per image (random subset or zero padding with label -1) -> CE."""
    opts = model.training_options
    masks, labels = [], []
    for i, (gt, gt_labels) in enumerate(model.padded_gt(state, batched_inputs)):
        m, lab = sample_gt_slots(
            gt, gt_labels, num_slots=opts.warmup_num_masks, generator=model.match_generator(batched_inputs, i)
        )
        masks.append(m)
        labels.append(lab)
    _, logits = _classify(model, state, torch.stack(masks))
    return AdapterLoss(ce_weight=opts.class_weight)(logits, torch.stack(labels).to(model.device))
