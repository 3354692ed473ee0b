"""Text classifier: CLIP text embeddings of a vocabulary's synonyms, cached per (model, weights, templates,
vocabulary).

Shapes: T text rows, one per synonym (classes in order, synonyms consecutive); C classes; D CLIP embedding width.
"""

import hashlib
import json
import logging
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...utils.atomic import OutputWriteError, atomic_save, ensure_output_dir
from ...utils.progress import progress
from .templates import VILD_TEMPLATES

logger = logging.getLogger(__name__)

# Encodings of fewer text-encoder batches than this run silently (a few seconds at most).
PROGRESS_MIN_BATCHES = 8

__all__ = ["TextEmbeddings", "TextClassifier", "split_synonyms", "category_overlap_mask"]


class TextEmbeddings(NamedTuple):
    """embeddings: (T, D) L2-normalised; synonyms_per_class: synonyms per class (sum == T)."""

    embeddings: Tensor
    synonyms_per_class: list[int]


def split_synonyms(class_string: str) -> list[str]:
    """``"person, people,human"`` -> ``["person", "people", "human"]`` (", " becomes "," then split on ",")."""
    return class_string.replace(", ", ",").split(",")


def category_overlap_mask(test_classes: Sequence[str], train_classes: Sequence[str]) -> Tensor:
    """(C,) bool: class c is "seen" iff one of its synonyms equals (case-sensitively) a training synonym."""
    train = {syn for name in train_classes for syn in split_synonyms(name)}
    return torch.tensor([any(s in train for s in split_synonyms(c)) for c in test_classes], dtype=torch.bool)


class TextClassifier:
    """Encodes vocabularies with the CLIP text tower and caches the result.

    The in-memory cache holds the most recent ``memory_slots`` vocabularies; with ``cache_dir`` set, results are
    also written to and read from ``<cache_dir>/<key>.pt``. The key covers the CLIP model name, the weights
    identity (tag or file hash), the templates and the exact class strings, so no stale hit is possible when
    any of them changes.

    Args:
        tokenize: list of prompts -> (n, L) token ids.
        encode_text: (n, L) token ids -> (n, D) unnormalised embeddings.
        model_id: identifies model and weights, e.g. ``"convnext_large_d_320|laion2b_s29b_b131k_ft_soup"``, or a
            callable returning it (evaluated on every call, so weights loaded later change the key).
        templates: prompt templates with one ``{}``.
        cache_dir: "" for memory only.
        chunk_size: prompts per text-encoder call.
    """

    def __init__(
        self,
        *,
        tokenize: Callable[[list[str]], Tensor],
        encode_text: Callable[[Tensor], Tensor],
        model_id: str | Callable[[], str],
        templates: Sequence[str] = VILD_TEMPLATES,
        cache_dir: str = "",
        chunk_size: int = 128,
        memory_slots: int = 8,
    ) -> None:
        if any(t.count("{}") != 1 for t in templates) or not templates:
            raise ValueError("every prompt template must contain exactly one '{}'")
        self._tokenize = tokenize
        self._encode_text = encode_text
        self.model_id = model_id
        self.templates: tuple[str, ...] = tuple(templates)
        self.cache_dir = cache_dir
        self.chunk_size = chunk_size
        self.memory_slots = memory_slots
        self._memory: OrderedDict[str, TextEmbeddings] = OrderedDict()

    def cache_key(self, class_names: Sequence[str]) -> str:
        model_id = self.model_id() if callable(self.model_id) else self.model_id
        payload = json.dumps([model_id, list(self.templates), list(class_names)], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    def __call__(self, class_names: Sequence[str], device: torch.device = torch.device("cpu")) -> TextEmbeddings:
        """Embeddings for ``class_names`` (strings "name,synonym,..."), on ``device``."""
        if len(class_names) == 0:
            raise ValueError("empty vocabulary: give at least one class name")
        key = self.cache_key(class_names)
        hit = self._memory.get(key)
        if hit is None:
            hit = self._load_disk(key)
        if hit is None:
            hit = self._encode(class_names)
            self._save_disk(key, hit)
        self._memory[key] = hit
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_slots:
            self._memory.popitem(last=False)
        return TextEmbeddings(hit.embeddings.to(device, copy=True), list(hit.synonyms_per_class))

    def _encode(self, class_names: Sequence[str]) -> TextEmbeddings:
        synonyms: list[str] = []
        synonyms_per_class: list[int] = []
        for i, name in enumerate(class_names):
            syns = split_synonyms(name)
            if any(not s.strip() for s in syns):
                raise ValueError(f"class {i} ({name!r}) has an empty synonym; write classes as 'name,synonym,...'")
            synonyms.extend(syns)
            synonyms_per_class.append(len(syns))
        prompts = [t.format(s) for s in synonyms for t in self.templates]
        outs = []
        starts = range(0, len(prompts), self.chunk_size)
        # Large vocabularies (ADE-847, LVIS: thousands of prompts) take minutes on CPU: report progress.
        for start in progress(starts, "text embeddings", unit="batch", min_total=PROGRESS_MIN_BATCHES):
            tokens = self._tokenize(prompts[start : start + self.chunk_size])
            outs.append(self._encode_text(tokens).float().cpu())
        emb = F.normalize(torch.cat(outs), dim=-1).reshape(len(synonyms), len(self.templates), -1)
        emb = F.normalize(emb.mean(dim=1), dim=-1)
        logger.info("Encoded %d classes (%d synonyms)", len(class_names), len(synonyms))
        return TextEmbeddings(emb, synonyms_per_class)

    def _path(self, key: str) -> str:
        return os.path.join(self.cache_dir, f"text_embeddings_{key}.pt")

    def _load_disk(self, key: str):
        """The cached entry, or None if absent. A truncated or corrupt entry (e.g. a copy cut short) is reported on
        one warning line and ignored, so it is rebuilt and replaced."""
        if not self.cache_dir or not os.path.isfile(self._path(key)):
            return None
        try:
            data = torch.load(self._path(key), map_location="cpu", weights_only=True)
            # "num_templates": the name of the same counts in cache files written by earlier versions
            counts = data["synonyms_per_class"] if "synonyms_per_class" in data else data["num_templates"]
            return TextEmbeddings(data["embeddings"], [int(n) for n in counts])
        except (RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as e:
            reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            logger.warning("text-embedding cache file %s is unreadable (%s); rebuilding it", self._path(key), reason)
            return None

    def _save_disk(self, key: str, value: TextEmbeddings) -> None:
        if not self.cache_dir:
            return
        # Atomic (own temporary file, then rename): several processes may cache the same vocabulary at once.
        payload = {"embeddings": value.embeddings, "synonyms_per_class": torch.tensor(value.synonyms_per_class)}
        try:
            ensure_output_dir(self.cache_dir)
            atomic_save(self._path(key), lambda f: torch.save(payload, f))
        except OutputWriteError as e:  # the embeddings are still used; only the cache is lost
            logger.warning("text-embedding cache not written: %s", e)
