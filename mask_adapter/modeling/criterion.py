"""Adapter losses: cross-entropy over mask slots and the cosine mask-consistency loss.

Shapes used in this module:
    B     images in the batch
    N     mask slots per image (32 in both stages: 32 GT in stage 1; 16 GT + 8 pred + 8 matched GT in stage 2)
    C     classes; logits carry C + 1 columns, the last one is void (never a target)
    D     CLIP embedding width
    P     prediction / matched-GT pairs (``NUM_PRED_MASKS``)

There is no Hungarian matching, no class weighting, no mask loss and no generator loss. Total loss =
``CLASS_WEIGHT`` * loss_ce + ``COS_WEIGHT`` * loss_cosine.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AdapterLoss", "adapter_ce_loss", "check_finite_losses", "mask_consistency_loss"]

IGNORE_LABEL = -1


def adapter_ce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over all slots of the batch, averaged over the slots with a label (>= 0).

    Args:
        logits: (B, N, C+1) class logits (void last).
        labels: (B, N) long class ids, -1 for padding slots (ignored).

    Returns:
        Scalar. When no slot has a label it is exactly 0 and still depends on ``logits`` (``logits.sum() * 0``),
        so every rank backpropagates through the same graph (official ``cross_entropy_loss``).
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree: expected (B, N, C+1) and (B, N)"
        )
    if bool((labels == IGNORE_LABEL).all()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.transpose(1, 2), labels.long(), ignore_index=IGNORE_LABEL)


def mask_consistency_loss(
    embeddings: Tensor,
    *,
    pred_slice: slice,
    gt_slice: slice,
    stop_grad: bool,
    valid: Tensor | None = None,
    skip_padding: bool = False,
) -> Tensor:
    """1 - mean cosine similarity between prediction-slot and matched-GT-slot embeddings.

    Official behaviour, kept: FC-CLIP detaches the GT side (``stop_grad`` True), MAFT+ does not; the mean runs
    over all (b, i) pairs *including padding pairs*. ``skip_padding`` (``COS_LOSS_SKIP_PADDING``, ours) averages
    over the valid pairs only.

    Args:
        embeddings: (B, N, D) mask embeddings.
        pred_slice: slots of the prediction masks, [S, S+P) (from the config; the official code
            hard-codes 16:24).
        gt_slice: slots of the matched GT masks, [S+P, S+2P).
        stop_grad: detach the GT-side embeddings.
        valid: (B, P) bool, True for real pairs; required when ``skip_padding``.
        skip_padding: ignore padding pairs; 0 (graph intact) when no pair is valid.

    Returns:
        Scalar loss.
    """
    pred = embeddings[:, pred_slice]
    target = embeddings[:, gt_slice]
    if pred.shape != target.shape:
        raise ValueError(
            f"pred_slice and gt_slice select {pred.shape[1]} and {target.shape[1]} slots; they must select as many"
        )
    if stop_grad:
        target = target.detach()
    cos = F.cosine_similarity(pred, target, dim=-1)  # (B, P)
    if not skip_padding:
        if cos.numel() == 0:
            return embeddings.sum() * 0.0
        return 1.0 - cos.mean()
    if valid is None:
        raise ValueError("mask_consistency_loss(skip_padding=True) needs valid: (B, P) bool of real pairs")
    if valid.shape != cos.shape:
        raise ValueError(f"valid {tuple(valid.shape)} must match the selected pairs {tuple(cos.shape)}")
    if not bool(valid.any()):
        return embeddings.sum() * 0.0
    return 1.0 - cos[valid].mean()


class AdapterLoss:
    """Weighted adapter losses of one training step (stage 1: CE only; stage 2: CE + cosine).

    Args:
        ce_weight: ``MODEL.MASK_FORMER.CLASS_WEIGHT`` (2.0 in the shipped configs).
        cos_weight: ``MODEL.MASK_ADAPTER.COS_WEIGHT`` (5.0); ignored when ``num_pairs`` is 0.
        num_gt: S, GT slots before the pairs (``NUM_GT_MASKS``, 16).
        num_pairs: P, ``NUM_PRED_MASKS`` (8); 0 for stage 1 (no cosine loss).
        stop_grad: detach the matched-GT embeddings in the cosine loss (True FC-CLIP, False MAFT+).
        skip_padding: ``COS_LOSS_SKIP_PADDING`` (False = official).
    """

    def __init__(
        self,
        *,
        ce_weight: float,
        cos_weight: float = 0.0,
        num_gt: int = 0,
        num_pairs: int = 0,
        stop_grad: bool = True,
        skip_padding: bool = False,
    ) -> None:
        self.ce_weight = float(ce_weight)
        self.cos_weight = float(cos_weight)
        self.num_gt = int(num_gt)
        self.num_pairs = int(num_pairs)
        self.stop_grad = bool(stop_grad)
        self.skip_padding = bool(skip_padding)

    @property
    def pred_slice(self) -> slice:
        """Prediction slots [S, S+P)."""
        return slice(self.num_gt, self.num_gt + self.num_pairs)

    @property
    def gt_slice(self) -> slice:
        """Matched-GT slots [S+P, S+2P)."""
        return slice(self.num_gt + self.num_pairs, self.num_gt + 2 * self.num_pairs)

    def __call__(self, logits: Tensor, labels: Tensor, embeddings: Tensor | None = None) -> dict[str, Tensor]:
        """Compute the weighted losses.

        Args:
            logits: (B, N, C+1) adapter class logits.
            labels: (B, N) long, -1 for padding; in stage 2 N = S + 2P with labels [GT | matched | matched].
            embeddings: (B, N, D) mask embeddings; required when ``num_pairs`` > 0.

        Returns:
            {"loss_ce": ce_weight * CE} plus {"loss_cosine": cos_weight * (1 - mean cos)} when ``num_pairs`` > 0.
        """
        losses = {"loss_ce": self.ce_weight * adapter_ce_loss(logits, labels)}
        if self.num_pairs > 0:
            if embeddings is None:
                raise ValueError("AdapterLoss with num_pairs > 0 needs the (B, N, D) mask embeddings")
            expected = self.num_gt + 2 * self.num_pairs
            if embeddings.shape[1] != expected:
                raise ValueError(
                    f"embeddings have {embeddings.shape[1]} slots, expected num_gt + 2 * num_pairs = {expected}"
                )
            loss_cos = mask_consistency_loss(
                embeddings,
                pred_slice=self.pred_slice,
                gt_slice=self.gt_slice,
                stop_grad=self.stop_grad,
                valid=labels[:, self.pred_slice] >= 0,
                skip_padding=self.skip_padding,
            )
            losses["loss_cosine"] = self.cos_weight * loss_cos
        return losses

    def __repr__(self) -> str:
        return (
            f"AdapterLoss(ce_weight={self.ce_weight}, cos_weight={self.cos_weight}, num_gt={self.num_gt}, "
            f"num_pairs={self.num_pairs}, stop_grad={self.stop_grad}, skip_padding={self.skip_padding})"
        )


def check_finite_losses(losses: dict[str, Tensor], iteration: int) -> None:
    """Raise if any loss is NaN or infinite (as detectron2's trainer does, but naming the culprit).

    Args:
        losses: name -> scalar loss.
        iteration: current training iteration, for the message.

    Raises:
        FloatingPointError: naming every non-finite loss, its value and the iteration.
    """
    if not losses:
        return
    values = [v.detach().float().sum() if isinstance(v, Tensor) else torch.tensor(float(v)) for v in losses.values()]
    device = values[0].device
    if bool(torch.isfinite(torch.stack([v.to(device) for v in values])).all()):  # one device sync
        return
    bad = {k: float(v) for k, v in zip(losses.keys(), values) if not math.isfinite(float(v))}
    if bad:
        details = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise FloatingPointError(
            f"non-finite loss at iteration {iteration}: {details}; lower SOLVER.BASE_LR, check the inputs, "
            f"or disable AMP (SOLVER.AMP.ENABLED False)"
        )
