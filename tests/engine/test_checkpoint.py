"""Checkpoint loading: formats, known leftovers, shape errors, generator weights, reference-table diffs."""

import argparse
import logging

import pytest
import torch
from torch import nn

from mask_adapter.checkpoint import (
    FUSION_MARKER_KEY,
    MaskAdapterCheckpointer,
    diff_state_dict_against_reference,
    load_checkpoint_file,
    load_generator_weights,
    read_reference_state_dict,
)


class _Model(nn.Module):
    """Mimics the released key layout: backbone, sem_seg_head (queries), mask_adapter, void_embedding."""

    def __init__(self, num_queries: int = 4, dim: int = 6, with_head: bool = True) -> None:
        super().__init__()
        self.backbone = nn.Linear(dim, dim)
        if with_head:
            self.sem_seg_head = nn.Module()
            self.sem_seg_head.predictor = nn.Module()
            self.sem_seg_head.predictor.query_feat = nn.Embedding(num_queries, dim)
            self.sem_seg_head.pixel_decoder = nn.Linear(dim, dim)
        self.mask_adapter = nn.Module()
        self.mask_adapter.fuse = nn.Conv2d(dim, dim, 1)
        self.void_embedding = nn.Embedding(1, dim)
        self.register_buffer("pixel_mean", torch.zeros(3, 1, 1), persistent=False)


def _random_state(model: nn.Module, seed: int):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def _assert_loaded(model, state):
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=k)


@pytest.mark.parametrize("layout", ["detectron2", "flat"])
def test_loads_detectron2_and_flat_dicts(tmp_path, layout):
    state = _random_state(_Model(), 1)
    path = str(tmp_path / "ckpt.pth")
    torch.save({"model": state, "iteration": 7} if layout == "detectron2" else state, path)
    model = _Model()
    extra = MaskAdapterCheckpointer(model).load(path)
    _assert_loaded(model, state)
    if layout == "detectron2":
        assert extra.get("iteration") == 7


