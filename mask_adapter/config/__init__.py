"""Configuration: key declarations, validation and "auto" values, YAML/command-line merging, official names.

- ``keys``: :func:`add_mask_adapter_config`, every key declared once with its default (official spelling kept);
- ``resolve``: :func:`check_config` and the resolution of "auto" values from a meta-architecture's
  :class:`ArchDefaults` (no modeling imports);
- ``merge``: :func:`merge_config` / :func:`build_config`, one-line errors for unknown keys, wrong types, bad YAML;
- ``official_names``: the official registry names (``MAFT_Plus``, ``MASK_Adapter``, ``CLIP``, ...) that official
  YAML files use, registered as aliases of our classes. It imports the modeling code, so this ``__init__`` does not
  import it; ``import mask_adapter`` does.

Typical use::

    cfg = build_config("configs/tiny/fcclip_tiny.yaml", ["SOLVER.MAX_ITER", "10"])
"""

from .keys import add_mask_adapter_config
from .merge import build_config, merge_config
from .resolve import (
    COMPILE_MODES,
    ArchDefaults,
    arch_defaults,
    check_config,
    resolve_cdt_variant,
    resolve_cos_stop_grad,
    resolve_dense_projection,
    resolve_match_pred_threshold,
    resolve_seed,
)

__all__ = [
    "COMPILE_MODES",
    "ArchDefaults",
    "add_mask_adapter_config",
    "arch_defaults",
    "build_config",
    "check_config",
    "merge_config",
    "resolve_cdt_variant",
    "resolve_cos_stop_grad",
    "resolve_dense_projection",
    "resolve_match_pred_threshold",
    "resolve_seed",
]
