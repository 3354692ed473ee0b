"""IoU matcher: thresholds, random pick, cap, padding, determinism."""

import pytest
import torch
import torch.nn.functional as F

from mask_adapter.modeling.matcher import IouMatch, mask_iou, match_via_iou

BIG = 20.0  # logit of a confident pixel


def _logits(mask: torch.Tensor) -> torch.Tensor:
    """Binary (…, h, w) mask -> confident logits (+BIG inside, -BIG outside)."""
    return torch.where(mask.bool(), torch.tensor(BIG), torch.tensor(-BIG))


def _block(h: int, w: int, rows: slice, cols: slice) -> torch.Tensor:
    m = torch.zeros(h, w)
    m[rows, cols] = 1.0
    return m


def _match(pred, gt, labels, **kw) -> IouMatch:
    args = dict(
        pred_threshold=0.4,
        iou_threshold=0.7,
        num_pairs=8,
        generator=torch.Generator().manual_seed(0),
    )
    args.update(kw)
    return match_via_iou(pred, gt, labels, **args)


def test_iou_threshold_is_strict():
    # prediction: 10 pixels; GT: 7 of them -> IoU = 7 / (10 + 1e-6), just below 0.7
    pred = torch.zeros(1, 1, 10)
    pred[0, 0, :10] = 1
    gt = torch.zeros(1, 1, 10)
    gt[0, 0, :7] = 1
    iou = mask_iou(_logits(pred), gt, pred_threshold=0.4)[0, 0]
    assert iou.item() == pytest.approx(0.7, abs=1e-6)
    labels = torch.tensor([5])
    # IoU exactly equal to the threshold is not a match (strict >).
    assert _match(_logits(pred), gt, labels, iou_threshold=iou.item()).num_valid == 0
    assert _match(_logits(pred), gt, labels, iou_threshold=iou.item() - 1e-4).num_valid == 1
    # With the official 0.7: 7/10 pixels does not pass, 8/10 does.
    assert _match(_logits(pred), gt, labels, iou_threshold=0.7).num_valid == 0
    gt[0, 0, 7] = 1
    m = _match(_logits(pred), gt, labels, iou_threshold=0.7)
    assert m.num_valid == 1 and m.labels[0].item() == 5


