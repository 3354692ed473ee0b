"""Mask-Adapter: mask-aware CLIP embeddings for open-vocabulary segmentation (detectron2 package).

Importing the package registers its backbones, heads, adapters, meta-architectures, datasets and mappers. It
reads no file and downloads nothing.
"""

from . import (  # noqa: F401
    data,
    modeling,
)
from .config import (
    add_mask_adapter_config,  # noqa: F401
    official_names,  # noqa: F401  (registers the official registry names)
)

__version__ = "0.1.0"
