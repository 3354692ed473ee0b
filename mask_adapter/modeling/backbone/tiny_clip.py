"""A tiny random open_clip ConvNeXt model for tests, CPU quick-starts and the bundled demo.

``tiny_convnext_atto``: timm ``convnext_atto`` trunk (stage widths 40/80/160/320, so C_raw = 320), an MLP
projection to D = 64 as in ConvNeXt-L CLIP, and a 1-layer, 64-wide text tower. Built with random weights.
"""

from importlib import resources

import open_clip

TINY_CLIP_MODEL_NAME = "tiny_convnext_atto"

__all__ = ["TINY_CLIP_MODEL_NAME", "ensure_model_config_registered"]


def ensure_model_config_registered(model_name: str) -> None:
    """Make the package's bundled open_clip model configs known to open_clip (idempotent, lazy)."""
    if open_clip.get_model_config(model_name) is not None:
        return
    cfg_file = resources.files(__package__).joinpath("model_configs", f"{model_name}.json")
    if cfg_file.is_file():
        open_clip.add_model_config(str(cfg_file))
