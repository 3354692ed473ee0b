"""What a checkpoint holds: the model state dict, the other entries, the fusion marker, the generator keys.

Two layouts are read everywhere: detectron2 dicts (``{"model": state_dict, ...}``: FC-CLIP, our own training output)
and flat state dicts (MAFT+ ``maftp_b.pth`` / ``maftp_l.pth``).

Fusion marker: a fused file (:mod:`mask_adapter.checkpoint.fusion`) carries the top-level entry
``"__mask_adapter_fused__": {"format": 1, "generator": ..., "first_phase": ..., "base": ..., ...}`` *beside*
``"model"``, so the model state dict stays clean. detectron2/fvcore only read ``"model"`` and the registered
checkpointables, so plain ``DetectionCheckpointer`` loading ignores the entry. If the key is found inside ``"model"``
(e.g. written by another tool), it is dropped as a known leftover.

This module reads no file and imports nothing else of the package.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "FUSION_MARKER_KEY",
    "GENERATOR_PREFIXES",
    "KNOWN_LEFTOVER_KEYS",
    "ShapeMismatch",
    "format_shape_mismatches",
    "generator_state",
    "shape_mismatches",
    "split_checkpoint",
]

FUSION_MARKER_KEY = "__mask_adapter_fused__"
# Keys taken from the generator (base) checkpoint by fusion and by GENERATOR_WEIGHTS (as the official fusion tools).
GENERATOR_PREFIXES: tuple[str, ...] = ("sem_seg_head", "void")
# Keys of released checkpoints that no module of ours owns: FC-CLIP's SetCriterion class weights, the marker.
KNOWN_LEFTOVER_KEYS: tuple[str, ...] = ("criterion.empty_weight", FUSION_MARKER_KEY)
ShapeMismatch = tuple[str, tuple[int, ...], tuple[int, ...]]


def split_checkpoint(data: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Separate the model state dict from the other entries of a checkpoint.

    Args:
        data: a detectron2 dict (has a ``"model"`` dict) or a flat state dict (MAFT+).

    Returns:
        (state_dict, extra): for a flat dict, ``extra`` holds its non-tensor entries (e.g. a marker); for a
        detectron2 dict, every entry but ``"model"``.
    """
    if isinstance(data.get("model"), Mapping):
        return dict(data["model"]), {k: v for k, v in data.items() if k != "model"}
    state = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    extra = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
    return state, extra


def generator_state(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries whose key starts with ``sem_seg_head`` or ``void`` (what fusion copies)."""
    return {k: v for k, v in state_dict.items() if k.startswith(GENERATOR_PREFIXES)}


def shape_mismatches(
    source: Mapping[str, torch.Tensor], target_shapes: Mapping[str, Sequence[int]]
) -> list[ShapeMismatch]:
    """(key, source shape, target shape) for keys present in both with different shapes."""
    out = []
    for k, v in source.items():
        if k in target_shapes and tuple(v.shape) != tuple(target_shapes[k]):
            out.append((k, tuple(v.shape), tuple(target_shapes[k])))
    return out


def format_shape_mismatches(mismatches: Sequence[ShapeMismatch], source: str, target: str, limit: int = 10) -> str:
    """Readable list ``key: <source> (250, 256) vs <target> (100, 256)``, at most ``limit`` entries."""
    lines = [f"  {k}: {source} {tuple(a)} vs {target} {tuple(b)}" for k, a, b in mismatches[:limit]]
    if len(mismatches) > limit:
        lines.append(f"  ... and {len(mismatches) - limit} more")
    return "\n".join(lines)
