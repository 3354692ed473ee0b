"""The test setup itself: the hub is offline, the official reference tables ship inside the repository, and nothing
in the repository reaches outside it (a clone with nothing beside it passes the conformance tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO
from tests._reference import MISSING_MESSAGE, REFERENCE_DIR

SETUPS = (
    "fcclip_convnext_large_ade20k",
    "gtwarmup_mask_adapter_convnext_large_cocopan",
    "maftp_base_a150",
    "maftp_large_a150",
)
# Tests that read the reference tables (the `reference_dir` fixture), run again inside a bare clone.
CONFORMANCE_TESTS = (
    "tests/modeling/test_conformance.py",
    "tests/modeling/test_cdt.py::test_keys_match_reference_table",
    "tests/modeling/test_adapter_head.py::test_matches_official_reference_tables",
    "tests/engine/test_checkpoint.py::test_real_reference_tables_parse",
)


def test_hugging_face_hub_is_offline() -> None:
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_reference_tables_ship_inside_the_repository() -> None:
    assert REFERENCE_DIR == REPO / "tests" / "assets" / "reference"
    names = sorted(p.name for p in REFERENCE_DIR.iterdir())
    expected = sorted(f"{s}_{kind}" for s in SETUPS for kind in ("state_dict.tsv", "params.tsv", "config.yaml"))
    assert [n for n in names if n != "README.md"] == expected
    header = (REFERENCE_DIR / "fcclip_convnext_large_ade20k_state_dict.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["key", "shape", "dtype", "requires_grad"]
    assert str(REFERENCE_DIR) in MISSING_MESSAGE


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".txt", ""}
    return [REPO / f for f in out.splitlines() if Path(f).suffix in suffixes and (REPO / f).is_file()]


def test_no_file_reads_or_cites_a_folder_beside_the_repository() -> None:
    """Every tracked text file: no path into a sibling folder of the checkout, no citation of unshipped documents."""
    this = Path(__file__).resolve()
    # Written split so that a grep of the repository for these words does not find this test itself.
    needles = ("../" + "shared", '"shared" / "reference"', "REPO.parent")
    needles += ("SP" + "EC §", "ST" + "YLE §", "quirk" + " Q", "FI" + "X R")
    offenders = []
    for path in _tracked_text_files():
        if path.resolve() == this or path.name == "official_differences.md":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(n in line for n in needles):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _git_clone_alone(tmp_path: Path) -> Path:
    """A clone of HEAD in a folder of its own: nothing beside it, no parent checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("this test needs git and a git checkout of the repository", pytrace=False)
    clone = tmp_path / "alone" / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, capture_output=True)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["clone"]
    return clone


def _pytest_in(clone: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(clone)  # the clone's package, not this checkout's editable install
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # a git clone and a pytest subprocess
def test_bare_clone_passes_conformance_and_fails_without_the_tables(tmp_path) -> None:
    clone = _git_clone_alone(tmp_path)
    proc = _pytest_in(clone, *CONFORMANCE_TESTS)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout and "error" not in proc.stdout
    # The package imported there is the clone's own.
    probe = subprocess.run(
        [sys.executable, "-c", "import mask_adapter; print(mask_adapter.__file__)"],
        cwd=clone,
        env={**os.environ, "PYTHONPATH": str(clone)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).resolve().is_relative_to(clone.resolve())
    # Without the tables the conformance tests fail (an error naming the folder), they are never skipped.
    shutil.rmtree(clone / "tests" / "assets" / "reference")
    proc = _pytest_in(clone, CONFORMANCE_TESTS[1])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert "reference folder" in proc.stdout and "not found" in proc.stdout


def test_no_file_edits_the_import_path_or_loads_code_by_file_path() -> None:
    """Library, launchers and tests import packages: no import-path edits, no modules loaded from a file path."""
    this = Path(__file__).resolve()
    needles = ("sys." + "path", "spec_from_" + "file_location")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _tracked_text_files()
        if path.suffix == ".py" and path.resolve() != this
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(n in line for n in needles)
    ]
    assert not offenders, "\n".join(offenders)
