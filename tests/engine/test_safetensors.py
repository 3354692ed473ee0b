"""safetensors checkpoints: round trips of the convert_checkpoint program (tools/convert_checkpoint.py) and loading
wherever .pth files load."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mask_adapter.apps import convert_checkpoint as convert
from mask_adapter.checkpoint import (
    FUSION_MARKER_KEY,
    MaskAdapterCheckpointer,
    load_checkpoint_file,
    load_generator_weights,
    split_checkpoint,
)
from tests import REPO
from tests._builders import tiny_config, tiny_model

TINY = REPO / "configs" / "tiny" / "fcclip_tiny.yaml"


def _cfg():
    return tiny_config("fcclip_tiny")


def _model(seed: int):
    return tiny_model("fcclip_tiny", seed=seed, classes=None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny FC-CLIP checkpoint as train_net.py writes it: model + optimizer state + iteration."""
    state = {k: v.clone() for k, v in _model(seed=5).state_dict().items()}
    path = tmp_path_factory.mktemp("pth") / "model_final.pth"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "iteration": 99}, path)
    return path, state


def test_pth_to_safetensors_round_trip(trained, tmp_path):
    src, state = trained
    out = tmp_path / "model_final.safetensors"
    assert convert.main([str(src), str(out)]) == 0
    written = load_file(str(out))
    assert written.keys() == state.keys()
    assert all(written[k].dtype == state[k].dtype and torch.equal(written[k], state[k]) for k in state)
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata() == {"format": "mask_adapter state dict", "source": "model_final.pth"}
    # the official-key model loads it with nothing missing or unexpected, and gets the saved values
    model = _model(seed=0)
    result = model.load_state_dict(split_checkpoint(load_checkpoint_file(str(out)))[0], strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    other = _model(seed=1)
    MaskAdapterCheckpointer(other).load(str(out))
    assert all(torch.equal(other.state_dict()[k], state[k]) for k in state)
    # and back to .pth
    back = tmp_path / "back.pth"
    assert convert.main([str(out), str(back)]) == 0
    again = torch.load(back, weights_only=True)
    assert set(again) == {"model"} and all(torch.equal(again["model"][k], state[k]) for k in state)


def test_shared_views_and_dtypes_are_kept(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    flat = {
        "tied.weight": base,
        "head.weight": base,  # the same tensor twice (tied weights)
        "column": base[:, 1],  # a non-contiguous view of it
        "half": torch.randn(2, 3).half(),
        "index": torch.tensor([1, 2, 3], dtype=torch.int64),
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 5),
    }
    with pytest.raises(RuntimeError, match="share memory"):  # what safetensors refuses without the handling
        save_file(flat, str(tmp_path / "raw.safetensors"))
    src = tmp_path / "flat.pth"
    torch.save(flat, src)
    out = tmp_path / "flat.safetensors"
    assert convert.main([str(src), str(out)]) == 0
    loaded = load_file(str(out))
    assert loaded.keys() == flat.keys()
    for k, v in flat.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k


def test_fusion_marker_travels_in_the_metadata(trained, tmp_path):
    src, state = trained
    marker = {"format": 1, "generator": "fcclip", "first_phase": "p1.pth", "base": "fcclip_cocopan.pth"}
    fused = tmp_path / "fused.pth"
    torch.save({"model": state, FUSION_MARKER_KEY: marker}, fused)
    out = tmp_path / "fused.safetensors"
    assert convert.main([str(fused), str(out)]) == 0
    with safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()[FUSION_MARKER_KEY]) == marker
    data = load_checkpoint_file(str(out))
    assert data[FUSION_MARKER_KEY] == marker and set(data["model"]) == set(state)
    back = tmp_path / "fused_back.pth"
    assert convert.main([str(out), str(back)]) == 0
    assert torch.load(back, weights_only=True)[FUSION_MARKER_KEY] == marker


def test_generator_weights_and_demo_weights_from_safetensors(trained, tmp_path):
    from mask_adapter.api.predictor import VocabularyPredictor

    src, state = trained
    out = tmp_path / "w.safetensors"
    assert convert.main([str(src), str(out)]) == 0
    model = _model(seed=0)
    keys = load_generator_weights(model, str(out))
    assert keys and all(k.startswith(("sem_seg_head", "void")) for k in keys)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in keys)
    cfg = _cfg()
    cfg.MODEL.WEIGHTS = str(out)
    predictor = VocabularyPredictor(cfg, class_names=["cat", "dog"])
    assert all(torch.equal(predictor.model.state_dict()[k], state[k]) for k in state)


def test_bad_inputs_are_one_line(trained, tmp_path, capsys):
    src, _ = trained
    assert convert.main([str(src), str(tmp_path / "out.bin")]) == 1
    assert capsys.readouterr().err == f"error: output {tmp_path / 'out.bin'} must end in .safetensors or .pth\n"
    missing = tmp_path / "missing.pth"
    assert convert.main([str(missing), str(tmp_path / "o.safetensors")]) == 1
    assert (
        capsys.readouterr().err
        == f"error: checkpoint not found: {missing}; give an existing .pth/.pkl/.safetensors file\n"
    )
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    assert convert.main([str(broken), str(tmp_path / "o.pth")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken} is not a readable safetensors file (") and err.count("\n") == 1
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        convert.main([str(broken), str(tmp_path / "o.pth"), "--debug"])  # --debug: the exception itself
