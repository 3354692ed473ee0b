"""Fusion of a stage-1 checkpoint with a base generator checkpoint (``tools/weight_fuse*.py`` run :func:`main`).

Fusion builds the stage-2 initialization: the stage-1 (ground-truth warmup) checkpoint P1 holds the trained adapter
(``mask_adapter.*``), CLIP (``backbone.*``), ``void_embedding`` and, for MAFT+, ``cdt.*``; the base generator
checkpoint BASE (FC-CLIP detectron2 dict, or MAFT+ flat state dict) holds the frozen Mask2Former head. Every BASE key
starting with ``sem_seg_head`` or ``void`` is copied into P1's ``model`` (so the stage-1 void embedding is replaced
by the base model's, as in the official tool). The output is ``{"model": ..., "__mask_adapter_fused__": {...}}``;
see :mod:`mask_adapter.checkpoint.layout` for why the marker sits beside ``model``. P1's optimizer/scheduler state is not
copied (stage 2 starts a new schedule; MODEL.WEIGHTS loading never reads it).

Refused, each with one clear message: (a) an input already fused (marker) or a P1 that already holds generator
weights (a fused or stage-2 checkpoint; official issue #17); (b) a P1 whose adapter sits under ``sem_seg_head.*``
(naming before Dec 2024) unless ``--remap-old-adapter-names``; (c) a BASE without ``sem_seg_head.*``; (d) a
generator/config mismatch: query count (FC-CLIP 250, MAFT+ 100; official issue #10) or CLIP width.
"""

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..utils.atomic import atomic_save
from .layout import FUSION_MARKER_KEY, format_shape_mismatches, generator_state, split_checkpoint
from .loading import load_checkpoint_file

__all__ = [
    "EXPECTED_QUERIES",
    "FusionError",
    "build_parser",
    "fuse_checkpoints",
    "fuse_files",
    "main",
    "old_adapter_keys",
]

logger = logging.getLogger("mask_adapter.weight_fuse")

EXPECTED_QUERIES: dict[str, int] = {"fcclip": 250, "maftp": 100}
QUERY_KEY = "sem_seg_head.predictor.query_feat.weight"
# Top-level children of the adapter; under "sem_seg_head." they reveal the pre-Dec-2024 stage-1 naming.
_OLD_ADAPTER_RE = re.compile(r"^sem_seg_head\.(fuse|cnext\d+|norm|final|mask_downscaling)\.")
_ADAPTER_CLIP_DIM_KEY = "mask_adapter.mask_downscaling.6.weight"  # (clip_dim, 16, 1, 1)
_VOID_KEY = "void_embedding.weight"  # (1, D)


class FusionError(ValueError):
    """An input that must not be fused; the message names the problem and the fix."""


def old_adapter_keys(state: Mapping[str, Any]) -> list[str]:
    """Keys of an adapter stored under ``sem_seg_head.*`` (old stage-1 naming), e.g. ``sem_seg_head.cnext1.gamma``."""
    return [k for k in state if _OLD_ADAPTER_RE.match(k)]


def _remap_old_adapter(state: dict[str, torch.Tensor], name: str) -> int:
    keys = old_adapter_keys(state)
    clash = [k for k in keys if "mask_adapter." + k[len("sem_seg_head.") :] in state]
    if clash:
        raise FusionError(f"{name}: both sem_seg_head.* and mask_adapter.* adapter keys exist (e.g. {clash[0]})")
    for k in keys:
        state["mask_adapter." + k[len("sem_seg_head.") :]] = state.pop(k)
    return len(keys)


def _check_first_phase(state: dict[str, torch.Tensor], name: str, remap: bool) -> int:
    """Checks (a) and (b) on P1; returns the number of remapped keys."""
    old = old_adapter_keys(state)
    generator_keys = [k for k in state if k.startswith("sem_seg_head") and k not in old]
    if generator_keys:
        raise FusionError(
            f"{name} already holds generator weights ({generator_keys[0]}, ...): it is a fused or stage-2 "
            f"checkpoint. Fuse the stage-1 (ground-truth warmup) checkpoint instead; fusing again would replace the "
            f"stage-2 void embedding (official issue #17)"
        )
    if old and not remap:
        raise FusionError(
            f"{name} stores the adapter under sem_seg_head.* ({old[0]}, ...), the naming before Dec 2024; fusion "
            f"would overwrite it with the generator. Rerun with --remap-old-adapter-names to move it to mask_adapter.*"
        )
    remapped = _remap_old_adapter(state, name) if old else 0
    if not any(k.startswith("mask_adapter.") for k in state):
        raise FusionError(f"{name} has no mask_adapter.* tensor: pass the stage-1 (ground-truth warmup) checkpoint")
    return remapped


