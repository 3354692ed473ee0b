"""Shared pytest fixtures for the mask_adapter test suite.

- ``seed`` (autouse): every test starts from the same RNG state (python, numpy, torch).
- ``tiny_clip`` (session): a frozen ``CLIPBackbone`` around the tiny random open_clip model ``tiny_convnext_atto``
  (trunk widths 40/80/160/320, embedding width 64, 1-layer text tower). Tests must not modify it; build a fresh one
  when a test needs to change weights.
- ``reference_dir``: the official state-dict tables shipped in ``tests/assets/reference`` (``tests/_reference.py``);
  tests that need it FAIL when it is absent.

Hugging Face Hub access is offline for the whole run (HF_HUB_OFFLINE=1, set before anything imports huggingface_hub).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download; set before huggingface_hub reads it at import

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests._reference import MISSING_MESSAGE, REFERENCE_DIR

TINY_CLIP_NAME = "tiny_convnext_atto"


@pytest.fixture(autouse=True)
def seed() -> int:
    """Seed python, numpy and torch before every test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def tiny_clip():
    """Session-wide tiny frozen CLIP backbone (random weights, seeded); read-only for tests."""
    from mask_adapter.modeling.backbone.clip import CLIPBackbone

    state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    try:
        backbone = CLIPBackbone(model_name=TINY_CLIP_NAME, pretrained="")
    finally:
        torch.random.set_rng_state(state)
    return backbone


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the official reference tables; the test fails with one clear message when it is missing."""
    if not REFERENCE_DIR.is_dir():
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    return REFERENCE_DIR


@pytest.fixture(autouse=True)
def _drop_new_log_handlers():
    """Remove logging handlers a test added (e.g. a CLI's setup_logger writing to that test's captured stream, which
    is closed afterwards), so later tests do not log into a closed stream."""
    import logging

    names = [None, *logging.root.manager.loggerDict]
    before = {name: list(logging.getLogger(name).handlers) for name in names}
    yield
    for name in [None, *logging.root.manager.loggerDict]:
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            if handler not in before.get(name, ()):
                log.removeHandler(handler)


@pytest.fixture()
def one_thread():
    """One intra-op thread for the test (tiny tensors run faster without thread hand-offs on 2 cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
