"""From activation maps / binary masks to mask embeddings, and from embeddings to class logits.

Pure functions shared by every meta-architecture. Shapes (letters of docs/architecture.md):
    B   images;  N masks per image given to the adapter (Q proposals at inference);  K activation maps per mask
    C_raw  channels of the unprojected CLIP trunk output ``clip_vis_dense`` (1536 ConvNeXt-L, 1024 ConvNeXt-B)
    D   CLIP embedding width (768 L, 640 B)
    T   text rows: one per synonym, classes in order with their synonyms consecutive
    C   classes; the logits carry C + 1 columns, the last one is void
    h×w the CLIP feature grid
"""

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "aggregate_synonym_logits",
    "classification_logits",
    "embeddings_from_activation_maps",
    "mask_pooling_embeddings",
    "top_k_adapter_embeddings",
]

# Projects pooled trunk vectors (M, C_raw) through the frozen CLIP heads to (M, D).
Projector = Callable[[Tensor], Tensor]


@lru_cache(maxsize=32)
def _synonym_gather_index(synonyms_per_class: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(C, S_max) column index of each class's synonyms, and the (C, S_max) padding mask."""
    counts = torch.tensor(synonyms_per_class, dtype=torch.long)
    if (counts <= 0).any():
        bad = int(torch.nonzero(counts <= 0)[0])
        raise ValueError(f"class {bad} has no synonym (synonyms_per_class[{bad}] = {synonyms_per_class[bad]})")
    starts = torch.cumsum(counts, 0) - counts
    s_max = int(counts.max())
    offs = torch.arange(s_max)
    pad = offs[None, :] >= counts[:, None]
    index = torch.where(pad, starts[:, None], starts[:, None] + offs[None, :])
    return index, pad


def aggregate_synonym_logits(logits: Tensor, synonyms_per_class: Sequence[int]) -> Tensor:
    """Max over each class's consecutive synonym columns, vectorised (no Python loop over classes).

    Args:
        logits: (..., T) one column per synonym, T == sum(synonyms_per_class).
        synonyms_per_class: synonyms per class, in class order.

    Returns:
        (..., C) with C == len(synonyms_per_class).
    """
    key = tuple(int(n) for n in synonyms_per_class)
    if len(key) == 0:
        raise ValueError("empty vocabulary: synonyms_per_class has no class")
    if logits.shape[-1] != sum(key):
        raise ValueError(f"logits have {logits.shape[-1]} synonym columns but synonyms_per_class sums to {sum(key)}")
    index, pad = _synonym_gather_index(key)
    index, pad = index.to(logits.device), pad.to(logits.device)
    gathered = logits[..., index.flatten()].reshape(*logits.shape[:-1], *index.shape)
    gathered = gathered.masked_fill(pad, float("-inf"))
    return gathered.max(dim=-1).values


def classification_logits(
    embeddings: Tensor, text: Tensor, logit_scale: Tensor, synonyms_per_class: Sequence[int]
) -> Tensor:
    """Cosine logits of embeddings against text rows + void, synonym max per class.

    Args:
        embeddings: (B, N, D) (or (N, D)) mask embeddings, unnormalised.
        text: (T + 1, D) shared, or (B, T + 1, D) per image, L2-normalised rows; the last row is void.
        logit_scale: scalar CLIP ``logit_scale`` (log-space); exp is clamped at 100.
        synonyms_per_class: synonyms per class; sum == T.

    Returns:
        (B, N, C + 1) (or (N, C + 1)) logits; the last column is void.
    """
    x = F.normalize(embeddings, dim=-1)
    scale = torch.clamp(logit_scale.exp(), max=100.0)
    if text.dim() == 2:
        raw = x @ text.t()
    elif text.dim() == 3 and x.dim() == 3:
        raw = torch.einsum("bnd,btd->bnt", x, text)
    else:
        raise ValueError(
            f"text must be (T+1, D) or (B, T+1, D) with (B, N, D) embeddings; got text "
            f"{tuple(text.shape)} and embeddings {tuple(embeddings.shape)}"
        )
    raw = scale * raw
    per_class = aggregate_synonym_logits(raw[..., :-1], synonyms_per_class)
    return torch.cat([per_class, raw[..., -1:]], dim=-1)


def embeddings_from_activation_maps(
    maps: Tensor, clip_dense: Tensor, project: Projector, num_output_maps: int
) -> Tensor:
    """Weight-pool the raw CLIP feature with the adapter's activation maps.

    Each map is normalised over space as sigmoid(a) / sum(sigmoid(a)) (a spatial softmax of log-sigmoid),
    pools the *unprojected* trunk feature, goes through the frozen CLIP heads, and the K embeddings of a
    mask are averaged.

    Args:
        maps: (B, N·K, h', w') activation-map logits from the adapter; resized to (h, w) if needed.
        clip_dense: (B, C_raw, h, w) ``clip_vis_dense``.
        project: maps (M, C_raw) pooled vectors to (M, D); must let gradients through.
        num_output_maps: K.

    Returns:
        (B, N, D) mask embeddings (unnormalised).
    """
    b, c_raw, h, w = clip_dense.shape
    if maps.shape[1] % num_output_maps != 0:
        raise ValueError(f"maps have {maps.shape[1]} channels, not a multiple of K={num_output_maps}")
    if maps.shape[-2:] != (h, w):
        maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)
    weights = F.softmax(F.logsigmoid(maps.flatten(2)), dim=-1)  # (B, N·K, hw)
    pooled = torch.bmm(weights.to(clip_dense.dtype), clip_dense.flatten(2).transpose(1, 2))
    # -1 for N·K and N (no sizes computed in Python) keeps a traced / exported graph valid for any N.
    emb = project(pooled.reshape(-1, c_raw))
    return emb.reshape(b, -1, num_output_maps, emb.shape[-1]).mean(dim=2)


