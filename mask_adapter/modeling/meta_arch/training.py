"""Training losses of the meta-architectures: the stage-2 mixed mask set and the stage-1 GT-mask set.

Shapes as in ``base.py``; S = NUM_GT_MASKS, P = NUM_PRED_MASKS, N = S + 2P (stage 2) or WARMUP_NUM_MASKS (stage 1),
G ground-truth masks of one image. The functions receive everything they use (state, options, an embedding
function); they do not call back into the model.
"""

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from detectron2.structures import BitMasks
from detectron2.utils.events import get_event_storage
from torch import Tensor

from ..adapter.pooling import classification_logits
from ..criterion import AdapterLoss
from ..mask_sets import build_mixed_mask_set, sample_gt_slots
from .options import MaskTrainingOptions
from .state import ForwardState

__all__ = ["EmbedFn", "mixed_mask_losses", "gt_mask_losses", "padded_gt", "match_generator"]

# (state, masks (B, N, H', W')) -> (B, N, D) mask embeddings (the model's adapter or mask pooling).
EmbedFn = Callable[[ForwardState, Tensor], Tensor]


def padded_gt(state: ForwardState, batched_inputs: list[dict[str, Any]]) -> list[tuple[Tensor, Tensor]]:
    """Per image: GT masks (G, H, W) float zero-padded to the batch size, and labels (G,), on the batch's device."""
    hp, wp = state.images.tensor.shape[-2:]
    device = state.images.tensor.device
    out = []
    for i, x in enumerate(batched_inputs):
        if "instances" not in x:
            raise ValueError(
                f"training input {i} has no 'instances' (gt_masks, gt_classes); use a training dataset mapper "
                "(INPUT.DATASET_MAPPER_NAME) that produces them"
            )
        inst = x["instances"]
        masks = inst.gt_masks.tensor if isinstance(inst.gt_masks, BitMasks) else inst.gt_masks
        masks = masks.to(device).float()
        padded = masks.new_zeros(masks.shape[0], hp, wp)
        padded[:, : masks.shape[1], : masks.shape[2]] = masks
        out.append((padded, inst.gt_classes.to(device).long()))
    return out


def match_generator(seed: int, batched_inputs: list[dict[str, Any]], index: int) -> torch.Generator | None:
    """A per-image RNG for mask sampling and matching when ``seed`` >= 0 (deterministic and resumable).

    The generator depends on the seed, the trainer's iteration (0 outside a trainer) and the image's id.
    """
    if seed < 0:
        return None
    try:
        iteration = get_event_storage().iter
    except AssertionError:  # no EventStorage outside a trainer
        iteration = 0
    x = batched_inputs[index]
    key = str(x.get("image_id", x.get("file_name", index)))
    g = torch.Generator(device="cpu")
    g.manual_seed((seed * 1_000_003 + iteration * 7919 + zlib.crc32(key.encode())) % (2**63))
    return g


def _classify(state: ForwardState, masks: Tensor, embed: EmbedFn, logit_scale: Tensor) -> tuple[Tensor, Tensor]:
    emb = embed(state, masks)
    logits = classification_logits(emb, state.adapter_text, logit_scale, state.synonyms_per_class)
    return emb, logits


def _generators(seed: int, batched_inputs: list[dict[str, Any]]) -> Sequence[torch.Generator | None]:
    return [match_generator(seed, batched_inputs, i) for i in range(len(batched_inputs))]


def mixed_mask_losses(
    state: ForwardState,
    pred_masks: Tensor,
    batched_inputs: list[dict[str, Any]],
    *,
    embed: EmbedFn,
    logit_scale: Tensor,
    options: MaskTrainingOptions,
    mask_threshold: float,
) -> dict[str, Tensor]:
    """Stage 2: [S GT | P binarised matched predictions | P matched GT] per image -> CE + cosine.

    Args:
        state: the batch's forward state.
        pred_masks: (B, Q, h', w') generator mask logits (detached here).
        batched_inputs: the training inputs ("instances" with gt_masks, gt_classes).
        embed: masks -> embeddings of the model.
        logit_scale: CLIP logit scale.
        options: mask-set, matcher and loss options.
        mask_threshold: binarisation threshold of the predicted masks.

    Returns:
        {"loss_ce", "loss_cosine"}.
    """
    pred_masks = pred_masks.detach()
    masks, labels = [], []
    generators = _generators(options.seed, batched_inputs)
    for i, (gt, gt_labels) in enumerate(padded_gt(state, batched_inputs)):
        m, lab = build_mixed_mask_set(
            pred_masks[i].float(),
            gt,
            gt_labels,
            num_gt=options.num_gt_masks,
            num_pairs=options.num_pred_masks,
            mask_threshold=mask_threshold,
            match_pred_threshold=options.match_pred_threshold,
            iou_threshold=options.iou_threshold,
            generator=generators[i],
        )
        masks.append(m)
        labels.append(lab)
    masks_t, labels_t = torch.stack(masks), torch.stack(labels).to(pred_masks.device)
    emb, logits = _classify(state, masks_t, embed, logit_scale)
    loss = AdapterLoss(
        ce_weight=options.class_weight,
        cos_weight=options.cos_weight,
        num_gt=options.num_gt_masks,
        num_pairs=options.num_pred_masks,
        stop_grad=options.cos_stop_grad,
        skip_padding=options.cos_skip_padding,
    )
    return loss(logits, labels_t, emb)


def gt_mask_losses(
    state: ForwardState,
    batched_inputs: list[dict[str, Any]],
    *,
    embed: EmbedFn,
    logit_scale: Tensor,
    options: MaskTrainingOptions,
) -> dict[str, Tensor]:
    """Stage 1: WARMUP_NUM_MASKS GT slots per image (random subset or zero padding with label -1) -> CE.

    Args: as ``mixed_mask_losses`` (no predicted masks).

    Returns:
        {"loss_ce"}.
    """
    masks, labels = [], []
    generators = _generators(options.seed, batched_inputs)
    for i, (gt, gt_labels) in enumerate(padded_gt(state, batched_inputs)):
        m, lab = sample_gt_slots(gt, gt_labels, num_slots=options.warmup_num_masks, generator=generators[i])
        masks.append(m)
        labels.append(lab)
    _, logits = _classify(state, torch.stack(masks), embed, logit_scale)
    return AdapterLoss(ce_weight=options.class_weight)(logits, torch.stack(labels).to(logits.device))
