"""Training mask sets: stage-1/2 GT slots, padding to the batch size, the stage-2 mixed set."""

import pytest
import torch
import torch.nn.functional as F

from mask_adapter.modeling.mask_sets import build_mixed_mask_set, pad_gt_masks, sample_gt_slots

BIG = 20.0


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bands(num: int, h: int, w: int) -> torch.Tensor:
    """num GT masks, mask i = row band [4i, 4i+4) (needs h >= 4 * num)."""
    m = torch.zeros(num, h, w)
    for i in range(num):
        m[i, 4 * i : 4 * i + 4, :] = 1
    return m


def test_sample_gt_slots_drops_empty_and_pads():
    masks = _bands(3, 16, 8)
    masks[1] = 0  # empty: dropped
    out, labels = sample_gt_slots(masks.bool(), torch.tensor([4, 5, 6]), num_slots=5, generator=_gen())
    assert out.shape == (5, 16, 8) and out.dtype == torch.float32
    assert labels.tolist() == [4, 6, -1, -1, -1] and labels.dtype == torch.long
    torch.testing.assert_close(out[0], masks[0])
    torch.testing.assert_close(out[1], masks[2])
    assert (out[2:] == 0).all()


def test_sample_gt_slots_random_subset_when_too_many():
    masks = _bands(10, 40, 4)
    labels = torch.arange(10, 20)
    seen = set()
    for seed in range(6):
        out, lab = sample_gt_slots(masks, labels, num_slots=4, generator=_gen(seed))
        assert out.shape == (4, 40, 4) and len(set(lab.tolist())) == 4 and (lab >= 10).all()
        for i in range(4):  # each slot keeps its own label
            torch.testing.assert_close(out[i], masks[lab[i] - 10])
        seen.add(tuple(lab.tolist()))
    assert len(seen) > 1
    a = sample_gt_slots(masks, labels, num_slots=4, generator=_gen(3))[1]
    b = sample_gt_slots(masks, labels, num_slots=4, generator=_gen(3))[1]
    assert torch.equal(a, b)


def test_sample_gt_slots_without_gt():
    out, lab = sample_gt_slots(torch.zeros(0, 8, 8), torch.zeros(0, dtype=torch.long), num_slots=32)
    assert out.shape == (32, 8, 8) and (out == 0).all() and (lab == -1).all()


def test_pad_gt_masks_top_left():
    masks = torch.ones(2, 3, 5, dtype=torch.uint8)
    out = pad_gt_masks(masks, (4, 8))
    assert out.shape == (2, 4, 8) and out.dtype == torch.uint8
    assert out[:, :3, :5].all() and out.sum().item() == 2 * 15
    with pytest.raises(ValueError, match="do not fit"):
        pad_gt_masks(masks, (2, 8))


def _mixed(pred, gt, labels, **kw):
    args = dict(
        num_gt=4,
        num_pairs=3,
        mask_threshold=0.5,
        match_pred_threshold=0.4,
        iou_threshold=0.7,
        generator=_gen(),
    )
    args.update(kw)
    return build_mixed_mask_set(pred, gt, labels, **args)


def test_mixed_set_layout_and_values():
    gt = _bands(2, 32, 32)  # padded GT at 32x32; predictions at 8x8 (stride 4)
    pred = torch.full((5, 8, 8), -BIG)
    pred[2, 0:1, :] = BIG  # matches GT 0 (rows 0-3 -> row 0 at stride 4)
    pred[4, 1:2, :] = BIG  # matches GT 1
    pred[4, 1, 0] = 0.0  # sigmoid 0.5: not > mask_threshold 0.5 (strict), but counts for the IoU (>= 0.4)
    masks, labels = _mixed(pred, gt, torch.tensor([11, 12]))
    assert masks.shape == (4 + 2 * 3, 32, 32) and masks.dtype == torch.float32
    assert labels.tolist() == [11, 12, -1, -1, 11, 12, -1, 11, 12, -1]
    torch.testing.assert_close(masks[:2], gt)
    assert (masks[2:4] == 0).all()
    binary = (pred[[2, 4]].sigmoid() > 0.5).float()
    assert binary[1, 1, 0] == 0
    up = F.interpolate(binary[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(masks[4:6], up)
    # matched GT: bilinear down to the prediction grid, then bilinear back up (official order)
    down = F.interpolate(gt[:, None], size=(8, 8), mode="bilinear", align_corners=False)
    gt_up = F.interpolate(down, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(masks[7:9], gt_up)
    assert not torch.equal(masks[7:9], gt)  # really resampled, not the original masks
    assert (masks[6] == 0).all() and (masks[9] == 0).all()  # padding with mask_threshold 0.5


def test_padding_predictions_become_all_ones_below_half():
    """Official quirk kept: zero-logit padding binarizes to ones when MASK_THRESHOLD < 0.5, label -1."""
    gt = _bands(1, 16, 16)
    pred = torch.full((3, 4, 4), -BIG)  # nothing matches
    masks, labels = _mixed(pred, gt, torch.tensor([2]), num_gt=2, num_pairs=2, mask_threshold=0.45)
    assert labels.tolist() == [2, -1, -1, -1, -1, -1]
    assert (masks[2:4] == 1).all()
    assert (masks[4:6] == 0).all()
    masks_05, _ = _mixed(pred, gt, torch.tensor([2]), num_gt=2, num_pairs=2, mask_threshold=0.5)
    assert (masks_05[2:4] == 0).all()


def test_matching_uses_all_valid_gt_not_only_sampled_slots():
    gt = _bands(3, 16, 16)
    gt_with_empty = torch.cat([gt, torch.zeros(1, 16, 16)])  # an empty GT is never matched nor sampled
    pred = _bands(3, 16, 16) * 2 * BIG - BIG
    masks, labels = _mixed(pred, gt_with_empty, torch.tensor([1, 2, 3, 4]), num_gt=1, num_pairs=3, iou_threshold=0.5)
    assert labels[0].item() in (1, 2, 3)
    assert sorted(labels[1:4].tolist()) == [1, 2, 3]
    assert torch.equal(labels[1:4], labels[4:7])


def test_mixed_set_is_deterministic_per_generator():
    gt = _bands(8, 32, 32)
    pred = F.interpolate(gt[None], size=(8, 8), mode="bilinear", align_corners=False)[0] * 2 * BIG - BIG
    a = _mixed(pred, gt, torch.arange(8), num_gt=3, num_pairs=2, generator=_gen(7))
    b = _mixed(pred, gt, torch.arange(8), num_gt=3, num_pairs=2, generator=_gen(7))
    c = _mixed(pred, gt, torch.arange(8), num_gt=3, num_pairs=2, generator=_gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
