"""The test suite, a package so that test modules import shared helpers as ``tests._builders`` and so on.

Layout mirrors the library: ``modeling/``, ``data/``, ``evaluation/``, ``engine/`` (config, training, checkpoints),
``cli/`` (command lines and the demo); shared builders and data files live here (``_builders.py``, ``assets/``).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository root
ASSETS = Path(__file__).resolve().parent / "assets"  # files the tests read (reference tables, the loss lock)
