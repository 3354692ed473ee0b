"""Official state-dict reference tables (key, shape, dtype, requires_grad) and the strict comparison with them."""

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from .layout import ShapeMismatch

__all__ = ["ReferenceStateDict", "diff_state_dict_against_reference", "read_reference_state_dict"]


class ReferenceStateDict(NamedTuple):
    """Parsed ``reference/<name>_state_dict.tsv``.

    Attributes:
        entries: key -> (shape, dtype, requires_grad) with requires_grad "True", "False" or "buffer"; shape ()
            for ``scalar``; in file order.
        non_persistent: key -> shape of the non-persistent buffers listed in the trailing ``#`` lines.
    """

    entries: dict[str, tuple[tuple[int, ...], str, str]]
    non_persistent: dict[str, tuple[int, ...]]


def _parse_shape(text: str) -> tuple[int, ...]:
    return () if text == "scalar" else tuple(int(x) for x in text.split("x"))


def read_reference_state_dict(tsv_path: str) -> ReferenceStateDict:
    """Parse a reference state-dict table (header, ``key\\tshape\\tdtype\\trequires_grad`` lines, ``#`` lines).

    Args:
        tsv_path: a table such as ``fcclip_convnext_large_ade20k_state_dict.tsv``.

    Returns:
        :class:`ReferenceStateDict`.
    """
    entries: dict[str, tuple[tuple[int, ...], str, str]] = {}
    non_persistent: dict[str, tuple[int, ...]] = {}
    with open(tsv_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].split("\t")[:2] != ["key", "shape"]:
        raise ValueError(f"{tsv_path} is not a reference state-dict table (header 'key\\tshape\\t...' expected)")
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line.startswith("#"):
            # "# non-persistent buffer (not in state_dict): <key>\t<shape>\t<dtype>"
            fields = line.split(":", 1)[-1].strip().split("\t")
            non_persistent[fields[0].strip()] = _parse_shape(fields[1].strip())
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise ValueError(f"{tsv_path}:{lineno}: expected 4 tab-separated fields, got {len(fields)}")
        entries[fields[0]] = (_parse_shape(fields[1]), fields[2], fields[3])
    return ReferenceStateDict(entries=entries, non_persistent=non_persistent)


def diff_state_dict_against_reference(
    state_dict_shapes: Mapping[str, Any], tsv_path: str
) -> tuple[list[str], list[str], list[ShapeMismatch]]:
    """Strict comparison of a state dict's keys and shapes with an official reference table.

    Args:
        state_dict_shapes: key -> shape (tuple, ``torch.Size`` or a tensor, whose shape is used), e.g.
            ``{k: v.shape for k, v in model.state_dict().items()}``.
        tsv_path: reference table (see :func:`read_reference_state_dict`); its non-persistent buffers are not
            expected in the state dict.

    Returns:
        (missing, unexpected, shape_mismatch): reference keys absent from ``state_dict_shapes`` (reference order);
        keys absent from the reference (input order); (key, our shape, reference shape) triples.
    """
    reference = read_reference_state_dict(tsv_path).entries
    ours = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in state_dict_shapes.items()}
    missing = [k for k in reference if k not in ours]
    unexpected = [k for k in ours if k not in reference]
    mismatches = [(k, ours[k], reference[k][0]) for k in ours if k in reference and ours[k] != reference[k][0]]
    return missing, unexpected, mismatches
