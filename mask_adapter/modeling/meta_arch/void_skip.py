"""The adapter only where an output can use it: skipping void queries at inference without changing the outputs.

The geometric ensemble (``inference.geometric_ensemble``) takes the void probability p_void from the generator and
multiplies every class probability by 1 - p_void, whatever the adapter says. Hence, per task:

* **panoptic**: a query with p_void > 0.5 has every class probability below 0.5 < p_void, so its argmax is void and
  Mask2Former's panoptic merging drops it. Skipping the adapter for it leaves the panoptic output identical.
* **semantic**: every query adds softmax(final)_q[c] · σ(mask_q(x)) to the score of class c at pixel x. Whatever
  the adapter would say, a skipped query q moves any class score at x by at most b_q(x) = (1 - p_void,q) · σ_q(x)
  (its class probabilities lie in [0, 1 - p_void,q]). With K_c(x) the scores of the queries that ran and
  B(x) = Σ_skipped b_q(x), every class score lies in [K_c(x), K_c(x) + B(x)], so a pixel whose top-1 / top-2 margin
  of K exceeds B(x) (plus a float tolerance) has the argmax of K whatever the skipped queries say (also with their
  stand-in logits); testing the margin of the stand-in scores against 2·B(x) would also be exact, half as tight. :func:`certified_semantic` runs the adapter for
  the further skipped queries the uncertified pixels need, until every pixel is certified (at worst every query
  runs): the semantic argmax equals the full computation's. The non-argmax score values of skipped queries use
  the generator's class distribution in place of the adapter's.
* **instance**: the top-k is taken over the ensemble probability of every (query, class) pair, and a skipped
  query's pairs could enter it, so with instance inference on the adapter runs on every query (the instance
  output is exact because nothing is skipped).

Skipped queries get the generator's logits as their out-of-vocabulary logits (the ensemble then returns the
generator's class distribution, with the same void probability).

Shapes: Q queries, C classes (+1 void column, last), H×W the resolution of the semantic scores, P = H·W.
"""

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["VOID_SKIP_MODES", "void_probability", "skippable_queries", "semantic_bound", "certified_semantic"]


# MODEL.MASK_ADAPTER.VOID_SKIP: "exact" skips where the outputs stay identical; "none" runs every query (as before).
VOID_SKIP_MODES = ("exact", "none")

# A query whose void probability exceeds this can never be a panoptic segment.
VOID_THRESHOLD = 0.5


def void_probability(in_logits: Tensor) -> Tensor:
    """(..., Q, C + 1) generator logits -> (..., Q) void probabilities, as the ensemble computes them."""
    return in_logits.softmax(-1)[..., -1]


def skippable_queries(in_logits: Tensor) -> Tensor:
    """(..., Q, C + 1) generator logits -> (..., Q) bool: queries whose argmax is void whatever the adapter says."""
    return void_probability(in_logits) > VOID_THRESHOLD


def semantic_bound(p_void: Tensor, sigmoid_maps: Tensor) -> Tensor:
    """Largest change of any class score per pixel that the given queries can cause.

    Args:
        p_void: (S,) void probabilities of the skipped queries.
        sigmoid_maps: (S, H, W) their σ(mask logits) at the resolution of the scores.

    Returns:
        (H, W) Σ_q (1 - p_void,q) · σ_q(x).
    """
    weights = (1.0 - p_void).to(sigmoid_maps.dtype)
    return torch.einsum("s,shw->hw", weights, sigmoid_maps)


def _uncertified(known: Tensor, bound: Tensor) -> tuple[Tensor, Tensor]:
    """(C, H, W) scores of the run queries and (H, W) bound -> ((H, W) bool uncertified, (H, W) margin)."""
    if known.shape[0] < 2:
        zeros = torch.zeros_like(bound)
        return zeros.bool(), zeros
    top = known.topk(2, dim=0).values
    # Float slack: the scores are sums of Q products; reassociation moves them by a few ulps of their magnitude.
    tolerance = 1e-5 * top[0].abs() + 1e-6
    margin = top[0] - top[1] - tolerance
    return margin <= bound, margin


def _most(needed: int, total: int) -> bool:
    """Whether ``needed`` of ``total`` skipped queries is most of them (above 90 %): then all of them run."""
    return 10 * needed > 9 * total


