"""File and label-map I/O of the preparation scripts: input checks, reading / writing label images, copying files
and id lookup tables (``progress`` is :func:`mask_adapter.utils.progress.progress`, re-exported).

Shapes: label maps (H, W); RGB images (H, W, 3) uint8.
"""

import os
import shutil
from collections.abc import Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from ...utils.atomic import atomic_save, atomic_save_image, ensure_output_dir
from ...utils.progress import progress
from ..vocabulary import load_vocabulary_entries

__all__ = [
    "require",
    "read_label",
    "read_rgb",
    "write_label",
    "copy_file",
    "progress",
    "vocab_id_to_index",
    "id_lut",
    "apply_lut",
]


def require(path: str, what: str, hint: str) -> str:
    """Return ``path`` if it exists, else raise one ``FileNotFoundError`` line naming it and how to get it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at '{path}'; {hint}")
    return path


def read_label(path: str) -> np.ndarray:
    """Label image as an array (palette PNGs give their indices); a corrupt file raises one ValueError line."""
    try:
        with Image.open(path) as img:
            return np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(
            f"Cannot read annotation image '{path}' ({type(e).__name__}: {e}); the file is corrupt or not an "
            "image: re-extract it from the original archive"
        ) from None


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image; a corrupt file raises one ValueError line."""
    arr = read_label(path)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return arr[:, :, :3]


def write_label(path: str, label: np.ndarray) -> None:
    """Write a label map: uint8 -> PNG, uint16 -> 16-bit PNG or TIFF (by extension). Atomic: an interrupted run
    leaves no partial file, which a re-run would otherwise skip as done."""
    ensure_output_dir(os.path.dirname(path))
    atomic_save_image(path, Image.fromarray(label))


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` unless ``dst`` exists (atomically, like :func:`write_label`)."""
    if not os.path.exists(dst):
        ensure_output_dir(os.path.dirname(dst))
        with open(src, "rb") as f:
            atomic_save(dst, lambda out: shutil.copyfileobj(f, out))
        shutil.copystat(src, dst)


def vocab_id_to_index(key: str, offset: int = 0) -> dict[int, int]:
    """{vocabulary line id + offset: class index} of a shipped vocabulary (invalid ids skipped)."""
    return {i + offset: k for k, (i, _) in enumerate(load_vocabulary_entries(key))}


def id_lut(mapping: Mapping[int, int], size: int, fill: int, dtype=np.uint8) -> np.ndarray:
    """Lookup table of ``size`` entries: lut[src] = mapping[src], ``fill`` elsewhere."""
    lut = np.full(size, fill, dtype=dtype)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def apply_lut(label: np.ndarray, lut: np.ndarray, path: str) -> np.ndarray:
    """``lut[label]``; values beyond the table raise one ValueError line naming the file."""
    if label.size and int(label.max()) >= len(lut):
        raise ValueError(
            f"Annotation '{path}' has label value {int(label.max())}, outside the expected range 0..{len(lut) - 1}; "
            "is it the right annotation type for this script?"
        )
    return lut[label]
