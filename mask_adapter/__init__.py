"""Mask-Adapter: mask-aware CLIP embeddings for open-vocabulary segmentation (detectron2 package).

Importing the package registers its backbones, heads, adapters, meta-architectures, datasets and mappers. It
reads no file and downloads nothing.

Python API (imported on first use): ``mask_adapter.Segmenter.from_pretrained(name_or_path)`` builds a model;
calling it segments an image with any vocabulary (see ``mask_adapter.api.segmenter``).
"""

from typing import Any

from . import (  # noqa: F401
    data,
    modeling,
)
from .config import (
    add_mask_adapter_config,  # noqa: F401
    official_names,  # noqa: F401  (registers the official registry names)
)

__version__ = "0.1.0"

# Names of the Python API, loaded lazily so that importing the package stays light.
_LAZY = {"Segmenter": "mask_adapter.api.segmenter", "SegmentationResult": "mask_adapter.api.segmenter"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mask_adapter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