def _check_base(base: dict[str, torch.Tensor], name: str, generator: str, num_queries: int | None) -> None:
    """Checks (c) and the query count of (d) on BASE."""
    if not any(k.startswith("sem_seg_head") for k in base):
        raise FusionError(
            f"{name} has no sem_seg_head.* tensor: pass the base generator checkpoint "
            f"({'FC-CLIP' if generator == 'fcclip' else 'maftp_b.pth / maftp_l.pth'}) as --model_sem_seg_path"
        )
    expected = num_queries if num_queries is not None else EXPECTED_QUERIES[generator]
    if QUERY_KEY not in base:
        logger.warning("%s has no %s; cannot verify the query count (%d expected)", name, QUERY_KEY, expected)
        return
    found = int(base[QUERY_KEY].shape[0])
    if found != expected:
        guess = {v: k for k, v in EXPECTED_QUERIES.items()}.get(found)
        hint = f" (looks like --generator {guess})" if guess else ""
        raise FusionError(
            f"{name} has {found} queries ({QUERY_KEY}) but --generator {generator} expects {expected}{hint}; "
            f"pass the matching generator checkpoint or --generator (or --num-queries for a custom generator)"
        )


def _check_same_clip(first: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], names: Sequence[str]) -> None:
    """Check (d) on the CLIP side: shared keys and the adapter's clip_dim must agree with BASE."""
    mismatches = [
        (k, tuple(first[k].shape), tuple(base[k].shape))
        for k in first
        if k in base and tuple(first[k].shape) != tuple(base[k].shape)
    ]
    if _ADAPTER_CLIP_DIM_KEY in first and _VOID_KEY in base:
        clip_dim, void_dim = int(first[_ADAPTER_CLIP_DIM_KEY].shape[0]), int(base[_VOID_KEY].shape[-1])
        if clip_dim != void_dim:
            mismatches.append((f"{_ADAPTER_CLIP_DIM_KEY} rows vs {_VOID_KEY} width", (clip_dim,), (void_dim,)))
    if mismatches:
        raise FusionError(
            f"{names[0]} and {names[1]} come from different CLIP models or configurations "
            f"(ConvNeXt-L is 768 wide, ConvNeXt-B 640):\n" + format_shape_mismatches(mismatches, "first-phase", "base")
        )


def fuse_checkpoints(
    first_phase: Mapping[str, Any],
    base: Mapping[str, Any],
    *,
    generator: str,
    remap_old_adapter_names: bool = False,
    num_queries: int | None = None,
    first_phase_name: str = "first-phase checkpoint",
    base_name: str = "base checkpoint",
) -> dict[str, Any]:
    """Fuse two loaded checkpoints (no file I/O).

    Args:
        first_phase: stage-1 checkpoint (detectron2 dict or flat).
        base: generator checkpoint (FC-CLIP detectron2 dict or MAFT+ flat state dict).
        generator: "fcclip" (250 queries) or "maftp" (100 queries).
        remap_old_adapter_names: move an adapter found under ``sem_seg_head.*`` to ``mask_adapter.*``.
        num_queries: expected query count, overriding the generator's default.
        first_phase_name, base_name: names used in messages and the marker (usually the paths).

    Returns:
        ``{"model": fused state dict, "__mask_adapter_fused__": metadata}``.

    Raises:
        FusionError: see the module docstring.
    """
    if generator not in EXPECTED_QUERIES:
        raise FusionError(f"unknown generator {generator!r}; use one of {sorted(EXPECTED_QUERIES)}")
    first_state, first_extra = split_checkpoint(first_phase)
    base_state, base_extra = split_checkpoint(base)
    for name, state, extra in (
        (first_phase_name, first_state, first_extra),
        (base_name, base_state, base_extra),
    ):
        if FUSION_MARKER_KEY in extra or FUSION_MARKER_KEY in state:
            raise FusionError(
                f"{name} is already a fused checkpoint ({FUSION_MARKER_KEY}); fuse the original stage-1 and base "
                f"checkpoints once (fusing twice breaks stage 2, official issue #17)"
            )
    remapped = _check_first_phase(first_state, first_phase_name, remap_old_adapter_names)
    _check_base(base_state, base_name, generator, num_queries)
    _check_same_clip(first_state, base_state, (first_phase_name, base_name))
    copied = generator_state(base_state)
    replaced = sorted(k for k in copied if k in first_state)
    first_state.update(copied)
    meta = {
        "format": 1,
        "generator": generator,
        "first_phase": first_phase_name,
        "base": base_name,
        "copied_tensors": len(copied),
        "replaced_from_first_phase": replaced,
        "remapped_old_adapter_tensors": remapped,
    }
    logger.info(
        "copied %d sem_seg_head/void tensors from %s (replacing %s); remapped %d old adapter tensors",
        len(copied),
        base_name,
        replaced or "none",
        remapped,
    )
    return {"model": first_state, FUSION_MARKER_KEY: meta}


