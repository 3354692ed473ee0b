"""Released Mask-Adapter checkpoints by short name (``fcclip-l-ma``, ...), fetched from the model hub.

``RELEASED_MODELS`` is the one table of released models (those linked from the official README): short name ->
config to load it with (relative
to the repository), model-hub repository and file. ``download_released`` turns a short name into a local file:

1. a file already downloaded by the direct-URL route (in ``weights_cache_dir()``) is used as it is;
2. ``huggingface_hub.hf_hub_download(repo_id, filename, cache_dir=...)`` into the hub cache: the ``cache_dir``
   argument, else $HF_HUB_CACHE, else $HF_HOME/hub, else huggingface_hub's default (~/.cache/huggingface/hub).
   With HF_HUB_OFFLINE=1 only the cache is read; a file that is not there ends with one line saying where to put it;
3. when the hub call fails otherwise (no network, hub error, huggingface_hub not installed), the direct URL is
   downloaded with torch.hub into ``weights_cache_dir()``.

``resolve_released`` is the one place that turns a short name into a file. ``resolve_weights`` accepts every weights
argument of the tools: "", a short name, a URL, or a local file. The checkpointer
(``mask_adapter.checkpoint.MaskAdapterCheckpointer``) resolves short names in MODEL.WEIGHTS through
``resolve_released``, so ``train_net.py`` and the tools take them too. Nothing here runs at import.
"""

import logging
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch

from ..utils import PathLike

__all__ = [
    "HUB_REPO_ID",
    "HUB_URL",
    "RELEASED_MODELS",
    "ReleasedModel",
    "download_released",
    "hub_cache_dir",
    "hub_offline",
    "resolve_released",
    "resolve_weights",
    "weights_cache_dir",
]

logger = logging.getLogger(__name__)

# Model-hub mirror of the released checkpoints (the official files are on Google Drive) and its direct-download URL.
HUB_REPO_ID = "owl10/Mask-Adapter"
HUB_REVISION = "main"
HUB_URL = "https://huggingface.co/owl10/Mask-Adapter/resolve/main/{file}"


@dataclass(frozen=True)
class ReleasedModel:
    """A released model: its config (relative to the repository), its file and the hub repository holding it."""

    config: str
    file: str
    repo_id: str = HUB_REPO_ID

    @property
    def url(self) -> str:
        """Direct download URL of the file."""
        return HUB_URL.format(file=self.file)


