"""Adapter losses: hand-computed CE and cosine values, padding, stop-gradient, weights, NaN check."""

import math

import pytest
import torch

from mask_adapter.modeling.criterion import (
    AdapterLoss,
    adapter_ce_loss,
    check_finite_losses,
    mask_consistency_loss,
)


def test_ce_hand_computed_and_padding_ignored():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, -3.0, 1.0]]], requires_grad=True)
    labels = torch.tensor([[0, 2, -1]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(3)) / 2  # mean over the 2 valid slots
    loss = adapter_ce_loss(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert (logits.grad[0, 2] == 0).all()  # padding slot gets no gradient
    assert logits.grad[0, :2].abs().sum() > 0
    other = logits.detach().clone()
    other[0, 2] = torch.tensor([-9.0, 9.0, 0.0])
    assert adapter_ce_loss(other, labels).item() == pytest.approx(expected, rel=1e-6)


def test_ce_mean_is_over_valid_slots_of_the_whole_batch():
    logits = torch.zeros(2, 3, 4)  # uniform: CE = log 4 per valid slot
    labels = torch.tensor([[1, -1, -1], [3, 0, -1]])
    assert adapter_ce_loss(logits, labels).item() == pytest.approx(math.log(4), rel=1e-6)


def test_ce_without_valid_slot_is_zero_with_graph():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    loss = adapter_ce_loss(logits, torch.full((2, 4), -1))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad is not None and (logits.grad == 0).all()


def test_ce_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\(B, N, C\+1\)"):
        adapter_ce_loss(torch.zeros(1, 3, 4), torch.zeros(1, 2, dtype=torch.long))


def _embeddings():
    # B=1, slots [gt0 | pred0 pred1 | gt_pair0 gt_pair1]; pair 0: cos = 0, pair 1: cos = 1
    e = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [2.0, 2.0]]])
    return e.requires_grad_(True)


def test_cosine_hand_computed():
    loss = mask_consistency_loss(_embeddings(), pred_slice=slice(1, 3), gt_slice=slice(3, 5), stop_grad=True)
    assert loss.item() == pytest.approx(1 - (0 + 1) / 2, abs=1e-6)


def test_cosine_includes_padding_unless_skipped():
    e = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.5, 0.5]]])  # pair 1 is padding (cos 0 with zeros)
    kw = dict(pred_slice=slice(0, 2), gt_slice=slice(2, 4), stop_grad=True)
    assert mask_consistency_loss(e, **kw).item() == pytest.approx(0.5, abs=1e-6)  # official: 1 - (1 + 0) / 2
    valid = torch.tensor([[True, False]])
    assert mask_consistency_loss(e, valid=valid, skip_padding=True, **kw).item() == pytest.approx(0.0, abs=1e-6)
    none_valid = mask_consistency_loss(e.requires_grad_(True), valid=~valid & valid, skip_padding=True, **kw)
    assert none_valid.item() == 0.0 and none_valid.requires_grad
    with pytest.raises(ValueError, match="needs valid"):
        mask_consistency_loss(e, skip_padding=True, **kw)


@pytest.mark.parametrize("stop_grad", [True, False])
def test_stop_grad_only_blocks_the_gt_side(stop_grad):
    e = _embeddings()
    mask_consistency_loss(e, pred_slice=slice(1, 3), gt_slice=slice(3, 5), stop_grad=stop_grad).backward()
    gt_side = e.grad[0, 3].abs().sum()  # pair 0 (cos 0) has a non-zero gradient on both sides
    assert e.grad[0, 1].abs().sum() > 0
    assert (gt_side == 0) if stop_grad else (gt_side > 0)
    assert (e.grad[0, 0] == 0).all()  # the GT slot outside the pairs never gets a cosine gradient


def test_adapter_loss_weights_and_slices():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 4)
    labels = torch.tensor([[0, -1, 1, -1, 1, -1], [2, 3, -1, -1, -1, -1]])
    emb = torch.randn(2, 6, 8)
    loss_fn = AdapterLoss(ce_weight=2.0, cos_weight=5.0, num_gt=2, num_pairs=2, stop_grad=True)
    out = loss_fn(logits, labels, emb)
    assert set(out) == {"loss_ce", "loss_cosine"}
    assert out["loss_ce"].item() == pytest.approx(2.0 * adapter_ce_loss(logits, labels).item(), rel=1e-6)
    cos = torch.nn.functional.cosine_similarity(emb[:, 2:4], emb[:, 4:6], dim=-1)
    assert out["loss_cosine"].item() == pytest.approx(5.0 * (1 - cos.mean().item()), rel=1e-5)
    skip = AdapterLoss(ce_weight=2.0, cos_weight=5.0, num_gt=2, num_pairs=2, skip_padding=True)(logits, labels, emb)
    # only image 0, pair 0 is valid (label 1 in slot 2)
    assert skip["loss_cosine"].item() == pytest.approx(5.0 * (1 - cos[0, 0].item()), rel=1e-5)


def test_adapter_loss_stage1_and_errors():
    logits, labels = torch.zeros(1, 32, 3), torch.zeros(1, 32, dtype=torch.long)
    out = AdapterLoss(ce_weight=2.0)(logits, labels)
    assert list(out) == ["loss_ce"] and out["loss_ce"].item() == pytest.approx(2 * math.log(3), rel=1e-6)
    staged = AdapterLoss(ce_weight=1.0, cos_weight=5.0, num_gt=16, num_pairs=8)
    with pytest.raises(ValueError, match="needs the"):
        staged(logits, labels)
    with pytest.raises(ValueError, match="expected num_gt"):
        staged(torch.zeros(1, 30, 3), torch.zeros(1, 30, dtype=torch.long), torch.zeros(1, 30, 4))


def test_check_finite_losses():
    check_finite_losses({"loss_ce": torch.tensor(1.0), "loss_cosine": torch.tensor(0.0)}, iteration=3)
    with pytest.raises(FloatingPointError, match=r"iteration 17: loss_cosine=nan"):
        check_finite_losses({"loss_ce": torch.tensor(1.0), "loss_cosine": torch.tensor(float("nan"))}, 17)
    with pytest.raises(FloatingPointError, match="loss_ce=inf"):
        check_finite_losses({"loss_ce": torch.tensor(float("inf"))}, 0)
