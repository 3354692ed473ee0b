"""Helpers shared by the ``datasets/prepare_*.py`` scripts: arguments, input checks, label I/O, id maps.

Every script is idempotent (existing outputs are skipped), shows tqdm progress, reads class definitions from the
package vocabularies and fails with one line naming the missing or unreadable input.
"""

import argparse
import os
import shutil
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from .vocabulary import load_vocabulary_entries

__all__ = [
    "default_root",
    "base_parser",
    "require",
    "read_label",
    "read_rgb",
    "write_label",
    "copy_file",
    "progress",
    "id_lut",
    "apply_lut",
    "read_split_list",
    "read_pascal_context_label",
    "vocab_id_to_index",
]

T = TypeVar("T")


def default_root() -> str:
    """The dataset root: ``$DETECTRON2_DATASETS`` or "datasets"."""
    return os.getenv("DETECTRON2_DATASETS", "datasets")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with ``--root`` (default ``$DETECTRON2_DATASETS`` or "datasets")."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        default=default_root(),
        help="dataset root (default: $DETECTRON2_DATASETS or 'datasets')",
    )
    return parser


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
    """Write a label map: uint8 -> PNG, uint16 -> 16-bit PNG or TIFF (by extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(label).save(path)


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` unless ``dst`` exists."""
    if not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def progress(items: Iterable[T], desc: str, total: Optional[int] = None) -> Iterator[T]:
    """tqdm progress bar over ``items``."""
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, total=total, dynamic_ncols=True))


def vocab_id_to_index(key: str, offset: int = 0) -> Dict[int, int]:
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


def read_split_list(path: str) -> List[str]:
    """Image ids of a VOC-style split file (one id per line)."""
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def read_pascal_context_label(labels_dir: str, image_id: str) -> np.ndarray:
    """459-class Pascal-Context label map (0 = unlabeled, 1..459) of one image.

    Accepts the official ``trainval/<id>.mat`` files (key ``LabelMap``) or pre-extracted ``<id>.png`` label maps
    (16-bit or 8-bit) in the same label space.
    """
    mat, png = os.path.join(labels_dir, f"{image_id}.mat"), os.path.join(
        labels_dir, f"{image_id}.png"
    )
    if os.path.exists(mat):
        from scipy.io import loadmat

        try:
            return np.asarray(loadmat(mat)["LabelMap"], dtype=np.int64)
        except (ValueError, KeyError, OSError, TypeError) as e:
            raise ValueError(
                f"Cannot read Pascal-Context label map '{mat}' ({type(e).__name__}: {e}); "
                "re-extract trainval.tar.gz"
            ) from None
    if os.path.exists(png):
        return read_label(png).astype(np.int64)
    raise FileNotFoundError(
        f"Pascal-Context label map for image '{image_id}' not found ('{mat}' or '{png}'); extract trainval.tar.gz "
        "(or pass --labels with pre-extracted label maps)"
    )


def check_ids(ids: Sequence[str], what: str, path: str) -> Sequence[str]:
    """Raise when a split list is empty."""
    if not ids:
        raise ValueError(f"{what} '{path}' lists no image")
    return ids


def read_ade_catid_mapping(path: str) -> Dict[int, int]:
    """ADE20K ``ade20k_instance_catid_mapping.txt``: {instance class (1..100): 0-based ADE-150 class}.

    The file has a header line, then "instance_id  sceneparse150_id  full_ade20k_id" rows (an instance id may
    appear on several rows with the same ADE-150 id).
    """
    require(
        path,
        "ADE20K instance category mapping",
        "pass --catid-mapping (datasets/ade20k_instance_catid_mapping.txt)",
    )
    mapping: Dict[int, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f):
            parts = line.split()
            if lineno == 0 or not parts:
                continue
            if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise ValueError(
                    f"{path}:{lineno + 1}: expected 'instance_id sceneparse150_id ...', got {line!r}"
                )
            mapping[int(parts[0])] = int(parts[1]) - 1
    return mapping


def ade_instances(ins_rgb: np.ndarray, mapping: Mapping[int, int], path: str) -> List[tuple]:
    """Instances of an ADE ``annotations_instance`` PNG (R = instance class 1..100, G = instance id, 0 = none).

    Returns:
        [(0-based ADE-150 class, (H, W) bool mask)] in instance-id order.
    """
    classes, ids = ins_rgb[:, :, 0].astype(np.int64), ins_rgb[:, :, 1]
    out = []
    for inst in np.unique(ids):
        if inst == 0:
            continue
        mask = ids == inst
        cats = np.unique(classes[mask])
        if len(cats) != 1 or int(cats[0]) not in mapping:
            raise ValueError(
                f"Instance {inst} of '{path}' has instance classes {cats.tolist()}; expected one class "
                "listed in ade20k_instance_catid_mapping.txt"
            )
        out.append((mapping[int(cats[0])], mask))
    return out


def mask_bbox(mask: np.ndarray) -> List[int]:
    """[x, y, w, h] box of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]