def mask_pooling_embeddings(mask_logits: Tensor, clip_dense: Tensor, project: Projector) -> Tensor:
    """Plain mask pooling (FC-CLIP's out-of-vocabulary branch).

    Args:
        mask_logits: (B, Q, H', W') mask logits; resized bilinearly to (h, w) and binarised at logit > 0.
        clip_dense: (B, C_raw, h, w).
        project: (M, C_raw) -> (M, D).

    Returns:
        (B, Q, D) embeddings of the average trunk feature inside each mask.
    """
    b, c_raw, h, w = clip_dense.shape
    with torch.no_grad():
        m = F.interpolate(mask_logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        m = (m > 0).to(clip_dense.dtype)
    pooled = torch.einsum("bqhw,bchw->bqc", m, clip_dense) / (m.sum(dim=(-1, -2))[..., None] + 1e-8)
    q = mask_logits.shape[1]
    emb = project(pooled.reshape(b * q, c_raw))
    return emb.reshape(b, q, emb.shape[-1])


def top_k_adapter_embeddings(
    masks: Tensor,
    clip_dense: Tensor,
    project: Projector,
    adapter_embeddings: Callable[[Tensor], Tensor],
    score: Callable[[Tensor], Tensor],
    k: int,
) -> Tensor:
    """Opt-in approximation: the adapter only on the k proposals the plain mask-pooled CLIP embedding scores highest.

    Every mask gets its mask-pooled embedding; the k per image whose pooled embedding has the highest maximum class
    probability are then replaced by the adapter's embeddings.

    Args:
        masks: (B, N, H', W') binary masks.
        clip_dense: (B, C_raw, h, w).
        project: (M, C_raw) -> (M, D).
        adapter_embeddings: (B, k, H', W') masks -> (B, k, D) adapter embeddings.
        score: (B, N, D) embeddings -> (B, N, C + 1) class logits, void last.
        k: proposals per image given to the adapter (k >= N: all of them).

    Returns:
        (B, N, D) embeddings.
    """
    if k >= masks.shape[1]:
        return adapter_embeddings(masks)
    pooled = mask_pooling_embeddings(masks, clip_dense, project)
    with torch.no_grad():
        confidence = F.softmax(score(pooled), dim=-1)[..., :-1].max(dim=-1).values  # (B, N)
        top = confidence.topk(k, dim=1).indices  # (B, k)
    chosen = torch.gather(masks, 1, top[:, :, None, None].expand(-1, -1, *masks.shape[-2:]))
    emb = pooled.clone()
    emb.scatter_(1, top[:, :, None].expand(-1, -1, pooled.shape[-1]), adapter_embeddings(chosen).to(pooled.dtype))
    return emb
