"""Checkpoints in the safetensors format: reading (wherever .pth files load), writing (state dict only), conversion.

A ``.safetensors`` file holds the model state dict (the entries of ``"model"`` for a detectron2 checkpoint, or a flat
MAFT+-style dict) under the original keys, plus string metadata: ``"format"``, ``"source"`` (the file converted from)
and, for fused checkpoints, the fusion marker as JSON under ``FUSION_MARKER_KEY``. Other entries of the source
(optimizer, scheduler, iteration) are not written. Tensors that share memory (tied weights, views) are written as
separate copies, so every key stays present.
"""

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..utils import PathLike
from ..utils.atomic import atomic_output_path
from .layout import FUSION_MARKER_KEY

__all__ = [
    "SAFETENSORS_SUFFIX",
    "load_safetensors_checkpoint",
    "read_safetensors_metadata",
    "save_safetensors_checkpoint",
]

logger = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
_FORMAT = "mask_adapter state dict"


def read_safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file ({} when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return dict(f.metadata() or {})


def load_safetensors_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a ``.safetensors`` checkpoint on CPU.

    Args:
        path: local file.

    Returns:
        ``{"model": state_dict}``, plus the fusion marker (``FUSION_MARKER_KEY``) when the metadata holds one.

    Raises:
        FileNotFoundError: missing file. ValueError: not a readable safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = load_file(str(path), device="cpu")
        metadata = read_safetensors_metadata(path)
    except SafetensorError as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}); convert the checkpoint again") from None
    data: dict[str, Any] = {"model": state}
    if FUSION_MARKER_KEY in metadata:
        data[FUSION_MARKER_KEY] = json.loads(metadata[FUSION_MARKER_KEY])
    return data


def _unshared(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Contiguous tensors that share no memory with each other (later sharers copied); (tensors, copies made)."""
    out: dict[str, torch.Tensor] = {}
    seen = set()
    copies = 0
    for key, value in state_dict.items():
        t = value.detach()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone(memory_format=torch.contiguous_format)
            copies += 1
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t.contiguous()
    return out, copies


def save_safetensors_checkpoint(
    state_dict: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a state dict as ``.safetensors`` (all keys kept; shared tensors written as copies).

    Args:
        state_dict: key -> tensor (non-tensor entries are refused).
        path: output file; must end in ``.safetensors``.
        metadata: extra string metadata (``"format"`` is always set).

    Returns:
        The written path.

    Raises:
        ValueError: wrong suffix or a non-tensor entry.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(f"{path}: a safetensors checkpoint must end in {SAFETENSORS_SUFFIX}")
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"safetensors holds tensors only, but {len(bad)} entries are not, e.g. {bad[:3]}")
    tensors, copies = _unshared(state_dict)
    if copies:
        logger.info("%d tensors shared memory with another entry; written as copies", copies)
    meta = {"format": _FORMAT, **{str(k): str(v) for k, v in (metadata or {}).items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output_path(str(path)) as tmp:  # never a truncated file under the output name
        try:
            save_file(tensors, tmp, metadata=meta)
        except Exception as e:  # the Rust writer reports I/O errors as "... (os error N)" without an OSError
            code = re.search(r"os error (\d+)", str(e))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1]))) from e
    return path
