"""Checkpoints: reading every supported format, safetensors, released models by short name, fusion, conversion.

Modules, each depending only on those listed before it:

- ``layout``: what a checkpoint holds (model state dict, other entries, fusion marker, generator keys);
- ``hub``: ``RELEASED_MODELS`` (short name -> config, file, model-hub repository), download and cache, and the one
  resolver of short names, :func:`resolve_released`;
- ``safetensors_io``: ``.safetensors`` reading and writing;
- ``loading``: any checkpoint file, ``MaskAdapterCheckpointer`` (detectron2), the generator weight source;
- ``reference``: official state-dict tables and the strict comparison with them;
- ``convert``: torch <-> safetensors; ``fusion``: stage-1 + generator weights (``tools/weight_fuse*.py``).
"""

from .convert import convert_checkpoint
from .fusion import EXPECTED_QUERIES, FusionError, fuse_checkpoints, fuse_files
from .hub import (
    HUB_REPO_ID,
    HUB_URL,
    RELEASED_MODELS,
    ReleasedModel,
    download_released,
    hub_cache_dir,
    hub_offline,
    resolve_released,
    resolve_weights,
    weights_cache_dir,
)
from .layout import (
    FUSION_MARKER_KEY,
    GENERATOR_PREFIXES,
    KNOWN_LEFTOVER_KEYS,
    format_shape_mismatches,
    generator_state,
    split_checkpoint,
)
from .loading import (
    MaskAdapterCheckpointer,
    checkpoint_format,
    load_checkpoint_file,
    load_generator_weights,
    load_pkl_without_code,
)
from .reference import ReferenceStateDict, diff_state_dict_against_reference, read_reference_state_dict
from .safetensors_io import (
    SAFETENSORS_SUFFIX,
    load_safetensors_checkpoint,
    read_safetensors_metadata,
    save_safetensors_checkpoint,
)

__all__ = [
    "EXPECTED_QUERIES",
    "FUSION_MARKER_KEY",
    "GENERATOR_PREFIXES",
    "HUB_REPO_ID",
    "HUB_URL",
    "KNOWN_LEFTOVER_KEYS",
    "RELEASED_MODELS",
    "SAFETENSORS_SUFFIX",
    "FusionError",
    "MaskAdapterCheckpointer",
    "ReferenceStateDict",
    "ReleasedModel",
    "checkpoint_format",
    "convert_checkpoint",
    "diff_state_dict_against_reference",
    "download_released",
    "format_shape_mismatches",
    "fuse_checkpoints",
    "fuse_files",
    "generator_state",
    "hub_cache_dir",
    "hub_offline",
    "load_checkpoint_file",
    "load_generator_weights",
    "load_pkl_without_code",
    "load_safetensors_checkpoint",
    "read_reference_state_dict",
    "read_safetensors_metadata",
    "resolve_released",
    "resolve_weights",
    "save_safetensors_checkpoint",
    "split_checkpoint",
    "weights_cache_dir",
]
