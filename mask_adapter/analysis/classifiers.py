"""Built-in ground-truth-mask classifiers of a Mask-Adapter model, for :func:`mask_adapter.analysis.analyze`.

    crop     CLIP on the masked crop: the mask's bounding box, black outside the mask, resized to the CLIP input
             size, encoded by the CLIP visual tower + projection.
    pooling  mask pooling of the dense CLIP feature (``mask_pooling_embeddings``), FC-CLIP's out-of-vocabulary path.
    adapter  the Mask-Adapter (``model.mask_adapter``) on the binary masks.

A classifier is any callable ``(image, masks) -> class ids``.

Shapes: image (H, W, 3) uint8 RGB; masks (N, H, W) bool, one per ground-truth segment; predictions (N,) class ids in
[0, C) (C vocabulary classes, the void column is never predicted); D CLIP embedding dim; Hp×Wp the padded model
input size.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.meta_arch.state import ForwardState

logger = logging.getLogger(__name__)

__all__ = ["CLASSIFIER_NAMES", "Classifier", "default_classifiers"]

# (image (H, W, 3) uint8 RGB, masks (N, H, W) bool) -> (N,) predicted class ids.
Classifier = Callable[[np.ndarray, np.ndarray], Any]
CLASSIFIER_NAMES = ("crop", "pooling", "adapter")


class _ModelClassifiers:
    """Shared state of the built-in classifiers: text rows once, dense CLIP features once per image.

    Args:
        model: a Mask-Adapter model in eval mode whose test vocabulary is set (``model.set_vocabulary``).

    The methods :meth:`crop`, :meth:`pooling` and :meth:`adapter` are the classifiers: each takes image (H, W, 3)
    uint8 RGB and masks (N, H, W) bool and returns (N,) int64 class ids.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        vocab = model.test_vocabulary
        if vocab is None:
            raise ValueError("the model has no vocabulary: call model.set_vocabulary([...]) first")
        with torch.no_grad():
            self.text, self.synonyms_per_class = model.text_rows(vocab)
        self.vocabulary = vocab
        self._image: np.ndarray | None = None
        self._state: Any = None

    def state(self, image: np.ndarray):
        """ForwardState of ``image`` (features, dense maps, adapter text rows), cached for the last image.

        Args:
            image: (H, W, 3) uint8 RGB; the cache is keyed on the array object.

        Returns:
            A ``mask_adapter.modeling.meta_arch.base.ForwardState`` with ``adapter_text`` set.
        """
        if self._image is image:
            return self._state
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        state = self.model.encode([{"image": tensor}], self.vocabulary)
        self._image, self._state = image, state
        return state

    def _padded(self, state: ForwardState, masks: np.ndarray) -> torch.Tensor:
        """(N, H, W) bool masks -> (1, N, Hp, Wp) float, zero-padded to the model input."""
        hp, wp = state.images.tensor.shape[-2:]
        m = torch.zeros(1, masks.shape[0], hp, wp, device=self.model.device)
        m[0, :, : masks.shape[1], : masks.shape[2]] = torch.as_tensor(masks, device=self.model.device).float()
        return m

    def _predict(self, emb: torch.Tensor, text: torch.Tensor) -> np.ndarray:
        """Mask embeddings (1, N, D) or (N, D) and text rows -> (N,) argmax over the C classes (void dropped)."""
        from mask_adapter.modeling.adapter.pooling import classification_logits

        logits = classification_logits(emb, text, self.model.backbone.logit_scale, self.synonyms_per_class)
        return logits[..., :-1].argmax(-1).reshape(-1).cpu().numpy()

    @torch.no_grad()
    def adapter(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Mask-Adapter classification of ``masks`` (N, H, W) on ``image``; returns (N,) class ids."""
        from mask_adapter.modeling.adapter.pooling import embeddings_from_activation_maps

        state = self.state(image)
        adapter = self.model.mask_adapter
        maps = adapter(state.dense, self._padded(state, masks), self.model.inference_options.adapter_chunk)
        emb = embeddings_from_activation_maps(
            maps, state.clip_dense, self.model.backbone.project_pooled, adapter.num_output_maps
        )
        return self._predict(emb, state.adapter_text)

    @torch.no_grad()
    def pooling(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Mask pooling of the dense CLIP feature over ``masks`` (N, H, W); returns (N,) class ids."""
        from mask_adapter.modeling.adapter.pooling import mask_pooling_embeddings

        state = self.state(image)
        logits = (self._padded(state, masks) * 2.0 - 1.0) * 20.0  # binary mask as ±20 logits (pooled where > 0)
        emb = mask_pooling_embeddings(logits, state.clip_dense, self.model.backbone.project_pooled)
        return self._predict(emb, state.text)

    @torch.no_grad()
    def crop(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """CLIP on the masked bounding-box crop of each of ``masks`` (N, H, W, non-empty); returns (N,) class ids."""
        model = self.model
        visual = model.backbone.clip_model.visual
        size = getattr(visual, "image_size", 224)
        size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        crops = []
        for m in masks:
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            crop = image[y0:y1, x0:x1] * m[y0:y1, x0:x1, None]
            t = torch.as_tensor(np.ascontiguousarray(crop.transpose(2, 0, 1)), device=model.device).float()
            crops.append(F.interpolate(t[None], size=size, mode="bicubic", align_corners=False)[0])
        x = (torch.stack(crops).clamp(0, 255) - model.pixel_mean) / model.pixel_std
        emb = model.backbone.clip_model.encode_image(x)
        return self._predict(emb, self.text)


def default_classifiers(model: Any, names: Sequence[str] = CLASSIFIER_NAMES) -> dict[str, Classifier]:
    """The built-in classifiers of ``model`` (its current test vocabulary), by name ("crop", "pooling", "adapter").

    The adapter classifier needs a model with a Mask-Adapter; it is left out (with a warning) otherwise.

    Args:
        model: a Mask-Adapter model in eval mode with its vocabulary set.
        names: which classifiers, a subset of :data:`CLASSIFIER_NAMES`; an unknown name raises ValueError.

    Returns:
        {name: classifier} in the order of ``names``; the classifiers share one feature cache.
    """
    unknown = [n for n in names if n not in CLASSIFIER_NAMES]
    if unknown:
        raise ValueError(f"unknown classifiers {unknown}; choose from {', '.join(CLASSIFIER_NAMES)}")
    shared = _ModelClassifiers(model)
    out: dict[str, Classifier] = {}
    for n in names:
        if n == "adapter" and getattr(model, "mask_adapter", None) is None:
            logger.warning("the model has no Mask-Adapter (OUT_VOCAB_CLASSIFIER mask_pooling): 'adapter' skipped")
            continue
        out[n] = getattr(shared, n)
    return out
