"""Which synonym of its class a segment matches best (e.g. "puppy" rather than "dog" for the class "dog,puppy").

The model scores a class by the best of its synonyms but keeps no record of which one won, and a segment of the
semantic output merges several proposals. Here the segment's own mask is embedded the way the model embeds a
proposal (the adapter, or mask pooling for models without one) and compared with the text embedding of each synonym
of the segment's class; the closest synonym is the answer. It costs one more backbone pass and one adapter pass per
image.

Shapes: image (H, W, 3) uint8 RGB; masks (N, H, W) bool at the image size.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.text import split_synonyms

__all__ = ["winning_synonyms"]


@torch.no_grad()
def winning_synonyms(
    model: Any,
    image: np.ndarray,
    masks: np.ndarray,
    class_ids: Sequence[int],
    resize: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[str]:
    """The best-matching synonym of each mask's class.

    Args:
        model: a Mask-Adapter model in eval mode whose test vocabulary is set.
        image: (H, W, 3) uint8 RGB.
        masks: (N, H, W) bool, one per segment.
        class_ids: (N,) the class of each segment in the model's vocabulary.
        resize: the model's test-time resize of the image (None: the image as it is).

    Returns:
        N synonyms (stripped), each one of the names of its class.
    """
    if len(masks) != len(class_ids):
        raise ValueError(f"{len(masks)} masks but {len(class_ids)} class ids; give one class per mask")
    if len(masks) == 0:
        return []
    height, width = image.shape[:2]
    resized = resize(image) if resize is not None else image
    tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    state = model.encode([{"image": tensor, "height": height, "width": width}])
    hv, wv = state.images.image_sizes[0]
    hp, wp = state.images.tensor.shape[-2:]
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32), device=state.clip_dense.device)[None]
    m = F.interpolate(m, size=(int(hv), int(wv)), mode="nearest")
    m = F.pad(m, (0, int(wp - wv), 0, int(hp - hv)))
    if getattr(model, "out_vocab_classifier", "adapter") == "mask_pooling":
        m = (m * 2.0 - 1.0) * 20.0  # mask pooling takes logits (pooled where > 0)
    emb = F.normalize(model.mask_embeddings(state, m)[0].float(), dim=-1)  # (N, D)
    text = state.adapter_text if state.adapter_text is not None else state.text
    text = text[0] if text.dim() == 3 else text  # (T + 1, D), void last
    sims = emb @ text[:-1].float().t()  # (N, T)
    starts = np.concatenate([[0], np.cumsum(state.synonyms_per_class)])
    names = state.vocabulary.class_names
    out = []
    for n, c in enumerate(class_ids):
        lo, hi = int(starts[c]), int(starts[c + 1])
        synonyms = [s.strip() for s in split_synonyms(names[c])]
        out.append(synonyms[int(sims[n, lo:hi].argmax())])
    return out
