"""Conversion of a checkpoint between torch (``.pth``) and ``.safetensors``, keeping the model state dict only."""

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..utils import PathLike
from ..utils.atomic import atomic_save
from .layout import FUSION_MARKER_KEY, split_checkpoint
from .loading import load_checkpoint_file
from .safetensors_io import SAFETENSORS_SUFFIX, save_safetensors_checkpoint

__all__ = ["convert_checkpoint"]


def convert_checkpoint(src: PathLike, dst: PathLike, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Convert a checkpoint between ``.pth`` (torch) and ``.safetensors``, keeping the model state dict only.

    Args:
        src: a detectron2 checkpoint (``{"model": ...}``), a flat state dict (MAFT+), or a ``.safetensors`` file.
        dst: ``*.safetensors`` (metadata: format, source file name, fusion marker) or ``*.pth``
            (``{"model": state_dict}``, plus the fusion marker of a fused source).
        allow_pickle: read source files holding arbitrary pickled objects (only files you trust).

    Returns:
        {"tensors": number written, "dropped": the source's other entries that were not written (sorted)}.

    Raises:
        FileNotFoundError, ValueError: unreadable source, unsupported destination suffix, no tensors.
    """
    dst = Path(dst)
    if dst.suffix not in (SAFETENSORS_SUFFIX, ".pth"):
        raise ValueError(f"output {dst} must end in {SAFETENSORS_SUFFIX} or .pth")
    if os.path.abspath(src) == os.path.abspath(dst) or (dst.exists() and os.path.samefile(src, dst)):
        raise ValueError(
            f"input and output are the same file {src}: the conversion keeps the model weights only and would "
            "replace the file, dropping its trainer state and iteration; write the output to another file"
        )
    state, extra = split_checkpoint(load_checkpoint_file(str(src), allow_pickle=allow_pickle))
    if not state:
        raise ValueError(f"{src} holds no tensors to convert")
    marker = extra.pop(FUSION_MARKER_KEY, None)
    if dst.suffix == SAFETENSORS_SUFFIX:
        meta = {"source": Path(src).name}
        if marker is not None:
            meta[FUSION_MARKER_KEY] = json.dumps(marker, sort_keys=True)
        save_safetensors_checkpoint(state, dst, meta)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = {"model": state, **({FUSION_MARKER_KEY: marker} if marker is not None else {})}
        atomic_save(str(dst), lambda f: torch.save(data, f))
    return {"tensors": len(state), "dropped": sorted(extra)}
