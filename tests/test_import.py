"""``import mask_adapter`` from an unrelated working directory (package data, one
registration, lazy optional compiled op).

The import runs in a fresh interpreter whose CWD is a temporary folder. An audit hook records every file opened or
listed and every socket connection during the import; nothing may touch the CWD (relative paths included) and
nothing may connect to the network. The registered names are reported back as JSON.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import json, os, sys
cwd = os.path.realpath(os.getcwd())
events = []

def _is_cwd_path(p):
    if isinstance(p, int) or p is None:
        return False
    p = os.fsdecode(p)
    if not os.path.isabs(p):
        return True
    return os.path.realpath(p) == cwd or os.path.realpath(p).startswith(cwd + os.sep)

def _hook(event, args):
    if event in ("open", "os.listdir", "os.scandir", "os.chdir") and args and _is_cwd_path(args[0]):
        events.append([event, os.fsdecode(args[0])])
    elif event == "socket.connect":
        events.append([event, repr(args[1:])])

sys.addaudithook(_hook)
import mask_adapter
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, SEM_SEG_HEADS_REGISTRY
from mask_adapter.modeling.adapter.build import MASK_ADAPTER_REGISTRY
try:
    from mask_adapter.modeling.transformer_decoder.build import TRANSFORMER_DECODER_REGISTRY
    decoders = sorted(k for k, _ in TRANSFORMER_DECODER_REGISTRY)
except ImportError:
    decoders = None
seen = list(events)
print("@@" + json.dumps({
    "events": seen,
    "cwd_entries": sorted(os.listdir(cwd)),
    "file": mask_adapter.__file__,
    "has_config_adder": callable(getattr(mask_adapter, "add_mask_adapter_config", None)),
    "backbones": sorted(k for k, _ in BACKBONE_REGISTRY),
    "meta_archs": sorted(k for k, _ in META_ARCH_REGISTRY),
    "sem_seg_heads": sorted(k for k, _ in SEM_SEG_HEADS_REGISTRY),
    "adapters": sorted(k for k, _ in MASK_ADAPTER_REGISTRY),
    "decoders": decoders,
}))
"""


pytestmark = pytest.mark.slow  # every test reads the report of one subprocess import


@pytest.fixture(scope="module")
def import_report(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("elsewhere")
    # decoys: a package-shaped folder and data files a CWD-relative loader might pick up
    (cwd / "mask_adapter").mkdir()
    (cwd / "mask_adapter" / "__init__.py").write_text("raise RuntimeError('imported the CWD copy')\n")
    (cwd / "configs").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    # -P: the working directory is not put first on the import path, so the import system does not scan it.
    proc = subprocess.run(
        [sys.executable, "-P", "-c", PROBE],
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"import failed in {cwd}:\n{proc.stderr[-4000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert lines, proc.stdout[-2000:]
    report = json.loads(lines[-1][2:])
    report["cwd"] = str(cwd)
    report["other_stdout"] = [line for line in proc.stdout.splitlines() if not line.startswith("@@")]
    return report


def test_imports_installed_package_from_elsewhere(import_report):
    pkg_dir = Path(import_report["file"]).resolve().parent
    assert pkg_dir == Path(__file__).resolve().parents[1] / "mask_adapter"
    assert import_report["has_config_adder"]


def test_import_reads_nothing_from_cwd_and_does_not_connect(import_report):
    assert import_report["events"] == []
    assert import_report["cwd_entries"] == ["configs", "mask_adapter"]  # nothing written either


def test_import_does_not_print(import_report):
    assert import_report["other_stdout"] == []


def test_registers_foundation_names(import_report):
    assert "CLIPBackbone" in import_report["backbones"]
    assert "ConfigurableMaskAdapterHead" in import_report["adapters"]


# Names other engineers add later: each is checked once the module that should register it exists.
OFFICIAL_NAMES = [
    ("backbones", "CLIP", "mask_adapter.config.official_names"),
    ("adapters", "MASKAdapterHead", "mask_adapter.config.official_names"),
    ("meta_archs", "MASK_Adapter", "mask_adapter.config.official_names"),
    ("meta_archs", "FCCLIP", "mask_adapter.config.official_names"),
    ("meta_archs", "MAFT_Plus", "mask_adapter.config.official_names"),
    ("sem_seg_heads", "FCCLIPHead", "mask_adapter.modeling.heads.fcclip_head"),
    ("decoders", "MultiScaleMaskedTransformerDecoder", "mask_adapter.modeling.transformer_decoder.fcclip_decoder"),
]


@pytest.mark.parametrize("registry,name,module", OFFICIAL_NAMES, ids=[n for _, n, _ in OFFICIAL_NAMES])
def test_registers_official_names(import_report, registry, name, module):
    assert importlib.util.find_spec(module) is not None, f"{module} is missing"
    names = import_report[registry]
    assert names is not None, f"registry for {registry} not importable"
    assert name in names, f"{name!r} missing from {registry}: {names}"
