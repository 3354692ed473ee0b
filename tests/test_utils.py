"""Small shared helpers of mask_adapter.utils: library versions, DDP unwrapping, the path type."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mask_adapter.utils import PathLike
from mask_adapter.utils.ddp import unwrap
from mask_adapter.utils.env import environment_versions
from tests import REPO


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


_PAGE_FAULTS = """
import resource, sys
import torch
from mask_adapter.utils.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def step():
    block = torch.empty(64 * 2**20 // 4)  # 64 MB: above glibc's largest mmap threshold
    block.fill_(1.0)
    return float(block[-1])
for _ in range(3):  # warm-up: the heap reaches its working size
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's"
)
def test_keep_freed_memory_reuses_large_blocks_without_page_faults():
    """glibc's default maps every 64 MB tensor afresh (16,384 page faults each); after keep_freed_memory() the
    freed block is reused: after three warm-up tensors, the next six fault at most one tensor's pages in all (the heap
    may still grow once) instead of six times as many."""
    runs = {}
    for mode in ("default", "keep"):
        out = subprocess.run(
            [sys.executable, "-c", _PAGE_FAULTS, mode], capture_output=True, text=True, check=True, cwd=REPO
        )
        kept, faults = out.stdout.split()
        runs[mode] = (kept, int(faults))
    pages = 64 * 2**20 // 4096
    assert runs["default"][0] == "None" and runs["default"][1] > 5 * pages
    assert runs["keep"][0] == "True" and runs["keep"][1] <= pages + 1_000


def test_memory_flag_opts_out_and_only_program_entry_points_apply_it(monkeypatch):
    from mask_adapter.apps import demo, infer
    from mask_adapter.evaluation import command
    from mask_adapter.utils import benchmark, memory
    from mask_adapter.utils.cli import apply_memory_flag

    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    assert apply_memory_flag(["--release-freed-memory", "--quiet"]) is False and calls == []
    assert apply_memory_flag(["--quiet"]) is True and calls == [1]
    assert demo.get_parser().parse_args(["--release-freed-memory"]).release_freed_memory
    assert infer.parse_args(["--input", "x", "--output", "y", "--release-freed-memory"]).release_freed_memory
    assert command.parse_args(["--config-file", "c.yaml", "--release-freed-memory"]).release_freed_memory
    assert benchmark.parse_args(["--release-freed-memory", "text"]).release_freed_memory
    # the programs apply it before running main; main itself (a Python API too) does not
    entries = [(demo, "cli"), (infer, "command_line"), (command, "command_line")]
    for module, entry in entries:
        monkeypatch.setattr(module, "run_cli", lambda main, argv: 0)
        calls.clear()
        assert getattr(module, entry)(["--release-freed-memory"]) == 0 and calls == [], module.__name__
        assert getattr(module, entry)(["--quiet"]) == 0 and calls == [1], module.__name__
    monkeypatch.setattr(benchmark, "main", lambda argv=None: 0)
    monkeypatch.setitem(benchmark._MALLOC_STATE, "keeps freed memory", False)  # restored after the test
    for argv, expected in ((["--release-freed-memory", "text"], []), (["text"], [1])):
        calls.clear()
        monkeypatch.setattr(sys, "argv", ["benchmark.py", *argv])
        assert benchmark.cli() == 0 and calls == expected
        assert benchmark.cpu_isa().endswith("malloc keeps freed memory" if expected else "malloc default")