def fuse_files(
    first_phase_path: str,
    base_path: str,
    output_path: str,
    *,
    generator: str,
    remap_old_adapter_names: bool = False,
    num_queries: int | None = None,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Read P1 and BASE, fuse them (:func:`fuse_checkpoints`) and save to ``output_path``.

    Returns:
        The fusion metadata written under ``__mask_adapter_fused__``.
    """
    out_abs = os.path.abspath(output_path)
    if out_abs in (os.path.abspath(first_phase_path), os.path.abspath(base_path)):
        raise FusionError(f"--output_path {output_path} would overwrite an input; choose another file")
    first = load_checkpoint_file(first_phase_path, allow_pickle=trust_pickle)
    base = load_checkpoint_file(base_path, allow_pickle=trust_pickle)
    fused = fuse_checkpoints(
        first,
        base,
        generator=generator,
        remap_old_adapter_names=remap_old_adapter_names,
        num_queries=num_queries,
        first_phase_name=first_phase_path,
        base_name=base_path,
    )
    os.makedirs(os.path.dirname(out_abs), exist_ok=True)
    atomic_save(output_path, lambda f: torch.save(fused, f))  # a partial file never carries the output name
    logger.info("wrote %s (%d tensors)", output_path, len(fused["model"]))
    return fused[FUSION_MARKER_KEY]


def build_parser(generator: str | None) -> argparse.ArgumentParser:
    """Official CLI (``--model_first_phase_path --model_sem_seg_path --output_path``) plus our safety options."""
    parser = argparse.ArgumentParser(
        description="Fuse a stage-1 Mask-Adapter checkpoint with a base generator checkpoint (FC-CLIP or MAFT+)."
    )
    parser.add_argument("--model_first_phase_path", required=True, help="stage-1 (ground-truth warmup) checkpoint")
    parser.add_argument("--model_sem_seg_path", required=True, help="base generator checkpoint (FC-CLIP / MAFT+)")
    parser.add_argument("--output_path", required=True, help="fused checkpoint to write")
    parser.add_argument(
        "--generator",
        choices=sorted(EXPECTED_QUERIES),
        required=generator is None,
        default=generator,
        help="generator of the base checkpoint: fcclip (250 queries) or maftp (100 queries)",
    )
    parser.add_argument(
        "--remap-old-adapter-names",
        action="store_true",
        help="move an adapter stored under sem_seg_head.* (stage-1 naming before Dec 2024) to mask_adapter.*",
    )
    parser.add_argument("--num-queries", type=int, default=None, help="expected query count of a custom generator")
    parser.add_argument("--trust-pickle", action="store_true", help="allow pickled Python objects in the inputs")
    return parser


def main(argv: Sequence[str] | None = None, *, generator: str | None = None) -> int:
    """Run the CLI; ``generator`` fixes the default (weight_fuse_fcclip.py / weight_fuse_maftp.py).

    Returns:
        0 on success, 2 on a refused input (message on stderr).
    """
    logging.basicConfig(level=logging.INFO, format="[weight_fuse] %(message)s")
    args = build_parser(generator).parse_args(argv)
    if generator is not None and args.generator != generator:
        sys.stderr.write(
            f"error: this tool fuses {generator} checkpoints; use tools/weight_fuse.py --generator {args.generator}\n"
        )
        return 2
    try:
        fuse_files(
            args.model_first_phase_path,
            args.model_sem_seg_path,
            args.output_path,
            generator=args.generator,
            remap_old_adapter_names=args.remap_old_adapter_names,
            num_queries=args.num_queries,
            trust_pickle=args.trust_pickle,
        )
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0
