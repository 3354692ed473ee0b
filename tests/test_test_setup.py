"""The test setup itself: the hub is offline, and the reference folder is found from the project root or fails."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import _reference

REPO = Path(__file__).resolve().parents[1]


def test_hugging_face_hub_is_offline() -> None:
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_reference_folder_is_found_from_the_project_root(monkeypatch) -> None:
    monkeypatch.delenv(_reference.REFERENCE_ENV, raising=False)
    try:
        default = importlib.reload(_reference).REFERENCE_DIR
        monkeypatch.setenv(_reference.REFERENCE_ENV, "/elsewhere/reference")
        override = importlib.reload(_reference)
        assert override.REFERENCE_DIR == Path("/elsewhere/reference")
        assert (
            "/elsewhere/reference" in override.MISSING_MESSAGE and _reference.REFERENCE_ENV in override.MISSING_MESSAGE
        )
    finally:
        monkeypatch.undo()
        importlib.reload(_reference)
    assert default == REPO.parent / "shared" / "reference"


@pytest.mark.slow  # subprocess
def test_missing_reference_folder_fails_instead_of_skipping(tmp_path) -> None:
    missing = tmp_path / "no_reference"
    env = {**os.environ, _reference.REFERENCE_ENV: str(missing), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_cdt.py::test_keys_match_reference_table",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert f"reference folder {missing} not found" in proc.stdout
