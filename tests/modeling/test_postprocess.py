"""Mask2Former post-processing: semantic sums, panoptic merging, instance top-k, resizing."""

import math

import pytest
import torch
import torch.nn.functional as F

from mask_adapter.modeling.postprocess import (
    instance_inference,
    panoptic_inference,
    resize_to_original,
    semantic_inference,
)

BIG = 20.0  # σ(20) ≈ 1, σ(-20) ≈ 0


def _logits_from_probs(*rows):
    return torch.tensor([[math.log(p) for p in row] for row in rows])


def test_semantic_two_query_hand_example():
    mask_cls = _logits_from_probs([0.6, 0.3, 0.1], [0.2, 0.2, 0.6])  # C = 2 + void
    ln3 = math.log(3.0)  # σ(ln 3) = 0.75, σ(0) = 0.5, σ(-ln 3) = 0.25
    mask_pred = torch.tensor([[[0.0, ln3]], [[ln3, -ln3]]])  # (Q=2, H=1, W=2)
    out = semantic_inference(mask_cls, mask_pred)
    expected = torch.tensor(
        [
            [[0.6 * 0.5 + 0.2 * 0.75, 0.6 * 0.75 + 0.2 * 0.25]],
            [[0.3 * 0.5 + 0.2 * 0.75, 0.3 * 0.75 + 0.2 * 0.25]],
        ]
    )
    assert out.shape == (2, 1, 2)
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 3, 10, 64])
def test_semantic_chunked_equals_unchunked(chunk):
    g = torch.Generator().manual_seed(0)
    mask_cls = torch.randn(7, 11, generator=g)
    mask_pred = torch.randn(7, 9, 13, generator=g) * 3
    full = semantic_inference(mask_cls, mask_pred)
    chunked = semantic_inference(mask_cls, mask_pred, class_chunk=chunk)
    assert chunked.shape == (10, 9, 13)
    assert torch.allclose(chunked, full, atol=1e-6)
    with pytest.raises(ValueError, match="class_chunk"):
        semantic_inference(mask_cls, mask_pred, class_chunk=-1)


def _region(h, w, rows, cols):
    m = torch.full((h, w), -BIG)
    m[rows, cols] = BIG
    return m


def _panoptic_example():
    """4×4 image, C = 3 (+void): class 0 is a thing, classes 1 and 2 are stuff."""
    h = w = 4
    masks = torch.stack(
        [
            _region(h, w, slice(None), slice(0, 2)),  # q0: thing 0, left half
            _region(h, w, slice(0, 2), slice(3, 4)),  # q1: stuff 1, top of the last column
            _region(h, w, slice(2, 4), slice(3, 4)),  # q2: stuff 1, bottom of it -> merged with q1
            _region(h, w, slice(None), slice(0, 3)),  # q3: stuff 2, wins only column 2 (4 of 12)
            _region(h, w, slice(None), slice(None)),  # q4: void -> dropped
        ]
    )
    mask_cls = _logits_from_probs(
        [0.9, 0.04, 0.03, 0.03],
        [0.02, 0.9, 0.04, 0.04],
        [0.02, 0.8, 0.1, 0.08],
        [0.1, 0.1, 0.7, 0.1],
        [0.1, 0.1, 0.1, 0.7],
    )
    return mask_cls, masks


def test_panoptic_ids_segments_overlap_and_stuff_merging():
    mask_cls, masks = _panoptic_example()
    seg, info = panoptic_inference(
        mask_cls,
        masks,
        num_classes=3,
        object_mask_threshold=0.0,
        overlap_threshold=0.8,
        thing_ids={0},
    )
    assert seg.dtype == torch.int32 and seg.shape == (4, 4)
    assert info == [
        {"id": 1, "isthing": True, "category_id": 0, "area": 8},
        {"id": 2, "isthing": False, "category_id": 1, "area": 4},
    ]
    expected = torch.tensor([[1, 1, 0, 2]] * 4, dtype=torch.int32)  # q3 dropped: 4/12 < 0.8
    assert torch.equal(seg, expected)
    # ids in the map are exactly the ids in segments_info, with matching areas
    ids, counts = seg[seg > 0].unique(return_counts=True)
    assert {i["id"]: i["area"] for i in info} == dict(zip(ids.tolist(), counts.tolist()))


