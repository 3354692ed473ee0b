"""Reading checkpoints: files of every supported format, the detectron2 checkpointer, the generator weight source.

Formats accepted everywhere: detectron2 dicts and flat state dicts (:mod:`mask_adapter.checkpoint.layout`), as torch
files, detectron2 ``.pkl`` files or ``.safetensors`` (:mod:`mask_adapter.checkpoint.safetensors_io`). The
checkpointer also takes the short names of released models (``fcclip-l-ma``, :mod:`mask_adapter.checkpoint.hub`).
A fused file's marker (see :mod:`mask_adapter.checkpoint.layout`) is logged by :class:`MaskAdapterCheckpointer`.
"""

import logging
import os
import pickle
import re
from collections.abc import Container, Mapping, Sequence
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from ..utils.atomic import atomic_save, atomic_write_text, ensure_output_dir
from ..utils.ddp import unwrap
from .hub import resolve_released
from .layout import (
    FUSION_MARKER_KEY,
    KNOWN_LEFTOVER_KEYS,
    format_shape_mismatches,
    generator_state,
    shape_mismatches,
    split_checkpoint,
)
from .safetensors_io import load_safetensors_checkpoint

__all__ = [
    "MaskAdapterCheckpointer",
    "checkpoint_format",
    "load_checkpoint_file",
    "load_generator_weights",
    "load_pkl_without_code",
]

logger = logging.getLogger(__name__)


def load_checkpoint_file(path: str, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load`` on CPU.

    Args:
        path: local file.
        allow_pickle: permit arbitrary pickled objects (``weights_only=False``); this runs code from the file, so
            only for files you trust.

    Returns:
        The loaded object (must be a dict).

    Raises:
        FileNotFoundError, ValueError: one line naming the problem and the fix: missing, empty, not a checkpoint,
            truncated/corrupt, pickled objects without ``allow_pickle``, not a dict.
    """
    kind = checkpoint_format(path)
    if kind == "safetensors":  # tensors only: never pickled, ``allow_pickle`` does not apply
        return load_safetensors_checkpoint(path)
    if kind in ("empty", "unknown"):
        raise _format_error(path, kind)
    try:
        data = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        if allow_pickle:
            raise _corrupt_error(path, e) from None
        raise _pickle_refusal(path, e) from None
    except (RuntimeError, EOFError, OSError) as e:  # zip reader errors of a truncated file
        raise _corrupt_error(path, e) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, expected a state dict or a detectron2 checkpoint")
    return data


# ---------------------------------------------------------------------------------------------- error classification
def checkpoint_format(path: str) -> str:
    """What a file looks like from its first bytes, without unpickling anything.

    Returns:
        "zip" (``torch.save``), "pickle" (legacy ``torch.save`` / detectron2 ``.pkl``), "safetensors", "empty" or
        "unknown".

    Raises:
        FileNotFoundError: no such file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}; give an existing .pth/.pkl/.safetensors file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if size == 0:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle PROTO opcode, protocols 2-5
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    return "unknown"


def _format_error(path: str, kind: str) -> ValueError:
    if kind == "empty":
        return ValueError(
            f"checkpoint {path} is empty (0 bytes), e.g. an interrupted download; download or copy it again"
        )
    with open(path, "rb") as f:
        head = f.read(8)
    return ValueError(
        f"{path} is not a PyTorch/safetensors checkpoint (it starts with bytes {head.hex(' ')}); pass a .pth/.pkl "
        "file written by torch.save or detectron2, or a .safetensors file"
    )


def _corrupt_error(path: str, error: BaseException) -> ValueError:
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip()
    first = text.split(". ")[0].splitlines()[0] if text else type(error).__name__
    return ValueError(f"checkpoint {path} is truncated or corrupt ({first}); download or copy it again")


def _pickle_refusal(path: str, error: BaseException) -> ValueError:
    """One line (not PyTorch's paragraph): what the file holds, that it was refused, how to load it anyway."""
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    what = f"e.g. {found.group(1)}" if found else "not only tensors"
    return ValueError(
        f"checkpoint {path} contains pickled Python objects ({what}) that could run code when loaded, so it was "
        f"refused; if you trust the file, pass --trust-pickle (allow_pickle=True), which runs code from the file"
    )


_NUMPY_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler of detectron2 ``.pkl`` model-zoo files (dicts of numpy arrays) that refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name}")


def load_pkl_without_code(path: str) -> Any:
    """Read a detectron2 ``.pkl`` checkpoint allowing only numpy arrays (no code from the file runs).

    Raises:
        ValueError: the file holds other objects (see :func:`load_checkpoint_file`) or is corrupt.
    """
    kind = checkpoint_format(path)
    if kind != "pickle":
        raise (
            _format_error(path, kind)
            if kind != "zip"
            else ValueError(f"{path} is a torch.save zip file with a .pkl name; rename it to .pth")
        )
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise _pickle_refusal(path, e) from None
        raise _corrupt_error(path, e) from None
    except (EOFError, ValueError) as e:
        raise _corrupt_error(path, e) from None


