"""Geometric ensemble of in-vocabulary and out-of-vocabulary class scores.

Hand computation on 1 image × 1 query × (C = 3 classes + void):
    p_in  = softmax(in-vocab logits without void)      p_out = softmax(adapter logits without void)
    seen c:   log(p_in^(1-α) · p_out^α)                 unseen c: log(p_in^(1-β) · p_out^β)
    p_void = softmax(in-vocab logits with void)[-1]
    probs  = [softmax(ensembled) · (1 - p_void), p_void];  output = log(probs + 1e-8)
"""

import math

import pytest
import torch

from mask_adapter.modeling.meta_arch import geometric_ensemble

IN_LOGITS = [1.0, 2.0, 0.5, 0.3]  # last column: void
OUT_LOGITS = [0.2, -1.0, 1.5, 9.0]  # last column (void of the adapter) must be ignored
SEEN = [True, False, True]
ALPHA, BETA = 0.7, 0.9


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _hand_ensemble(in_logits, out_logits, seen, alpha, beta):
    """Reference implementation in plain Python floats."""
    p_in = _softmax(in_logits[:-1])
    p_out = _softmax(out_logits[:-1])
    ens = []
    for c, is_seen in enumerate(seen):
        w = alpha if is_seen else beta
        ens.append(math.log(p_in[c] ** (1 - w) * p_out[c] ** w))
    p_void = _softmax(in_logits)[-1]
    probs = [p * (1 - p_void) for p in _softmax(ens)] + [p_void]
    return [math.log(p + 1e-8) for p in probs], probs, p_void


def _run(in_logits, out_logits, seen, alpha, beta):
    return geometric_ensemble(
        torch.tensor([[in_logits]], dtype=torch.float64),
        torch.tensor([[out_logits]], dtype=torch.float64),
        torch.tensor(seen),
        alpha,
        beta,
    )


def test_matches_hand_computation():
    out = _run(IN_LOGITS, OUT_LOGITS, SEEN, ALPHA, BETA)
    expected, probs, _ = _hand_ensemble(IN_LOGITS, OUT_LOGITS, SEEN, ALPHA, BETA)
    assert out.shape == (1, 1, 4)
    torch.testing.assert_close(out[0, 0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert out.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(out[0, 0].exp(), torch.tensor(probs, dtype=torch.float64) + 1e-8, rtol=0, atol=1e-12)


def test_seen_uses_alpha_and_unseen_uses_beta():
    # Swapping α and β must change exactly what the seen/unseen split predicts.
    swapped = _run(IN_LOGITS, OUT_LOGITS, SEEN, BETA, ALPHA)
    expected_swapped, _, _ = _hand_ensemble(IN_LOGITS, OUT_LOGITS, SEEN, BETA, ALPHA)
    torch.testing.assert_close(swapped[0, 0], torch.tensor(expected_swapped, dtype=torch.float64), rtol=0, atol=1e-12)
    # All classes seen: β is irrelevant; all unseen: α is irrelevant.
    all_seen = _run(IN_LOGITS, OUT_LOGITS, [True] * 3, ALPHA, 0.123)
    all_seen_ref = _run(IN_LOGITS, OUT_LOGITS, [True] * 3, ALPHA, 0.987)
    torch.testing.assert_close(all_seen, all_seen_ref, rtol=0, atol=0)
    all_unseen = _run(IN_LOGITS, OUT_LOGITS, [False] * 3, 0.123, BETA)
    all_unseen_ref = _run(IN_LOGITS, OUT_LOGITS, [False] * 3, 0.987, BETA)
    torch.testing.assert_close(all_unseen, all_unseen_ref, rtol=0, atol=0)
    assert not torch.allclose(all_seen, all_unseen)


def test_void_comes_from_in_vocab_logits_only():
    out = _run(IN_LOGITS, OUT_LOGITS, SEEN, ALPHA, BETA)
    p_void = _softmax(IN_LOGITS)[-1]
    assert out[0, 0, -1].item() == pytest.approx(math.log(p_void + 1e-8), abs=1e-12)
    # The adapter's void logit is ignored entirely.
    other = _run(IN_LOGITS, OUT_LOGITS[:-1] + [-50.0], SEEN, ALPHA, BETA)
    torch.testing.assert_close(out, other, rtol=0, atol=0)


def test_alpha_beta_zero_gives_in_vocab_distribution():
    out = _run(IN_LOGITS, OUT_LOGITS, SEEN, 0.0, 0.0)
    p_void = _softmax(IN_LOGITS)[-1]
    p_in = _softmax(IN_LOGITS[:-1])  # non-void in-vocabulary probabilities, renormalised
    expected = [p * (1 - p_void) for p in p_in] + [p_void]
    torch.testing.assert_close(out[0, 0].exp(), torch.tensor(expected, dtype=torch.float64) + 1e-8, rtol=0, atol=1e-12)
    # ... which is the full in-vocabulary softmax (with void) itself.
    full = _softmax(IN_LOGITS)
    torch.testing.assert_close(out[0, 0].exp(), torch.tensor(full, dtype=torch.float64) + 1e-8, rtol=0, atol=1e-12)


def test_alpha_beta_one_gives_out_of_vocab_distribution():
    out = _run(IN_LOGITS, OUT_LOGITS, SEEN, 1.0, 1.0)
    p_void = _softmax(IN_LOGITS)[-1]
    expected = [p * (1 - p_void) for p in _softmax(OUT_LOGITS[:-1])] + [p_void]
    torch.testing.assert_close(out[0, 0].exp(), torch.tensor(expected, dtype=torch.float64) + 1e-8, rtol=0, atol=1e-12)


def test_batched_shapes_and_normalisation():
    g = torch.Generator().manual_seed(3)
    in_logits = torch.randn(2, 7, 6, generator=g) * 3
    out_logits = torch.randn(2, 7, 6, generator=g) * 3
    seen = torch.tensor([True, False, True, False, False])
    out = geometric_ensemble(in_logits, out_logits, seen, ALPHA, BETA)
    assert out.shape == (2, 7, 6)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 7), rtol=0, atol=1e-5)
    # Per-row agreement with the hand computation.
    for b, q in [(0, 0), (1, 6), (1, 3)]:
        expected, _, _ = _hand_ensemble(
            in_logits[b, q].double().tolist(),
            out_logits[b, q].double().tolist(),
            seen.tolist(),
            ALPHA,
            BETA,
        )
        torch.testing.assert_close(out[b, q].double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-5)
