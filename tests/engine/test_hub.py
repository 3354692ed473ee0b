"""Released weights by short name (mask_adapter/checkpoint/hub.py): hub cache, HF_HUB_OFFLINE, direct-URL fallback, messages.

No network: each test fills a model-hub cache itself (the layout huggingface_hub writes: ``models--owl10--Mask-Adapter/
{blobs,refs,snapshots}``) with a tiny model's checkpoint saved under the release file name, or replaces the hub call.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mask_adapter.apps import demo
from mask_adapter.checkpoint import MaskAdapterCheckpointer, hub
from tests import REPO
from tests._builders import tiny_model

TINY = REPO / "configs" / "tiny" / "fcclip_tiny.yaml"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILE = "fcclip_convnext_large_maskadapter.pth"


def _tiny_model(seed: int):
    return tiny_model("fcclip_tiny", seed=seed, classes=None)


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    """(file, state dict) of a tiny FC-CLIP model saved as a detectron2 checkpoint."""
    state = {k: v.clone() for k, v in _tiny_model(seed=3).state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / FILE
    torch.save({"model": state}, path)
    return path, state


def fill_hub_cache(cache: Path, source: Path, filename: str = FILE) -> Path:
    """Put ``source`` into a hub cache as huggingface_hub does (blob + snapshot symlink + refs/main)."""
    repo = cache / "models--owl10--Mask-Adapter"
    data = source.read_bytes()
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """Clean hub / cache environment: empty direct-URL cache, no HF variables, and no URL download allowed."""
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest's offline mode, read at import
    monkeypatch.setenv("MASK_ADAPTER_CACHE", str(tmp_path / "url_cache"))
    fetched = []

    def no_fetch(url, dest):
        fetched.append(url)
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(hub, "_fetch", no_fetch)
    return fetched


def _assert_same_weights(model, state):
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_one_table_for_the_package_and_the_demo():
    from mask_adapter.api.config import released_config_file

    assert demo.RELEASED_MODELS is hub.RELEASED_MODELS
    assert set(hub.RELEASED_MODELS) == {"fcclip-l-ma", "maftp-b-ma", "maftp-l-ma"}
    for name, spec in hub.RELEASED_MODELS.items():
        assert spec.repo_id == "owl10/Mask-Adapter" and (REPO / spec.config).is_file()
        assert released_config_file(name) == str((REPO / spec.config).resolve())
        assert spec.url == f"https://huggingface.co/owl10/Mask-Adapter/resolve/main/{spec.file}"
    assert hub.RELEASED_MODELS["fcclip-l-ma"].file == FILE


@pytest.mark.parametrize("how", ["HF_HUB_CACHE", "HF_HOME", "cache_dir"])
def test_offline_short_name_resolves_from_a_filled_cache(how, saved_state, tmp_path, monkeypatch, env):
    source, state = saved_state
    root = tmp_path / "hf"
    cache = root / "hub" if how == "HF_HOME" else root
    snapshot = fill_hub_cache(cache, source)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache_dir = None
    if how == "cache_dir":
        cache_dir = str(cache)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # the explicit argument wins
    else:
        monkeypatch.setenv(how, str(root))
    path = hub.resolve_weights("fcclip-l-ma", cache_dir)
    assert Path(path) == snapshot and env == []
    model = _tiny_model(seed=0)
    MaskAdapterCheckpointer(model).load(path)
    _assert_same_weights(model, state)


def test_checkpointer_and_predictor_take_short_names(saved_state, tmp_path, monkeypatch, env):
    """MODEL.WEIGHTS fcclip-l-ma as train_net.py / the tools / the demo's predictor load it."""
    from mask_adapter.api.predictor import VocabularyPredictor

    source, state = saved_state
    fill_hub_cache(tmp_path / "hf", source)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _tiny_model(seed=0)
    MaskAdapterCheckpointer(model).resume_or_load("fcclip-l-ma", resume=False)
    _assert_same_weights(model, state)
    cfg = demo.setup_cfg(demo.get_parser().parse_args(["--config-file", str(TINY), "--weights", "fcclip-l-ma"]))
    assert cfg.MODEL.WEIGHTS == "fcclip-l-ma"
    _assert_same_weights(VocabularyPredictor(cfg, class_names=["cat", "dog"]).model, state)