_ARCH_HINT = (
    "the checkpoint comes from another architecture or configuration (e.g. FC-CLIP has 250 queries and MAFT+ 100; "
    "ConvNeXt-L CLIP is 768 wide and ConvNeXt-B 640): pass the config file that matches MODEL.WEIGHTS"
)


class MaskAdapterCheckpointer(DetectionCheckpointer):
    """detectron2 checkpointer for released, fused and MAFT+ flat checkpoints.

    Differences from ``DetectionCheckpointer``:
    - Known leftovers (``criterion.empty_weight`` when the model has no such key, the fusion marker) are dropped
      with one log line; the fusion metadata of a fused file is logged.
    - Shape mismatches raise ``ValueError`` listing the keys, instead of a warning and silently random weights.
    - Other missing / unexpected keys are reported by detectron2's usual warnings.

    Args:
        model, save_dir, save_to_disk, checkpointables: as ``DetectionCheckpointer``.
        allow_pickle: read files with arbitrary pickled objects (``torch.load(weights_only=False)``).
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        save_to_disk: bool | None = None,
        allow_pickle: bool = False,
        **checkpointables: Any,
    ) -> None:
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.allow_pickle = allow_pickle
        self._loading_path: str | None = None

    def load(self, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Load ``path`` (see ``fvcore.common.checkpoint.Checkpointer.load``); raises on shape mismatches.

        ``path`` may also be a short name of a released model (``RELEASED_MODELS``), fetched through the model hub.
        """
        path = resolve_released(path)
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint not found: {path}; give an existing file (MODEL.WEIGHTS / --weights)")
        self._loading_path = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading_path = None

    def _torch_load(self, f: str) -> dict[str, Any]:
        data = load_checkpoint_file(f, allow_pickle=self.allow_pickle)
        state, extra = split_checkpoint(data)
        return {"model": state, **extra}

    def _load_file(self, filename: str) -> dict[str, Any]:
        """detectron2's reader, except that ``.pkl`` files are read without running code unless ``allow_pickle``
        (detectron2 calls ``pickle.load`` on them, which runs any code the file holds)."""
        if not filename.endswith(".pkl") or self.allow_pickle:
            return super()._load_file(filename)
        data = load_pkl_without_code(filename)
        if not isinstance(data, dict):
            raise ValueError(f"{filename} holds a {type(data).__name__}, expected a detectron2 .pkl checkpoint")
        if "model" in data and "__author__" in data:  # detectron2 model-zoo layout, as DetectionCheckpointer
            return data
        data = data.get("blobs", data)  # Caffe2 / Detectron1 layout, as DetectionCheckpointer
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    def save(self, name: str, **kwargs: Any) -> None:
        """``Checkpointer.save`` with an atomic write: an interrupted save never leaves a file named like a
        checkpoint (``<name>.pth``), and ``last_checkpoint`` is tagged only after the file is complete."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        ensure_output_dir(self.save_dir)
        atomic_save(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Write ``last_checkpoint`` atomically (a torn tag file would make ``--resume`` fail)."""
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    def _load_model(self, checkpoint: dict[str, Any]) -> Any:
        marker = checkpoint.pop(FUSION_MARKER_KEY, None)
        if marker is not None:
            logger.info("fused checkpoint: %s", marker)
        state = checkpoint["model"]
        model_state = self.model.state_dict()
        leftovers = [k for k in KNOWN_LEFTOVER_KEYS if k in state and k not in model_state]
        for k in leftovers:
            state.pop(k)
        if leftovers:
            logger.info("ignoring known leftover checkpoint keys: %s", ", ".join(leftovers))
        mismatches = shape_mismatches(
            {k: v for k, v in state.items() if isinstance(v, torch.Tensor)},
            {k: v.shape for k, v in model_state.items()},
        )
        tensors = [k for k, v in state.items() if isinstance(v, torch.Tensor) or hasattr(v, "shape")]
        source = self._loading_path or "<unknown>"
        if not tensors:
            raise ValueError(
                f"checkpoint {source} holds no model tensors (an empty state dict); loading it would leave every "
                "weight random; pass the file with the model's weights (MODEL.WEIGHTS / --weights)"
            )
        if not checkpoint.get("matching_heuristics") and not any(k in model_state for k in tensors):
            raise ValueError(
                f"none of the {len(tensors)} tensors of checkpoint {self._loading_path or '<unknown>'} is a "
                f"parameter of the model (e.g. {sorted(tensors)[0]!r}); {_ARCH_HINT}"
            )
        if mismatches:
            raise ValueError(
                f"{len(mismatches)} tensors of checkpoint {self._loading_path or '<unknown>'} do not fit the model; "
                f"{_ARCH_HINT}:\n" + format_shape_mismatches(mismatches, "checkpoint", "model")
            )
        check_finite(state, source, keys=model_state)
        return super()._load_model(checkpoint)

    def _log_incompatible_keys(self, incompatible: Any) -> None:
        """A few lines instead of one line per tensor: how many model tensors the checkpoint lacks (they keep
        their initial values) and how many of its entries the model does not use, grouped by module."""
        from fvcore.common.checkpoint import _filter_reused_missing_keys

        source = self._loading_path or "the checkpoint"
        missing = (
            _filter_reused_missing_keys(self.model, incompatible.missing_keys) if incompatible.missing_keys else []
        )
        if missing:
            total = len(self.model.state_dict())
            logger.warning(
                "%d of %d model tensors are not in %s and keep their initial values: %s",
                len(missing),
                total,
                source,
                summarize_keys(missing),
            )
        if incompatible.unexpected_keys:
            logger.warning(
                "%d entries of %s are not used by the model: %s",
                len(incompatible.unexpected_keys),
                source,
                summarize_keys(incompatible.unexpected_keys),
            )


