"""Library versions that can change results: logged at start-up, with every evaluation, and in result files."""

import functools
import platform
from importlib import metadata

__all__ = ["environment_versions"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def environment_versions() -> dict[str, str]:
    """Versions of Pillow, detectron2, torch, torchvision, open_clip, timm, numpy, opencv and python.

    The maintainers report that Pillow versions change the results (official issue #20), so every evaluation
    log and benchmark file records them.

    Returns:
        {"Pillow": ..., "detectron2": ..., "torch": ..., "torchvision": ..., "open_clip_torch": ..., "timm": ...,
        "numpy": ..., "opencv": ..., "python": ...}; "not installed" for a missing optional library.
    """
    import detectron2
    import numpy
    import PIL
    import torch

    return {
        "Pillow": PIL.__version__,
        "detectron2": detectron2.__version__,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "open_clip_torch": _version("open_clip_torch"),
        "timm": _version("timm"),
        "numpy": numpy.__version__,
        "opencv": (
            _version("opencv-python-headless")
            if _version("opencv-python") == "not installed"
            else _version("opencv-python")
        ),
        "python": platform.python_version(),
    }
