"""Released Mask-Adapter models for the demo: short names (``fcclip-l-ma`` ...), their configs, cached downloads.

``resolve_weights`` turns any weights argument of the demo (short name, file, URL or "") into a local file.
"""

import logging
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

__all__ = [
    "HUB_URL",
    "MODEL_ZOO",
    "ModelSpec",
    "REPO_ROOT",
    "download_weights",
    "resolve_weights",
    "weights_cache_dir",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# Model-hub mirror of the released checkpoints (SPEC §10).
HUB_URL = "https://huggingface.co/owl10/Mask-Adapter/resolve/main/{file}"


@dataclass(frozen=True)
class ModelSpec:
    """A released model: the config to load it with (relative to the repository) and its official file name."""

    config: str
    file: str

    @property
    def url(self) -> str:
        return HUB_URL.format(file=self.file)


# Short names accepted by --weights. The MAFTP-B+MA file name is not published in the official README; the name
# below follows the other two files.
MODEL_ZOO: Dict[str, ModelSpec] = {
    "fcclip-l-ma": ModelSpec(
        "configs/mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml",
        "fcclip_convnext_large_maskadapter.pth",
    ),
    "maftp-b-ma": ModelSpec(
        "configs/mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml",
        "maftp_convnext_base_maskadapter.pth",
    ),
    "maftp-l-ma": ModelSpec(
        "configs/mixed-mask-training/maftp/semantic/train_semantic_large_eval_a150.yaml",
        "maftp_convnext_large_maskadapter.pth",
    ),
}


def weights_cache_dir() -> Path:
    """Where released checkpoints are cached: $MASK_ADAPTER_CACHE, else <torch hub dir>/checkpoints/mask_adapter."""
    env = os.environ.get("MASK_ADAPTER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / "mask_adapter"


def _fetch(url: str, dest: str) -> None:
    """Download ``url`` to ``dest`` (torch.hub's downloader; replaced in tests)."""
    torch.hub.download_url_to_file(url, dest, progress=True)


def download_weights(name: str, cache_dir: Optional[Path] = None) -> str:
    """Local path of a released checkpoint, downloaded once into the cache.

    Args:
        name: a key of ``MODEL_ZOO``.
        cache_dir: default ``weights_cache_dir()``.

    Returns:
        Path of the cached file.

    Raises:
        FileNotFoundError: the download failed (e.g. offline); the message says where to put the file.
    """
    spec = MODEL_ZOO[name]
    cache = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    dest = cache / spec.file
    if dest.is_file():
        return str(dest)
    cache.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s from %s to %s", name, spec.url, dest)
    try:
        _fetch(spec.url, str(dest))
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise FileNotFoundError(
            f"cannot download {name} from {spec.url} ({reason}); without network, download {spec.file} elsewhere "
            f"and put it at {dest} (or pass --weights /path/to/{spec.file})"
        ) from None
    return str(dest)


def resolve_weights(weights: str, cache_dir: Optional[Path] = None) -> str:
    """A weights argument -> a local file (or "" for none).

    Args:
        weights: "" (random / config default), a local file, a short name of ``MODEL_ZOO``, or a URL / detectron2
            path understood by detectron2's PathManager (cached by iopath).
        cache_dir: where short names are downloaded to; default ``weights_cache_dir()``.

    Returns:
        The local path, or "".
    """
    if not weights:
        return ""
    if weights in MODEL_ZOO:
        return download_weights(weights, cache_dir)
    if "://" in weights:
        from detectron2.utils.file_io import PathManager

        try:
            return PathManager.get_local_path(weights)
        except (urllib.error.URLError, OSError) as e:
            raise FileNotFoundError(
                f"cannot fetch weights {weights} ({e}); download the file and pass its path"
            ) from None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {weights}; give an existing file or one of the short names "
            f"{', '.join(MODEL_ZOO)}"
        )
    return str(path)