def summarize_keys(keys: Sequence[str], depth: int = 2, limit: int = 6) -> str:
    """``keys`` counted by their first ``depth`` name components, largest groups first, at most ``limit`` groups
    (e.g. "backbone.clip_model.* (120), sem_seg_head.predictor.* (14), 3 more groups")."""
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        group = ".".join(parts[:depth]) + (".*" if len(parts) > depth else "")
        groups[group] = groups.get(group, 0) + 1
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{name} ({count})" for name, count in ranked[:limit])
    return text + (f", {len(ranked) - limit} more groups" if len(ranked) > limit else "")


def check_finite(state: Mapping[str, Any], source: str, keys: Container[str] | None = None) -> None:
    """Raises one ValueError line naming the first floating-point tensor of ``state`` (among ``keys``, if given)
    that holds NaN or infinite values: such weights turn every prediction into the same class without an error."""
    for key, value in state.items():
        if keys is not None and key not in keys:
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise ValueError(
                    f"checkpoint {source}: tensor {key} holds {bad} NaN or infinite values (of {value.numel()}); the "
                    "weights are damaged (e.g. saved by a diverged training run); use an earlier checkpoint or "
                    "download the file again"
                )


def load_generator_weights(model: nn.Module, path: str, *, allow_pickle: bool = False) -> list[str]:
    """Copy the generator (``sem_seg_head.*``) and ``void*`` tensors of ``path`` into ``model`` (fusion in memory).

    This is the second weight source, ``MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS``: load the stage-1 checkpoint with
    ``MODEL.WEIGHTS`` first, then this; like the fusion tool it replaces the stage-1 void embedding.

    Args:
        model: the FCCLIP / MAFT_Plus model (may be DDP-wrapped).
        path: base generator checkpoint, detectron2 dict (FC-CLIP) or flat state dict (MAFT+).
        allow_pickle: see :func:`load_checkpoint_file`.

    Returns:
        The loaded keys, sorted.

    Raises:
        ValueError: the file has no ``sem_seg_head.*``, the model has none, shapes differ (e.g. 250 vs 100
            queries), or the file lacks generator keys that the model has.
    """
    model = unwrap(model)
    state, _ = split_checkpoint(load_checkpoint_file(path, allow_pickle=allow_pickle))
    source = generator_state(state)
    if not any(k.startswith("sem_seg_head") for k in source):
        raise ValueError(f"generator weights {path} contain no sem_seg_head.* tensor; pass the base FC-CLIP/MAFT+ file")
    model_state = model.state_dict()
    wanted = generator_state(model_state)
    if not any(k.startswith("sem_seg_head") for k in wanted):
        raise ValueError(
            "the model has no sem_seg_head; GENERATOR_WEIGHTS only applies to FCCLIP / MAFT_Plus, not MASK_Adapter"
        )
    mismatches = shape_mismatches(source, {k: v.shape for k, v in wanted.items()})
    if mismatches:
        raise ValueError(
            f"{len(mismatches)} generator tensors of {path} do not fit the model; {_ARCH_HINT}:\n"
            + format_shape_mismatches(mismatches, "file", "model")
        )
    missing = sorted(k for k in wanted if k not in source)
    if missing:
        raise ValueError(
            f"generator weights {path} lack {len(missing)} tensors of the model's generator, e.g. {missing[:5]}; "
            f"{_ARCH_HINT}"
        )
    unexpected = sorted(k for k in source if k not in wanted)
    if unexpected:
        logger.warning(
            "generator weights %s: %d tensors unused by the model, e.g. %s",
            path,
            len(unexpected),
            unexpected[:5],
        )
    loaded = sorted(k for k in source if k in wanted)
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    logger.info("loaded %d generator/void tensors from %s", len(loaded), path)
    return loaded
