"""Pooling and classification functions (synonym max, adapter pooling, mask pooling), checked against explicit loops.

Shapes: B images, N masks, K maps per mask, C_raw trunk width, D embedding width, T synonym rows, C classes.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mask_adapter.modeling.adapter.pooling import (
    aggregate_synonym_logits,
    classification_logits,
    embeddings_from_activation_maps,
    mask_pooling_embeddings,
)


def frozen_projector(c_raw: int, d: int, dtype=torch.float64) -> nn.Module:
    """A frozen nonlinear projector (M, C_raw) -> (M, D), like the frozen CLIP heads."""
    proj = nn.Sequential(nn.LayerNorm(c_raw), nn.Linear(c_raw, 2 * d), nn.GELU(), nn.Linear(2 * d, d)).to(dtype)
    for p in proj.parameters():
        p.requires_grad_(False)
    return proj


def loop_embeddings(maps, clip_dense, project, k):
    """Adapter pooling by explicit loops: for each b, n, k: σ-map / Σσ, weighted sum, project; mean over k."""
    b, c_raw, h, w = clip_dense.shape
    n = maps.shape[1] // k
    out = torch.zeros(b, n, project(torch.zeros(1, c_raw, dtype=clip_dense.dtype)).shape[-1], dtype=clip_dense.dtype)
    for bi in range(b):
        for ni in range(n):
            embs = []
            for ki in range(k):
                s = torch.sigmoid(maps[bi, ni * k + ki])
                weights = s / s.sum()
                pooled = torch.zeros(c_raw, dtype=clip_dense.dtype)
                for y in range(h):
                    for x in range(w):
                        pooled = pooled + weights[y, x] * clip_dense[bi, :, y, x]
                embs.append(project(pooled[None])[0])
            out[bi, ni] = torch.stack(embs).mean(0)
    return out


# ----------------------------------------------------------------------------------------------------------------
# embeddings_from_activation_maps
# ----------------------------------------------------------------------------------------------------------------
def test_embeddings_match_loop_reference():
    b, n, k, c_raw, d, h, w = 2, 3, 4, 6, 5, 3, 4
    maps = torch.randn(b, n * k, h, w, dtype=torch.float64) * 3
    dense = torch.randn(b, c_raw, h, w, dtype=torch.float64)
    proj = frozen_projector(c_raw, d)
    out = embeddings_from_activation_maps(maps, dense, proj, k)
    assert out.shape == (b, n, d)
    torch.testing.assert_close(out, loop_embeddings(maps, dense, proj, k), rtol=0, atol=1e-10)


def test_embeddings_resize_maps_to_feature_grid():
    k, c_raw, d = 2, 4, 3
    maps = torch.randn(1, 2 * k, 6, 8, dtype=torch.float64)
    dense = torch.randn(1, c_raw, 3, 4, dtype=torch.float64)
    proj = frozen_projector(c_raw, d)
    resized = F.interpolate(maps, size=(3, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        embeddings_from_activation_maps(maps, dense, proj, k),
        loop_embeddings(resized, dense, proj, k),
        rtol=0,
        atol=1e-10,
    )


def test_embeddings_not_softmax_over_k():
    """The normalisation is spatial, per map; scaling one map's logits changes only that map's weights."""
    k, c_raw, h, w = 2, 3, 2, 2
    dense = torch.randn(1, c_raw, h, w, dtype=torch.float64)
    identity = nn.Identity()
    maps = torch.zeros(1, k, h, w, dtype=torch.float64)
    maps[0, 1, 0, 0] = 50.0  # map 1 weighs position (0, 0) twice as much as the others; map 0 stays uniform
    out = embeddings_from_activation_maps(maps, dense, identity, k)
    s = torch.sigmoid(maps[0, 1])
    expected_1 = (s / s.sum() * dense[0]).sum(dim=(-1, -2))
    expected_0 = dense[0].mean(dim=(-1, -2))
    torch.testing.assert_close(out[0, 0], (expected_0 + expected_1) / 2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", [0.0, -1e4, 1e4, 80.0, -80.0])
def test_constant_maps_give_uniform_weights(value):
    """All-equal logits (zero, very negative or very large) → uniform weights → projection of the mean feature."""
    k, c_raw, d = 3, 5, 4
    dense = torch.randn(2, c_raw, 3, 2, dtype=torch.float64)
    maps = torch.full((2, 2 * k, 3, 2), value, dtype=torch.float64)
    proj = frozen_projector(c_raw, d)
    out = embeddings_from_activation_maps(maps, dense, proj, k)
    assert torch.isfinite(out).all()
    expected = proj(dense.mean(dim=(-1, -2)))[:, None].expand(2, 2, d)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


def test_gradient_flows_to_maps_through_frozen_projector():
    k, c_raw, d = 2, 4, 3
    dense = torch.randn(1, c_raw, 3, 3, dtype=torch.float64)
    maps = torch.randn(1, 2 * k, 3, 3, dtype=torch.float64, requires_grad=True)
    proj = frozen_projector(c_raw, d)
    out = embeddings_from_activation_maps(maps, dense, proj, k)
    assert out.requires_grad
    (out * torch.randn_like(out)).sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    assert all(p.grad is None for p in proj.parameters())
    # float64 finite-difference check of the gradient
    check_maps = maps.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: embeddings_from_activation_maps(m, dense, proj, k), (check_maps,))


def test_embeddings_float32_matches_float64():
    k, c_raw, d = 4, 8, 6
    maps = torch.randn(2, 3 * k, 4, 5, dtype=torch.float64)
    dense = torch.randn(2, c_raw, 4, 5, dtype=torch.float64)
    proj = frozen_projector(c_raw, d)
    ref = embeddings_from_activation_maps(maps, dense, proj, k)
    out = embeddings_from_activation_maps(maps.float(), dense.float(), proj.float(), k)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_embeddings_channel_count_error():
    with pytest.raises(ValueError, match="not a multiple of K=4"):
        embeddings_from_activation_maps(torch.randn(1, 6, 2, 2), torch.randn(1, 3, 2, 2), nn.Identity(), 4)


def test_embeddings_zero_masks(tiny_clip):
    """An image with no proposal (e.g. SAM returns none) gives (B, 0, D), as the head gives (B, 0, h, w)."""
    dense = torch.randn(2, 320, 3, 3)
    out = embeddings_from_activation_maps(torch.zeros(2, 0, 3, 3), dense, tiny_clip.project_pooled, 16)
    assert out.shape == (2, 0, 64)


# ----------------------------------------------------------------------------------------------------------------
# mask_pooling_embeddings
# ----------------------------------------------------------------------------------------------------------------
def test_mask_pooling_empty_mask_projects_zeros():
    c_raw, d = 5, 4
    dense = torch.randn(2, c_raw, 3, 4, dtype=torch.float64)
    proj = frozen_projector(c_raw, d)
    logits = torch.full((2, 3, 12, 16), -5.0, dtype=torch.float64)
    out = mask_pooling_embeddings(logits, dense, proj)
    assert out.shape == (2, 3, d) and torch.isfinite(out).all()
    expected = proj(torch.zeros(1, c_raw, dtype=torch.float64))[0]
    torch.testing.assert_close(out, expected.expand(2, 3, d), rtol=0, atol=1e-12)


def test_mask_pooling_full_mask_gives_mean_feature():
    c_raw = 5
    dense = torch.randn(2, c_raw, 3, 4, dtype=torch.float64)
    logits = torch.full((2, 1, 12, 16), 3.0, dtype=torch.float64)
    out = mask_pooling_embeddings(logits, dense, nn.Identity())
    torch.testing.assert_close(out[:, 0], dense.mean(dim=(-1, -2)), rtol=0, atol=1e-7)


def test_mask_pooling_binarises_at_zero_after_bilinear_resize():
    c_raw, h, w = 3, 3, 4
    dense = torch.randn(1, c_raw, h, w, dtype=torch.float64)
    logits = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    out = mask_pooling_embeddings(logits, dense, nn.Identity())
    resized = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    for q in range(2):
        m = resized[0, q] > 0
        expected = dense[0][:, m].sum(-1) / (m.sum().double() + 1e-8)
        torch.testing.assert_close(out[0, q], expected, rtol=0, atol=1e-12)


def test_mask_pooling_gradient_to_features_not_masks():
    dense = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    out = mask_pooling_embeddings(logits, dense, frozen_projector(4, 3))
    out.sum().backward()
    assert dense.grad is not None and dense.grad.abs().sum() > 0
    assert logits.grad is None


# ----------------------------------------------------------------------------------------------------------------
# aggregate_synonym_logits
# ----------------------------------------------------------------------------------------------------------------
def loop_aggregate(logits, synonyms_per_class):
    cols, start = [], 0
    for n in synonyms_per_class:
        cols.append(logits[..., start : start + n].max(dim=-1).values)
        start += n
    return torch.stack(cols, dim=-1)


@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 4)])
def test_aggregate_matches_loop(lead):
    g = torch.Generator().manual_seed(len(lead))
    synonyms_per_class = torch.randint(1, 5, (7,), generator=g).tolist()
    logits = torch.randn(*lead, sum(synonyms_per_class), generator=g)
    out = aggregate_synonym_logits(logits, synonyms_per_class)
    assert out.shape == (*lead, 7)
    assert torch.equal(out, loop_aggregate(logits, synonyms_per_class))


def test_aggregate_random_vocabularies():
    for _ in range(5):
        c = int(torch.randint(1, 30, ()))
        synonyms_per_class = torch.randint(1, 8, (c,)).tolist()
        logits = torch.randn(3, 4, sum(synonyms_per_class), dtype=torch.float64)
        assert torch.equal(
            aggregate_synonym_logits(logits, synonyms_per_class), loop_aggregate(logits, synonyms_per_class)
        )


def test_aggregate_handles_negative_and_infinite_values():
    logits = torch.tensor([[-5.0, -1.0, -3.0, float("-inf"), -2.0]])
    assert torch.equal(aggregate_synonym_logits(logits, [2, 1, 2]), torch.tensor([[-1.0, -3.0, -2.0]]))


def test_aggregate_gradient_goes_to_argmax_column():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.5], requires_grad=True)
    aggregate_synonym_logits(logits, [3, 1]).sum().backward()
    assert torch.equal(logits.grad, torch.tensor([0.0, 1.0, 0.0, 1.0]))


def test_aggregate_errors():
    with pytest.raises(ValueError, match="5 synonym columns but synonyms_per_class sums to 4"):
        aggregate_synonym_logits(torch.randn(2, 5), [2, 2])
    with pytest.raises(ValueError, match="empty vocabulary"):
        aggregate_synonym_logits(torch.randn(2, 0), [])
    with pytest.raises(ValueError, match="no synonym"):
        aggregate_synonym_logits(torch.randn(2, 3), [2, 0, 1])


# ----------------------------------------------------------------------------------------------------------------
# classification_logits
# ----------------------------------------------------------------------------------------------------------------
def make_text(t_plus_1: int, d: int, *lead):
    return F.normalize(torch.randn(*lead, t_plus_1, d, dtype=torch.float64), dim=-1)


def test_classification_logits_2d_text():
    synonyms_per_class = [2, 1, 3]
    d = 8
    text = make_text(7, d)
    emb = torch.randn(2, 4, d, dtype=torch.float64) * 7
    scale_log = torch.tensor(math.log(50.0), dtype=torch.float64)
    out = classification_logits(emb, text, scale_log, synonyms_per_class)
    assert out.shape == (2, 4, 4)
    cos = F.normalize(emb, dim=-1) @ text.t()
    expected = torch.cat([loop_aggregate(50.0 * cos[..., :-1], synonyms_per_class), 50.0 * cos[..., -1:]], dim=-1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    # void column is the last one: scale · cos(embedding, void row)
    void = 50.0 * F.cosine_similarity(emb, text[-1].expand_as(emb), dim=-1)
    torch.testing.assert_close(out[..., -1], void, rtol=0, atol=1e-10)


def test_classification_logit_scale_clamped_at_100():
    text = make_text(3, 4)
    emb = torch.randn(1, 2, 4, dtype=torch.float64)
    cos = F.normalize(emb, dim=-1) @ text.t()
    out = classification_logits(emb, text, torch.tensor(math.log(200.0), dtype=torch.float64), [1, 1])
    torch.testing.assert_close(out, 100.0 * cos, rtol=0, atol=1e-10)
    out = classification_logits(emb, text, torch.tensor(math.log(100.0), dtype=torch.float64), [1, 1])
    torch.testing.assert_close(out, 100.0 * cos, rtol=0, atol=1e-10)
    out = classification_logits(emb, text, torch.tensor(0.0, dtype=torch.float64), [1, 1])
    torch.testing.assert_close(out, cos, rtol=0, atol=1e-12)


def test_classification_logits_3d_text_per_image():
    synonyms_per_class = [1, 2]
    text = make_text(4, 6, 2)
    emb = torch.randn(2, 3, 6, dtype=torch.float64)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    out = classification_logits(emb, text, scale, synonyms_per_class)
    assert out.shape == (2, 3, 3)
    for b in range(2):
        torch.testing.assert_close(
            out[b], classification_logits(emb[b], text[b], scale, synonyms_per_class), rtol=0, atol=1e-12
        )
    # with identical per-image text rows the 3-D path equals the shared 2-D path
    shared = classification_logits(emb, text[0], scale, synonyms_per_class)
    torch.testing.assert_close(
        classification_logits(emb, text[:1].expand(2, -1, -1), scale, synonyms_per_class), shared
    )


def test_classification_logits_unbatched_embeddings():
    text = make_text(4, 5)
    emb = torch.randn(6, 5, dtype=torch.float64)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    out = classification_logits(emb, text, scale, [2, 1])
    assert out.shape == (6, 3)
    torch.testing.assert_close(out, classification_logits(emb[None], text, scale, [2, 1])[0])


def test_classification_logits_invariant_to_embedding_scale():
    text = make_text(5, 6)
    emb = torch.randn(2, 3, 6, dtype=torch.float64)
    scale = torch.tensor(math.log(100.0), dtype=torch.float64)
    positive = torch.rand(2, 3, 1, dtype=torch.float64) * 100 + 0.01
    torch.testing.assert_close(
        classification_logits(emb * positive, text, scale, [2, 2]),
        classification_logits(emb, text, scale, [2, 2]),
        rtol=0,
        atol=1e-10,
    )


def test_classification_logits_bad_text_rank():
    emb = torch.randn(3, 4)
    with pytest.raises(ValueError, match="text must be"):
        classification_logits(emb, torch.randn(2, 3, 4), torch.tensor(0.0), [2])
    with pytest.raises(ValueError, match="text must be"):
        classification_logits(emb[None], torch.randn(1, 2, 3, 4), torch.tensor(0.0), [2])


def test_classification_logits_width_mismatch():
    with pytest.raises(ValueError, match="synonyms_per_class sums to"):
        classification_logits(torch.randn(1, 2, 4), make_text(5, 4).float(), torch.tensor(0.0), [2, 1])


def test_classification_gradient_reaches_embeddings():
    emb = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    out = classification_logits(emb, make_text(4, 4), torch.tensor(math.log(100.0), dtype=torch.float64), [1, 2])
    out.logsumexp(-1).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_classification_uses_text_rows_as_given():
    """Text rows are not re-normalised (as officially): scaling them scales the logits."""
    text = make_text(4, 5)
    emb = torch.randn(2, 3, 5, dtype=torch.float64)
    scale = torch.tensor(math.log(10.0), dtype=torch.float64)
    torch.testing.assert_close(
        classification_logits(emb, 2.0 * text, scale, [2, 1]),
        2.0 * classification_logits(emb, text, scale, [2, 1]),
        rtol=0,
        atol=1e-10,
    )