def test_known_leftovers_one_log_line_and_marker_metadata(tmp_path, caplog):
    state = _random_state(_Model(), 2)
    state["criterion.empty_weight"] = torch.ones(134)
    state[FUSION_MARKER_KEY] = torch.ones(1)
    path = str(tmp_path / "released.pth")
    torch.save({"model": state, FUSION_MARKER_KEY: {"format": 1, "generator": "fcclip"}}, path)
    model = _Model()
    with caplog.at_level(logging.INFO):
        extra = MaskAdapterCheckpointer(model).load(path)
    _assert_loaded(model, {k: v for k, v in state.items() if k in model.state_dict()})
    leftover_lines = [r for r in caplog.records if "ignoring known leftover" in r.getMessage()]
    assert len(leftover_lines) == 1
    assert "criterion.empty_weight" in leftover_lines[0].getMessage()
    assert FUSION_MARKER_KEY in leftover_lines[0].getMessage()
    assert any("fused checkpoint" in r.getMessage() and "fcclip" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert FUSION_MARKER_KEY not in extra


def test_other_unexpected_and_missing_keys_are_reported(tmp_path, caplog):
    state = _random_state(_Model(), 3)
    state["stray.weight"] = torch.ones(2)
    del state["mask_adapter.fuse.bias"]
    path = str(tmp_path / "odd.pth")
    torch.save({"model": state}, path)
    with caplog.at_level(logging.WARNING):
        MaskAdapterCheckpointer(_Model()).load(path)
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "stray" in text and "mask_adapter.fuse" in text


def test_other_architecture_raises_listing_keys(tmp_path):
    path = str(tmp_path / "fcclip.pth")
    torch.save({"model": _random_state(_Model(num_queries=250), 4)}, path)
    with pytest.raises(ValueError) as err:
        MaskAdapterCheckpointer(_Model(num_queries=100)).load(path)
    msg = str(err.value)
    assert "sem_seg_head.predictor.query_feat.weight" in msg
    assert "(250, 6)" in msg and "(100, 6)" in msg and "fcclip.pth" in msg and "250 queries" in msg


def test_pickled_objects_need_explicit_trust(tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"model": _random_state(_Model(), 5), "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_checkpoint_file(path)
    assert load_checkpoint_file(path, allow_pickle=True)["args"].lr == 1
    model = _Model()
    MaskAdapterCheckpointer(model, allow_pickle=True).load(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint_file(str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("layout", ["flat", "detectron2"])
def test_load_generator_weights_copies_only_head_and_void(tmp_path, layout):
    model = _Model()
    stage1 = {k: v.clone() for k, v in model.state_dict().items()}
    base = _random_state(_Model(), 6)
    base["cdt.x"] = torch.ones(3)
    path = str(tmp_path / "base.pth")
    torch.save(base if layout == "flat" else {"model": base}, path)
    loaded = load_generator_weights(model, path)
    assert loaded == sorted(k for k in base if k.startswith(("sem_seg_head", "void")))
    now = model.state_dict()
    for k in now:
        expected = base[k] if k.startswith(("sem_seg_head", "void")) else stage1[k]
        torch.testing.assert_close(now[k], expected, msg=k)


def test_load_generator_weights_errors(tmp_path):
    base = _random_state(_Model(num_queries=250), 7)
    path = str(tmp_path / "fcclip.pth")
    torch.save(base, path)
    with pytest.raises(ValueError, match=r"query_feat.weight: file \(250, 6\) vs model \(100, 6\)"):
        load_generator_weights(_Model(num_queries=100), path)
    with pytest.raises(ValueError, match="MASK_Adapter"):
        load_generator_weights(_Model(with_head=False), path)
    no_head = str(tmp_path / "adapter_only.pth")
    torch.save({"model": _random_state(_Model(with_head=False), 8)}, no_head)
    with pytest.raises(ValueError, match="no sem_seg_head"):
        load_generator_weights(_Model(), no_head)
    partial = {k: v for k, v in _random_state(_Model(), 9).items() if "pixel_decoder" not in k}
    partial_path = str(tmp_path / "partial.pth")
    torch.save(partial, partial_path)
    with pytest.raises(ValueError, match="lack 2 tensors"):
        load_generator_weights(_Model(), partial_path)


def _write_table(path):
    path.write_text(
        "key\tshape\tdtype\trequires_grad\n"
        "backbone.clip_model.logit_scale\tscalar\tfloat32\tFalse\n"
        "mask_adapter.fuse.weight\t768x768x1x1\tfloat32\tTrue\n"
        "void_embedding.weight\t1x768\tfloat32\tTrue\n"
        "# non-persistent buffer (not in state_dict): pixel_mean\t3x1x1\tfloat32\n"
    )
    return str(path)


def test_reference_table_parsing_and_diff(tmp_path):
    tsv = _write_table(tmp_path / "tiny_state_dict.tsv")
    ref = read_reference_state_dict(tsv)
    assert ref.entries["backbone.clip_model.logit_scale"] == ((), "float32", "False")
    assert ref.entries["mask_adapter.fuse.weight"][0] == (768, 768, 1, 1)
    assert ref.non_persistent == {"pixel_mean": (3, 1, 1)}
    ours = {
        "backbone.clip_model.logit_scale": torch.zeros(()),
        "mask_adapter.fuse.weight": torch.Size([768, 640, 1, 1]),
        "extra.weight": (2,),
    }
    missing, unexpected, mismatch = diff_state_dict_against_reference(ours, tsv)
    assert missing == ["void_embedding.weight"]
    assert unexpected == ["extra.weight"]
    assert mismatch == [("mask_adapter.fuse.weight", (768, 640, 1, 1), (768, 768, 1, 1))]
    bad = tmp_path / "bad.tsv"
    bad.write_text("not a table\n")
    with pytest.raises(ValueError, match="not a reference"):
        read_reference_state_dict(str(bad))


def test_real_reference_tables_parse(reference_dir):
    path = str(reference_dir / "fcclip_convnext_large_ade20k_state_dict.tsv")
    ref = read_reference_state_dict(path)
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(ref.entries) == len(lines) - 1 - sum(line.startswith("#") for line in lines)
    assert ref.entries["sem_seg_head.predictor.query_feat.weight"][0] == (250, 256)
    assert ref.entries["backbone.clip_model.logit_scale"][0] == ()
    assert set(ref.non_persistent) == {"pixel_mean", "pixel_std", "backbone.clip_model.attn_mask"}
    adapter = {k: v[0] for k, v in ref.entries.items() if k.startswith("mask_adapter.")}
    assert len(adapter) == 43
    shapes = {k: v[0] for k, v in ref.entries.items()}
    assert diff_state_dict_against_reference(shapes, path) == ([], [], [])
