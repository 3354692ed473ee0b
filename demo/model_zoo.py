"""Released Mask-Adapter models for the demo: the short names of ``mask_adapter.hub`` and the repository root.

``resolve_weights`` turns any weights argument of the demo (short name, file, URL or "") into a local file; short
names go through the model hub (cache honoured, HF_HUB_OFFLINE=1 works from a filled cache) with a direct-URL
fallback. See ``mask_adapter/hub.py``.
"""

from pathlib import Path

from mask_adapter.checkpoint.hub import (
    HUB_URL,
    RELEASED_MODELS,
    ReleasedModel,
    download_released,
    resolve_weights,
    weights_cache_dir,
)

__all__ = [
    "HUB_URL",
    "MODEL_ZOO",
    "ModelSpec",
    "REPO_ROOT",
    "download_weights",
    "resolve_weights",
    "weights_cache_dir",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

# The demo's names for the package's table (one table: mask_adapter.hub.RELEASED_MODELS).
MODEL_ZOO = RELEASED_MODELS
ModelSpec = ReleasedModel
download_weights = download_released