def _needed_queries(
    weights: Tensor,
    sig: Tensor | Callable[[Tensor], Tensor],
    margin: Tensor,
    top: int = 16,
    columns: int = 1 << 15,
    stop_at_most: bool = False,
) -> Tensor:
    """(S,) bool: skipped queries to run so that at each uncertified pixel the shares w_q·σ_q(x) of the queries left
    sum to at most its margin (``sig`` (S, U) of the U uncertified pixels, or a function of U-pixel positions
    returning those columns; ``margin`` (U,)).

    Per pixel the largest shares run first: the smallest such set when it has at most ``top`` queries; at pixels
    that need more, every query whose share exceeds margin / S (sufficient: the S - k left then sum to at most the
    margin). United over the pixels, computed ``columns`` pixels at a time; with ``stop_at_most`` it returns every
    query as soon as most of them are needed (the caller then runs all anyway).
    """
    num = weights.shape[0]
    k = min(top, num)
    need = torch.zeros(num, dtype=torch.bool, device=weights.device)
    for start in range(0, margin.shape[0], columns):
        stop = min(start + columns, margin.shape[0])
        block = sig[:, start:stop] if isinstance(sig, Tensor) else sig(torch.arange(start, stop, device=margin.device))
        share = weights[:, None] * block
        m = margin[start:stop]
        largest, order = share.topk(k, dim=0)
        # remaining[j]: the bound left at the pixel once its j largest shares ran (j = 0 .. k)
        remaining = share.sum(0, keepdim=True) - torch.cat([torch.zeros_like(largest[:1]), largest.cumsum(0)])
        need[order[remaining[:k] > m[None]]] = True
        short = remaining[k] > m  # pixels the k largest do not settle
        if bool(short.any()):
            need |= (share[:, short] > m[short][None] / num).any(1)
        if stop_at_most and _most(int(need.sum()), num):
            return torch.ones_like(need)
    return need


def certified_semantic(
    mask_cls: Tensor,
    semantic: Callable[[Tensor], Tensor],
    sigmoid_maps: Callable[[Tensor], Tensor] | Tensor,
    p_void: Tensor,
    skipped: Tensor,
    complete: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, int]:
    """Semantic scores whose argmax equals the full computation's, running the adapter only where needed.

    Args:
        mask_cls: (Q, C + 1) final logits; rows of skipped queries hold the stand-in logits.
        semantic: (Q, C + 1) logits -> (C, H, W) scores (the same function the full computation uses).
        sigmoid_maps: (S,) query indices -> (S, H, W) their σ(mask logits) at the resolution of the scores; or the
            (Q, H, W) σ maps of all queries when the caller holds them (read in place: no copy of the S maps).
        p_void: (Q,) void probabilities.
        skipped: (Q,) bool, queries whose adapter has not run.
        complete: (S,) query indices -> (S, C + 1) their final logits with the adapter.

    Returns:
        (C, H, W) scores, the (Q, C + 1) logits they were computed from, and how many queries ran in later passes.
    """
    mask_cls, skipped = mask_cls.clone(), skipped.clone()
    # Final logits of a query that adds nothing but the ensemble's 1e-8 floor: every class probability 0, void 1.
    nothing = torch.full_like(mask_cls[0], 1e-8).log()
    nothing[-1] = torch.tensor(1.0 + 1e-8, dtype=mask_cls.dtype).log()
    second_pass = 0
    while True:
        idx = skipped.nonzero().flatten()
        if idx.numel() == 0:
            return semantic(mask_cls), mask_cls, second_pass
        known = mask_cls.clone()
        known[idx] = nothing
        known_scores = semantic(known)  # K_c(x): the run queries' part; the true score lies in [K_c, K_c + B]
        if isinstance(sigmoid_maps, Tensor):  # all Q maps: the run queries get weight 0 (exact zeros in the sum)
            all_maps = sigmoid_maps.flatten(1)
            weights = (1.0 - p_void[idx]).to(all_maps.dtype)
            all_weights = torch.zeros(all_maps.shape[0], dtype=all_maps.dtype, device=all_maps.device)
            all_weights[idx] = weights
            bound = (all_weights @ all_maps).view(known_scores.shape[1:])

            def skipped_maps(columns: Tensor, all_maps: Tensor = all_maps, idx: Tensor = idx) -> Tensor:
                return all_maps.index_select(1, columns)[idx]

        else:
            sig = sigmoid_maps(idx).flatten(1)
            weights = (1.0 - p_void[idx]).to(sig.dtype)
            bound = (weights @ sig).view(known_scores.shape[1:])

            def skipped_maps(columns: Tensor, sig: Tensor = sig) -> Tensor:
                return sig.index_select(1, columns)

        uncertified, margin = _uncertified(known_scores, bound)
        del known_scores
        if not bool(uncertified.any()):
            return semantic(mask_cls), mask_cls, second_pass
        columns = uncertified.flatten().nonzero().flatten()

        def maps_at(positions: Tensor, columns: Tensor = columns, skipped_maps: Callable = skipped_maps) -> Tensor:
            return skipped_maps(columns[positions])  # gathered per block of uncertified pixels, not all at once

        need = _needed_queries(weights, maps_at, margin[uncertified].clamp(min=0.0), stop_at_most=True)
        if _most(int(need.sum()), idx.numel()) or not bool(need.any()):
            need = torch.ones_like(need)  # most are needed anyway: run them all, no further check
        run = idx[need]
        mask_cls[run] = complete(run).to(mask_cls.dtype)
        skipped[run] = False
        second_pass += int(run.numel())