def test_pred_binarization_is_non_strict_and_gt_at_half():
    # logit 0 -> sigmoid 0.5: foreground at pred_threshold 0.5 (>=), background just above.
    pred = torch.zeros(1, 2, 2)
    gt = torch.ones(1, 2, 2)
    assert mask_iou(pred, gt, pred_threshold=0.5)[0, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert mask_iou(pred, gt, pred_threshold=0.5001)[0, 0].item() == 0.0
    # GT binarized at > 0.5 (strict): a 0.5-valued GT is background.
    assert mask_iou(pred, torch.full((1, 2, 2), 0.5), pred_threshold=0.5)[0, 0].item() == 0.0
    # FC-CLIP's 0.4: sigmoid(-0.3) = 0.4256 counts as foreground, sigmoid(-0.5) = 0.3775 does not.
    assert mask_iou(torch.full((1, 2, 2), -0.3), gt, pred_threshold=0.4)[0, 0].item() > 0.99
    assert mask_iou(torch.full((1, 2, 2), -0.5), gt, pred_threshold=0.4)[0, 0].item() == 0.0


def test_gt_resized_bilinearly_to_prediction_grid():
    # GT at 4x the prediction resolution; a block aligned to 4-pixel cells downsamples exactly.
    gt = _block(32, 32, slice(8, 24), slice(4, 20))[None]
    pred = _logits(_block(8, 8, slice(2, 6), slice(1, 5)))[None]
    m = _match(pred, gt, torch.tensor([3]), num_pairs=2)
    expected = F.interpolate(gt[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    assert m.num_valid == 1
    assert m.gt_masks.shape == (2, 8, 8) and m.pred_logits.shape == (2, 8, 8)
    torch.testing.assert_close(m.gt_masks[0], expected[0])
    torch.testing.assert_close(m.pred_logits[0], pred[0])
    assert m.gt_masks[0].sum().item() == 16.0


def test_random_pick_distinguishes_three_candidates():
    """Three different candidate queries, each picked about 1/3 of the time (chi-square, 2 dof)."""
    gt = _block(10, 10, slice(0, 5), slice(0, 4))[None]  # 20 pixels
    cands = [
        _block(10, 10, slice(0, 5), slice(0, 5)),  # 20/25 = 0.8
        _block(10, 10, slice(0, 6), slice(0, 4)),  # 20/24
        _block(10, 10, slice(0, 5), slice(0, 4)),  # 1.0
    ]
    far = _block(10, 10, slice(5, 10), slice(5, 10))
    pred = _logits(torch.stack([far, cands[0], far, cands[1], cands[2]]))
    counts = torch.zeros(5)
    n = 3000
    for seed in range(n):
        m = _match(pred, gt, torch.tensor([1]), num_pairs=1, generator=torch.Generator().manual_seed(seed))
        hits = [i for i in range(5) if torch.equal(pred[i], m.pred_logits[0])]
        assert len(hits) == 1
        counts[hits[0]] += 1
    assert counts[0] == 0 and counts[2] == 0
    observed = counts[[1, 3, 4]]
    chi2 = ((observed - n / 3) ** 2 / (n / 3)).sum().item()
    assert chi2 < 13.82  # 2 dof, p = 0.001
    assert observed.min() > 0.28 * n


def _one_query_per_gt(num: int, size: int = 16):
    """num GTs, GT i a distinct row band; query i equals GT i (IoU 1)."""
    gt = torch.zeros(num, size, size)
    for i in range(num):
        gt[i, i, :] = 1
    return _logits(gt), gt


def test_cap_keeps_random_subset_of_consistent_pairs():
    pred, gt = _one_query_per_gt(12)
    labels = torch.arange(100, 112)
    subsets = set()
    for seed in range(10):
        m = _match(pred, gt, labels, num_pairs=8, generator=torch.Generator().manual_seed(seed))
        assert m.num_valid == 8 and m.labels.shape == (8,)
        assert len(set(m.labels.tolist())) == 8 and (m.labels >= 100).all()
        for i in range(8):
            j = m.labels[i].item() - 100
            torch.testing.assert_close(m.pred_logits[i], pred[j])
            torch.testing.assert_close(m.gt_masks[i], gt[j])
        subsets.add(tuple(m.labels.tolist()))
    assert len(subsets) > 1  # the subset (and order) is random


def test_padding_rows_are_zero_with_label_minus_one():
    pred, gt = _one_query_per_gt(3)
    m = _match(pred, gt, torch.tensor([7, 8, 9]), num_pairs=5)
    assert m.num_valid == 3
    assert m.labels.tolist() == [7, 8, 9, -1, -1]  # matched pairs keep GT order when not capped
    assert m.labels.dtype == torch.long
    assert (m.pred_logits[3:] == 0).all() and (m.gt_masks[3:] == 0).all()


def test_gts_may_share_one_query():
    gt = _block(8, 8, slice(0, 4), slice(0, 4))
    pred = _logits(torch.stack([gt, torch.zeros(8, 8)]))
    m = _match(pred, torch.stack([gt, gt]), torch.tensor([1, 2]), num_pairs=2)
    assert m.num_valid == 2 and m.labels.tolist() == [1, 2]
    torch.testing.assert_close(m.pred_logits[0], pred[0])
    torch.testing.assert_close(m.pred_logits[1], pred[0])


@pytest.mark.parametrize("case", ["empty_predictions", "no_gt", "no_query"])
def test_no_candidates_gives_all_padding(case):
    gt = _block(8, 8, slice(0, 4), slice(0, 4))[None]
    pred = torch.full((4, 8, 8), -BIG)
    labels = torch.tensor([3])
    if case == "no_gt":
        pred, gt, labels = (
            _logits(gt.expand(4, 8, 8)),
            torch.zeros(0, 8, 8),
            torch.zeros(0, dtype=torch.long),
        )
    if case == "no_query":
        pred = torch.zeros(0, 8, 8)
    m = _match(pred, gt, labels, num_pairs=4)
    assert m.num_valid == 0
    assert m.labels.tolist() == [-1] * 4
    assert m.pred_logits.shape == (4, 8, 8) and (m.pred_logits == 0).all()
    assert m.gt_masks.shape == (4, 8, 8) and (m.gt_masks == 0).all()


def test_bool_gt_no_grad_and_generator_only_randomness():
    pred, gt = _one_query_per_gt(12)
    pred.requires_grad_(True)
    labels = torch.arange(12)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = _match(pred, gt.bool(), labels, generator=torch.Generator().manual_seed(5))
    after = torch.rand(1)
    assert torch.equal(before, after)  # the global RNG was not touched
    b = _match(pred, gt.bool(), labels, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.labels, b.labels) and torch.equal(a.pred_logits, b.pred_logits)
    assert not a.pred_logits.requires_grad
    assert a.gt_masks.dtype == torch.float32


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="pred_mask_logits"):
        _match(torch.zeros(2, 4), torch.zeros(1, 4, 4), torch.tensor([1]))
    with pytest.raises(ValueError, match="one entry per GT"):
        _match(torch.zeros(2, 4, 4), torch.zeros(1, 4, 4), torch.tensor([1, 2]))