# Short names accepted by --weights / MODEL.WEIGHTS. The MAFTP-B+MA file name is not published in the official
# README; the name below follows the other two files.
RELEASED_MODELS: dict[str, ReleasedModel] = {
    "fcclip-l-ma": ReleasedModel(
        "configs/mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml",
        "fcclip_convnext_large_maskadapter.pth",
    ),
    "maftp-b-ma": ReleasedModel(
        "configs/mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml",
        "maftp_convnext_base_maskadapter.pth",
    ),
    "maftp-l-ma": ReleasedModel(
        "configs/mixed-mask-training/maftp/semantic/train_semantic_large_eval_a150.yaml",
        "maftp_convnext_large_maskadapter.pth",
    ),
}

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (read now, not at import) or huggingface_hub's own offline mode is on."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir(cache_dir: PathLike | None = None) -> Path:
    """The hub cache used for released models: ``cache_dir``, else $HF_HUB_CACHE, else $HF_HOME/hub, else the
    default of huggingface_hub (read when called, so a changed environment counts)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    try:
        from huggingface_hub import constants
    except ImportError:
        return Path("~/.cache/huggingface/hub").expanduser()
    return Path(constants.HF_HUB_CACHE)


def weights_cache_dir() -> Path:
    """Where the direct-URL route caches files: $MASK_ADAPTER_CACHE, else <torch hub dir>/checkpoints/mask_adapter."""
    env = os.environ.get("MASK_ADAPTER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / "mask_adapter"


def _fetch(url: str, dest: str) -> None:
    """Download ``url`` to ``dest`` (torch.hub's downloader; replaced in tests)."""
    torch.hub.download_url_to_file(url, dest, progress=True)


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _from_hub(spec: ReleasedModel, cache: Path, offline: bool) -> str:
    """hf_hub_download into ``cache``; raises ImportError / OSError / ValueError-like hub errors on failure."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(
        spec.repo_id, spec.file, revision=HUB_REVISION, cache_dir=str(cache), local_files_only=offline
    )


def download_released(name: str, cache_dir: PathLike | None = None) -> str:
    """Local path of a released checkpoint (see the module docstring for the order of the routes).

    Args:
        name: a key of ``RELEASED_MODELS``.
        cache_dir: the hub cache (default: see :func:`hub_cache_dir`).

    Returns:
        Path of the file, in the hub cache (``.../models--owl10--Mask-Adapter/snapshots/<commit>/<file>``) or in
        ``weights_cache_dir()``.

    Raises:
        KeyError: unknown name. FileNotFoundError: not cached and no route could download it; the message (one
        line) says where to put the file.
    """
    spec = RELEASED_MODELS[name]
    dest = weights_cache_dir() / spec.file
    if dest.is_file():
        return str(dest)
    cache = hub_cache_dir(cache_dir)
    offline = hub_offline()
    try:
        path = _from_hub(spec, cache, offline)
        logger.info("%s: %s (model hub %s)", name, path, spec.repo_id)
        return path
    except ImportError:
        hub_error = "huggingface_hub is not installed"
    except (OSError, ValueError) as e:  # hub errors are OSError (HTTP, not cached) or ValueError (bad request)
        hub_error = _reason(e)
    put_it = (
        f"put {spec.file} at {dest} or in the hub cache {cache} (hf download {spec.repo_id} {spec.file} "
        f"--cache-dir {cache}), or pass --weights /path/to/{spec.file}"
    )
    if offline:
        raise FileNotFoundError(
            f"{name} ({spec.repo_id}/{spec.file}) is not in the hub cache {cache} and HF_HUB_OFFLINE=1 forbids "
            f"downloading; {put_it}"
        )
    logger.warning("model hub failed for %s (%s); trying %s", name, hub_error, spec.url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(spec.url, str(dest))
    except (urllib.error.URLError, OSError) as e:
        raise FileNotFoundError(
            f"cannot download {name}: model hub {spec.repo_id} ({hub_error}), direct URL {spec.url} ({_reason(e)}); "
            f"without network, {put_it}"
        ) from None
    return str(dest)


def resolve_released(name_or_path: str, cache_dir: PathLike | None = None) -> str:
    """The one resolver of short names: a key of ``RELEASED_MODELS`` -> its local file (downloaded if needed,
    :func:`download_released`); any other string is returned unchanged.

    Raises:
        FileNotFoundError: a short name whose file cannot be found or fetched (one-line message).
    """
    if name_or_path in RELEASED_MODELS:
        return download_released(name_or_path, cache_dir)
    return name_or_path


def resolve_weights(weights: str, cache_dir: PathLike | None = None) -> str:
    """A weights argument -> a local file (or "" for none).

    Args:
        weights: "" (random / config default), a short name of ``RELEASED_MODELS``, a URL / detectron2 path understood
            by detectron2's PathManager (cached by iopath), or a local file (.pth, .pkl, .safetensors).
        cache_dir: the hub cache for short names (default: see :func:`hub_cache_dir`).

    Returns:
        The local path, or "".

    Raises:
        FileNotFoundError: a missing file, or a short name / URL that cannot be fetched (one-line message).
    """
    if not weights:
        return ""
    if weights in RELEASED_MODELS:
        return resolve_released(weights, cache_dir)
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
            f"{', '.join(RELEASED_MODELS)}"
        )
    return str(path)