def test_demo_cli_offline_with_cache_dir(saved_state, tmp_path, monkeypatch, env):
    source, _ = saved_state
    snapshot = fill_hub_cache(tmp_path / "hf", source)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = []
    original = MaskAdapterCheckpointer.load
    monkeypatch.setattr(
        MaskAdapterCheckpointer, "load", lambda self, p, *a, **k: (loaded.append(p), original(self, p, *a, **k))[1]
    )
    out = tmp_path / "out"
    argv = ["--config-file", str(TINY), "--weights", "fcclip-l-ma", "--cache-dir", str(tmp_path / "hf")]
    written = demo.main(argv + ["--output", str(out), "--vocabulary", "cat;dog"])
    assert loaded == [str(snapshot)] and [p.name for p in written] == ["voc_example_semantic.png"]


@pytest.mark.slow
def test_offline_environment_of_a_new_process(saved_state, tmp_path):
    """HF_HUB_OFFLINE=1 / HF_HUB_CACHE set before Python starts (read by huggingface_hub at import)."""
    source, _ = saved_state
    fill_hub_cache(tmp_path / "hf", source)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}
    env["MASK_ADAPTER_CACHE"] = str(tmp_path / "url_cache")
    cmd = [sys.executable, str(REPO / "demo" / "demo.py"), "--config-file", str(TINY), "--weights", "fcclip-l-ma"]
    run = subprocess.run(cmd + ["--output", str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out" / "voc_example_semantic.png").is_file()
    empty = {**env, "HF_HUB_CACHE": str(tmp_path / "empty")}
    run = subprocess.run(cmd + ["--output", str(tmp_path / "out2")], env=empty, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("error: fcclip-l-ma (owl10/Mask-Adapter/")


def test_offline_and_not_cached_says_where_to_put_the_file(tmp_path, monkeypatch, env, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf"
    dest = tmp_path / "url_cache" / FILE
    with pytest.raises(FileNotFoundError) as e:
        hub.resolve_weights("fcclip-l-ma", cache)
    assert str(e.value) == (
        f"fcclip-l-ma (owl10/Mask-Adapter/{FILE}) is not in the hub cache {cache} and HF_HUB_OFFLINE=1 forbids "
        f"downloading; put {FILE} at {dest} or in the hub cache {cache} (hf download owl10/Mask-Adapter {FILE} "
        f"--cache-dir {cache}), or pass --weights /path/to/{FILE}"
    )
    assert env == []  # offline: the direct URL is not tried
    argv = ["demo.py", "--weights", "fcclip-l-ma", "--cache-dir", str(cache), "--output", str(tmp_path / "o")]
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    assert demo.cli() == 1
    assert capsys.readouterr().err == f"error: {e.value}\n"


def _record_hub(monkeypatch, calls, result=None):
    import huggingface_hub

    def fake(repo_id, filename, **kwargs):
        calls.append(("hub", repo_id, filename, kwargs))
        if result is None:
            raise huggingface_hub.errors.LocalEntryNotFoundError("connection refused and no cached file")
        return result

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)


def test_hub_first_then_the_direct_url(tmp_path, monkeypatch, env):
    calls = []
    _record_hub(monkeypatch, calls)

    def fetch(url, dest):
        calls.append(("url", url, dest))
        Path(dest).write_bytes(b"weights")

    monkeypatch.setattr(hub, "_fetch", fetch)
    dest = tmp_path / "url_cache" / "maftp_convnext_large_maskadapter.pth"
    assert hub.resolve_weights("maftp-l-ma", tmp_path / "hf") == str(dest)
    assert [c[0] for c in calls] == ["hub", "url"]
    _, repo_id, filename, kwargs = calls[0]
    assert (repo_id, filename) == ("owl10/Mask-Adapter", "maftp_convnext_large_maskadapter.pth")
    assert kwargs == {"revision": "main", "cache_dir": str(tmp_path / "hf"), "local_files_only": False}
    assert calls[1][1:] == (hub.RELEASED_MODELS["maftp-l-ma"].url, str(dest))
    assert hub.resolve_weights("maftp-l-ma") == str(dest) and len(calls) == 2  # reused, no further call


def test_hub_success_skips_the_url(tmp_path, monkeypatch, env):
    calls = []
    _record_hub(monkeypatch, calls, result=str(tmp_path / "from_hub.pth"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.resolve_weights("maftp-b-ma") == str(tmp_path / "from_hub.pth")
    assert calls[0][3]["cache_dir"] == str(tmp_path / "home" / "hub") and env == []


def test_without_huggingface_hub_the_url_is_used(tmp_path, monkeypatch, env):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    fetched = []
    monkeypatch.setattr(hub, "_fetch", lambda url, dest: (fetched.append(url), Path(dest).write_bytes(b"w")))
    assert hub.resolve_weights("fcclip-l-ma").endswith(FILE) and fetched == [hub.RELEASED_MODELS["fcclip-l-ma"].url]


def test_both_routes_failing_is_one_line(tmp_path, monkeypatch, env):
    _record_hub(monkeypatch, [])

    def refused(url, dest):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(hub, "_fetch", refused)
    with pytest.raises(FileNotFoundError) as e:
        hub.resolve_weights("fcclip-l-ma", tmp_path / "hf")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(
        "cannot download fcclip-l-ma: model hub owl10/Mask-Adapter (connection refused and no cached file), direct URL "
        f"{hub.RELEASED_MODELS['fcclip-l-ma'].url} ([Errno 111] Connection refused); without network, put {FILE} at "
        f"{tmp_path / 'url_cache' / FILE}"
    )


def test_segmenter_from_a_released_name_reads_the_hub_cache(saved_state, tmp_path, monkeypatch, env):
    """Segmenter.from_pretrained("fcclip-l-ma") resolves the name through the hub cache (here with the tiny
    config standing in for the released one, whose CLIP cannot be built offline)."""
    from mask_adapter import Segmenter

    source, state = saved_state
    snapshot = fill_hub_cache(tmp_path / "hf", source)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seg = Segmenter.from_pretrained("fcclip-l-ma", config_file=TINY, cache_dir=tmp_path / "hf")
    assert seg.cfg.MODEL.WEIGHTS == str(snapshot) and env == []
    _assert_same_weights(seg.predictor.model, state)
    with pytest.raises(FileNotFoundError, match=r"^fcclip-l-ma \(owl10/Mask-Adapter/.* is not in the hub cache"):
        Segmenter.from_pretrained("fcclip-l-ma", config_file=TINY, cache_dir=tmp_path / "empty")


def test_resolve_released_is_the_one_short_name_resolver(tmp_path, monkeypatch, env):
    """Short names go through download_released; anything else (files, URLs, "") comes back unchanged."""
    calls = []
    monkeypatch.setattr(hub, "download_released", lambda name, cache_dir=None: calls.append(name) or f"/c/{name}.pth")
    assert hub.resolve_released("maftp-l-ma") == "/c/maftp-l-ma.pth" and calls == ["maftp-l-ma"]
    for other in ("", "model.pth", "https://example.org/x.pth", "MAFTP-L-MA"):
        assert hub.resolve_released(other) == other
    assert calls == ["maftp-l-ma"]
    monkeypatch.setattr(hub, "weights_cache_dir", lambda: tmp_path)
    assert hub.resolve_weights("fcclip-l-ma") == "/c/fcclip-l-ma.pth"  # resolve_weights goes through it too