def test_panoptic_overlap_threshold_controls_dropping():
    mask_cls, masks = _panoptic_example()
    # q3 (stuff 2) wins 4 of its 12 pixels -> kept iff overlap_threshold <= 1/3
    seg, info = panoptic_inference(
        mask_cls,
        masks,
        num_classes=3,
        object_mask_threshold=0.0,
        overlap_threshold=0.3,
        thing_ids={0},
    )
    assert [(i["id"], i["category_id"], i["area"]) for i in info] == [
        (1, 0, 8),
        (2, 1, 4),
        (3, 2, 4),
    ]
    assert torch.equal(seg, torch.tensor([[1, 1, 3, 2]] * 4, dtype=torch.int32))
    # every query below the score threshold -> empty result
    seg, info = panoptic_inference(
        mask_cls,
        masks,
        num_classes=3,
        object_mask_threshold=0.95,
        overlap_threshold=0.8,
        thing_ids={0},
    )
    assert info == [] and seg.abs().sum() == 0


def test_panoptic_thing_segments_are_not_merged():
    mask_cls, masks = _panoptic_example()
    _, info = panoptic_inference(
        mask_cls,
        masks,
        num_classes=3,
        object_mask_threshold=0.0,
        overlap_threshold=0.8,
        thing_ids={0, 1},
    )
    assert [(i["id"], i["category_id"], i["isthing"]) for i in info] == [
        (1, 0, True),
        (2, 1, True),
        (3, 1, True),
    ]


def test_instance_topk_scores_and_thing_filter():
    mask_cls = _logits_from_probs([0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4])  # C = 2
    ln3 = math.log(3.0)
    mask_pred = torch.tensor(
        [
            [[ln3, ln3], [-1.0, -1.0]],  # 2 pixels at σ = 0.75
            [[BIG, 0.0], [-1.0, -1.0]],  # logit 0 is not > 0: only 1 pixel
            [[-1.0, -1.0], [-1.0, -1.0]],  # empty mask
        ]
    )
    res = instance_inference(mask_cls, mask_pred, num_classes=2, top_k=3, thing_ids=None)
    assert res.image_size == (2, 2)
    order = res.scores.argsort(descending=True)
    got = [(int(res.pred_classes[i]), round(float(res.scores[i]), 5)) for i in order]
    assert got == [(0, round(0.7 * 0.75, 5)), (1, round(0.5 * 1.0, 5)), (0, round(0.3 * 0.0, 5))]
    assert res.pred_masks.dtype == torch.bool and res.pred_masks.shape == (3, 2, 2)
    assert res.pred_masks[order[0]].tolist() == [[True, True], [False, False]]
    assert torch.equal(res.pred_boxes.tensor, torch.zeros(3, 4))

    things = instance_inference(mask_cls, mask_pred, num_classes=2, top_k=3, thing_ids={1}, image_size=(5, 6))
    assert things.image_size == (5, 6)
    assert things.pred_classes.tolist() == [1] and len(things) == 1

    capped = instance_inference(mask_cls, mask_pred, num_classes=2, top_k=100, thing_ids=None)
    assert len(capped) == 6  # Q·C


def test_postprocess_shape_errors():
    with pytest.raises(ValueError, match="same Q"):
        semantic_inference(torch.zeros(3, 4), torch.zeros(2, 5, 5))
    with pytest.raises(ValueError, match="num_classes"):
        panoptic_inference(
            torch.zeros(2, 4),
            torch.zeros(2, 3, 3),
            num_classes=4,
            object_mask_threshold=0.0,
            overlap_threshold=0.8,
            thing_ids=set(),
        )


def test_resize_to_original_crops_then_resizes():
    g = torch.Generator().manual_seed(0)
    padded = torch.randn(3, 8, 10, generator=g)
    out = resize_to_original(padded, (6, 7), 12, 14)
    expected = F.interpolate(padded[None, :, :6, :7], size=(12, 14), mode="bilinear", align_corners=False)
    assert out.shape == (3, 12, 14)
    assert torch.allclose(out, expected[0])
    # a crop already of the output size: the resize is the identity, skipped (the same values, no interpolation)
    assert torch.equal(resize_to_original(padded, (6, 7), 6, 7), padded[:, :6, :7])
    same = resize_to_original(padded, (8, 10), 8, 10)
    assert same.data_ptr() == padded.data_ptr() and torch.equal(
        same, F.interpolate(padded[None], size=(8, 10), mode="bilinear")[0]
    )
    assert resize_to_original(padded[0], (6, 7), 12, 14).shape == (12, 14)


