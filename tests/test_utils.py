"""Small shared helpers of mask_adapter.utils: library versions, DDP unwrapping, the path type."""

import os
from pathlib import Path

import torch
from torch import nn

from mask_adapter.utils import PathLike
from mask_adapter.utils.ddp import unwrap
from mask_adapter.utils.env import environment_versions


def test_environment_versions_name_the_libraries_that_change_results():
    versions = environment_versions()
    assert list(versions) == [
        "Pillow",
        "detectron2",
        "torch",
        "torchvision",
        "open_clip_torch",
        "timm",
        "numpy",
        "opencv",
        "python",
    ]
    assert versions["torch"] == torch.__version__
    assert all(isinstance(v, str) and v for v in versions.values())


def test_unwrap_returns_a_plain_module_itself():
    model = nn.Linear(2, 2)
    assert unwrap(model) is model


def test_path_like_accepts_str_and_pathlib():
    assert isinstance("a", PathLike) and isinstance(Path("a"), PathLike) and not isinstance(3, PathLike)
    assert isinstance(Path("a"), os.PathLike)