@pytest.mark.parametrize("seed, all_kept", [(0, False), (1, False), (2, True)])
def test_panoptic_sigmoid_of_kept_queries_only_equals_sigmoid_of_all(seed, all_kept):
    """σ is taken of the kept queries only; the result is the one of σ over all queries, then the selection."""
    from mask_adapter.modeling.postprocess import _paint_segments

    g = torch.Generator().manual_seed(seed)
    q, c = 40, 6
    mask_cls = 3 * torch.randn(q, c + 1, generator=g)
    mask_pred = 4 * torch.randn(q, 24, 32, generator=g)
    if all_kept:
        mask_cls[:, -1] = -20.0  # no void argmax
    kwargs = dict(object_mask_threshold=0.0 if all_kept else 0.4, overlap_threshold=0.2, thing_ids={0, 1, 2})
    pan, info = panoptic_inference(mask_cls, mask_pred, num_classes=c, **kwargs)
    # the previous computation: σ of every query, then the kept ones
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(c) & (scores > kwargs["object_mask_threshold"])
    assert int(keep.sum()) == q if all_kept else 0 < int(keep.sum()) < q
    ref = torch.zeros(24, 32, dtype=torch.int32)
    ref_info = _paint_segments(
        ref, scores[keep], labels[keep], mask_pred.sigmoid()[keep], overlap_threshold=0.2, thing_ids={0, 1, 2}
    )
    areas = torch.bincount(ref.flatten().long(), minlength=len(ref_info) + 1).tolist()
    for segment in ref_info:
        segment["area"] = int(areas[segment["id"]])
    assert len(info) > 0
    assert torch.equal(pan, ref) and info == ref_info


@pytest.mark.parametrize(
    "threshold, panoptic, instance",
    [(0.0, True, False), (0.4, True, False), (0.4, True, True), (0.0, False, False)],
)
def test_semantic_and_panoptic_share_one_sigmoid_with_the_same_outputs(threshold, panoptic, instance, monkeypatch):
    """With the semantic output on (masks resized before inference), σ of the masks is taken once and read by every
    merge: the outputs equal those of each merge computing its own σ. Without instance outputs (which read the
    logits) σ overwrites the full-size logits in place (``sigmoid_``), else it is a new tensor (``sigmoid``)."""
    from mask_adapter.modeling.meta_arch import inference
    from mask_adapter.modeling.meta_arch.options import InferenceOptions

    g = torch.Generator().manual_seed(7)
    q, c = 30, 5
    mask_cls = 3 * torch.randn(q, c + 1, generator=g)
    mask_pred = 4 * torch.randn(q, 20, 28, generator=g)
    opts = InferenceOptions(
        semantic_on=True,
        panoptic_on=panoptic,
        instance_on=instance,
        postprocess_before_inference=True,
        object_mask_threshold=threshold,
        overlap_threshold=0.2,
    )
    calls = []
    sigmoid, sigmoid_ = torch.Tensor.sigmoid, torch.Tensor.sigmoid_
    monkeypatch.setattr(torch.Tensor, "sigmoid", lambda t: (calls.append(("sigmoid", tuple(t.shape))), sigmoid(t))[1])
    monkeypatch.setattr(
        torch.Tensor, "sigmoid_", lambda t: (calls.append(("sigmoid_", tuple(t.shape))), sigmoid_(t))[1]
    )
    consumed = mask_pred.clone()
    r = inference._image_outputs(mask_cls, consumed, (20, 28), (20, 28), opts, {0, 1})
    assert calls[0] == ("sigmoid" if instance else "sigmoid_", (q, 20, 28))
    assert all(shape != (q, 20, 28) for _, shape in calls[1:])  # no second σ of all Q maps
    monkeypatch.setattr(torch.Tensor, "sigmoid", sigmoid)
    monkeypatch.setattr(torch.Tensor, "sigmoid_", sigmoid_)
    assert torch.equal(consumed, mask_pred) == instance  # overwritten by σ unless instance outputs need the logits
    assert torch.equal(r["sem_seg"], semantic_inference(mask_cls, mask_pred))
    if panoptic:
        pan, info = panoptic_inference(
            mask_cls, mask_pred, num_classes=c, object_mask_threshold=threshold, overlap_threshold=0.2, thing_ids={0, 1}
        )
        assert len(info) > 0 and torch.equal(r["panoptic_seg"][0], pan) and r["panoptic_seg"][1] == info
    if instance:
        expected = instance_inference(
            mask_cls, mask_pred, num_classes=c, top_k=100, thing_ids={0, 1}, image_size=(20, 28)
        )
        assert torch.equal(r["instances"].pred_masks, expected.pred_masks)
        assert torch.equal(r["instances"].scores, expected.scores)
    with pytest.raises(ValueError, match=r"mask_prob must be σ\(mask_pred\) of the same shape \(30, 20, 28\)"):
        semantic_inference(mask_cls, mask_pred, mask_prob=mask_pred[:, :10])
