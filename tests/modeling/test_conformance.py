"""Conformance with the official implementation (the official reference tables,
tests/assets/reference/) and checkpoint round trips.

Full-size part: each of the four released setups is built from our copy of its official YAML (random CLIP, no
download) and its state dict is compared with ``reference/<name>_state_dict.tsv``: keys, order, shapes, dtypes,
requires_grad, the non-persistent buffers, and the parameter totals of ``<name>_params.tsv`` (levels 0 and 1).
Models are built one at a time inside the fixture, summarised, deleted and garbage-collected, so at most one
full-size model (~1.5 GB) is alive. Random weight initialisation is skipped while building (see
``_skip_random_init``): only names, shapes, dtypes and flags are compared, and this makes a ConvNeXt-L build take
~1 s instead of ~13 s.

Tiny part: save/load round trips in the official layouts through ``MaskAdapterCheckpointer``.
"""

import contextlib
import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, build_model

from mask_adapter.checkpoint import MaskAdapterCheckpointer, diff_state_dict_against_reference
from mask_adapter.config import add_mask_adapter_config
from mask_adapter.modeling.adapter.build import MASK_ADAPTER_REGISTRY, build_mask_adapter
from tests import REPO
from tests._builders import tiny_model

CONFIGS = REPO / "configs"

# reference name -> (our config, META_ARCHITECTURE, CDT variant or None)
SETUPS: dict[str, tuple[str, str, str | None]] = {
    "fcclip_convnext_large_ade20k": (
        "mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml",
        "FCCLIP",
        None,
    ),
    "maftp_base_a150": (
        "mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml",
        "MAFT_Plus",
        "semantic",
    ),
    "maftp_large_a150": (
        "mixed-mask-training/maftp/semantic/train_semantic_large_eval_a150.yaml",
        "MAFT_Plus",
        "panoptic",
    ),
    "gtwarmup_mask_adapter_convnext_large_cocopan": (
        "ground-truth-warmup/mask-adapter/mask_adapter_convnext_large_cocopan_eval_ade20k.yaml",
        "MASK_Adapter",
        None,
    ),
}


def _cfg(config_file: Path, *opts):
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(list(opts))
    return cfg


@contextlib.contextmanager
def _skip_random_init():
    """Make the random fills of weight initialisation no-ops (tensors keep their torch.empty contents).

    Covers torch.nn.init (uniform_/normal_/kaiming/xavier go through Tensor.uniform_/normal_; trunc_normal_) and
    timm's own trunc_normal_. Restored on exit; never used around a model whose values matter.
    """
    import timm.layers.weight_init as timm_init

    def keep(tensor, *args, **kwargs):
        return tensor

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch.Tensor, "uniform_", keep))
        stack.enter_context(mock.patch.object(torch.Tensor, "normal_", keep))
        stack.enter_context(mock.patch.object(torch.nn.init, "_no_grad_trunc_normal_", keep))
        stack.enter_context(mock.patch.object(timm_init, "_trunc_normal_", keep))
        yield


# ---------------------------------------------------------------------------------------------------- reference
def _read_state_dict_table(path: Path):
    """(ordered rows [(key, shape, dtype, requires_grad)], {non-persistent buffer: shape})."""
    rows, non_persistent = [], {}
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype", "requires_grad"]
    for line in lines[1:]:
        if line.startswith("#"):
            key, shape = line.split(":", 1)[1].strip().split("\t")[:2]
            non_persistent[key] = tuple(int(s) for s in shape.split("x"))
            continue
        key, shape, dtype, grad = line.split("\t")
        rows.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype, grad))
    return rows, non_persistent


def _read_params_table(path: Path, max_level: int = 1) -> dict[str, tuple[int, int, int]]:
    """prefix -> (total, trainable, num_tensors) for levels <= max_level; level 0 is keyed "(all)"."""
    out = {}
    for line in path.read_text().splitlines()[1:]:
        level, prefix, total, trainable, count = line.split("\t")
        if int(level) <= max_level:
            out[prefix] = (int(total), int(trainable), int(count))
    return out


@dataclass
class BuiltSummary:
    """What the conformance tests need from one full-size build (the model itself is freed)."""

    model_class: str
    state_dict: list[tuple[str, tuple[int, ...], str]]  # (key, shape, dtype) in state-dict order
    requires_grad: dict[str, str]  # key -> "True"/"False" (parameters) or "buffer"
    buffers: dict[str, tuple[int, ...]]  # every named buffer, persistent or not
    level1: dict[str, tuple[int, int, int]]
    cdt_variant: str | None
    mask_adapter_params: int


def _summarise(model: torch.nn.Module) -> BuiltSummary:
    sd = model.state_dict()
    params = dict(model.named_parameters())
    level1: dict[str, list[int]] = {}
    for name, p in params.items():
        for prefix in ("(all)", name.split(".")[0]):
            row = level1.setdefault(prefix, [0, 0, 0])
            row[0] += p.numel()
            row[1] += p.numel() if p.requires_grad else 0
            row[2] += 1
    cdt = getattr(model, "cdt", None)
    return BuiltSummary(
        model_class=type(model).__name__,
        state_dict=[(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()],
        requires_grad={k: (str(params[k].requires_grad) if k in params else "buffer") for k in sd},
        buffers={k: tuple(b.shape) for k, b in model.named_buffers()},
        level1={k: tuple(v) for k, v in level1.items()},
        cdt_variant=None if cdt is None else cdt.variant,
        mask_adapter_params=sum(p.numel() for p in model.mask_adapter.parameters()),
    )


@pytest.fixture(scope="module", params=list(SETUPS))
def built(request, reference_dir):
    """(reference name, summary of our full-size build). One build alive at a time."""
    name = request.param
    config, _, _ = SETUPS[name]
    cfg = _cfg(
        CONFIGS / config,
        "MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS",
        "",
        "MODEL.DEVICE",
        "cpu",
        "MODEL.WEIGHTS",
        "",
    )
    with _skip_random_init():
        model = build_model(cfg)
    try:
        summary = _summarise(model)
    finally:
        del model
        gc.collect()
    return name, summary


# ---------------------------------------------------------------------------------------------------- full size
def test_state_dict_keys_and_shapes(built, reference_dir):
    name, ours = built
    tsv = reference_dir / f"{name}_state_dict.tsv"
    missing, unexpected, mismatched = diff_state_dict_against_reference({k: s for k, s, _ in ours.state_dict}, str(tsv))
    assert (missing, unexpected, mismatched) == ([], [], []), (
        f"{name}: {len(missing)} missing (e.g. {missing[:5]}), {len(unexpected)} unexpected (e.g. {unexpected[:5]}), "
        f"{len(mismatched)} shape mismatches (e.g. {mismatched[:5]})"
    )
    # Independent of the package's diff helper: the same table parsed here, including order and dtypes.
    rows, _ = _read_state_dict_table(tsv)
    assert [(k, s, d) for k, s, d, _ in rows] == ours.state_dict


def test_requires_grad_matches(built, reference_dir):
    name, ours = built
    rows, _ = _read_state_dict_table(reference_dir / f"{name}_state_dict.tsv")
    expected = {k: grad for k, _, _, grad in rows}
    diff = {k: (ours.requires_grad.get(k), v) for k, v in expected.items() if ours.requires_grad.get(k) != v}
    assert not diff, (
        f"{name}: requires_grad (ours, reference) differs for {len(diff)} keys, e.g. {list(diff.items())[:5]}"
    )


def test_parameter_totals(built, reference_dir):
    name, ours = built
    expected = _read_params_table(reference_dir / f"{name}_params.tsv", max_level=1)
    assert ours.level1 == expected
    total, trainable, _ = expected["(all)"]
    assert ours.mask_adapter_params == (14_807_088 if name == "maftp_base_a150" else 14_907_568)
    # Trainable: the adapter (+ void for FCCLIP and stage 1); MAFT+ trains the adapter only.
    assert trainable == ours.mask_adapter_params + (0 if name.startswith("maftp") else expected["void_embedding"][0])


def test_non_persistent_buffers(built, reference_dir):
    name, ours = built
    _, non_persistent = _read_state_dict_table(reference_dir / f"{name}_state_dict.tsv")
    keys = {k for k, _, _ in ours.state_dict}
    assert {"pixel_mean", "pixel_std"} <= set(non_persistent)
    for key, shape in non_persistent.items():
        assert key not in keys, f"{key} must not be saved (non-persistent buffer)"
        assert ours.buffers.get(key) == shape, key
    # No persistent buffers at all in the official models.
    assert set(ours.buffers) == set(non_persistent)


def test_meta_architecture_and_cdt_variant(built):
    name, ours = built
    _, meta_arch, variant = SETUPS[name]
    assert ours.model_class == META_ARCH_REGISTRY.get(meta_arch).__name__
    assert ours.cdt_variant == variant


def test_official_names_resolve():
    for name in ("MASK_Adapter", "MAFT_Plus", "FCCLIP"):
        assert name in META_ARCH_REGISTRY, name
    assert "CLIP" in BACKBONE_REGISTRY
    assert "MASKAdapterHead" in MASK_ADAPTER_REGISTRY
    cfg = _cfg(CONFIGS / "tiny" / "fcclip_tiny.yaml")
    assert cfg.MODEL.MASK_ADAPTER.NAME == "MASKAdapterHead"
    head = build_mask_adapter(cfg, cfg.MODEL.FC_CLIP.EMBED_DIM)
    assert head.num_output_maps == 16
    assert {k.split(".")[0] for k in head.state_dict()} == {
        "fuse",
        "cnext1",
        "cnext2",
        "cnext3",
        "norm",
        "final",
        "mask_downscaling",
    }


# ---------------------------------------------------------------------------------------------------- round trips
def _tiny(stem: str, *opts, seed: int):
    return tiny_model(stem, *opts, seed=seed)


@pytest.fixture(scope="module")
def source_model():
    return _tiny("fcclip_tiny", seed=0)


@pytest.fixture(scope="module")
def source_outputs(source_model, image_batch):
    return _outputs(source_model, image_batch)


@pytest.fixture(scope="module")
def image_batch():
    g = torch.Generator().manual_seed(11)
    return [{"image": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)}]


def _outputs(model, batch):
    with torch.no_grad():
        return model(batch)


def _assert_same_outputs(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert torch.equal(ra["sem_seg"], rb["sem_seg"])
        assert torch.equal(ra["panoptic_seg"][0], rb["panoptic_seg"][0])
        assert ra["panoptic_seg"][1] == rb["panoptic_seg"][1]
        assert torch.equal(ra["instances"].scores, rb["instances"].scores)
        assert torch.equal(ra["instances"].pred_masks, rb["instances"].pred_masks)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


def test_round_trip_detectron2_layout(tmp_path, source_model, source_outputs, image_batch, caplog):
    path = tmp_path / "model_final.pth"
    torch.save({"model": source_model.state_dict(), "iteration": 7}, path)
    target = _tiny("fcclip_tiny", seed=1)
    assert not torch.equal(target.mask_adapter.fuse.weight, source_model.mask_adapter.fuse.weight)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        extra = MaskAdapterCheckpointer(target).load(str(path))
    assert extra.get("iteration") == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
    _assert_same_state(source_model, target)
    _assert_same_outputs(source_outputs, _outputs(target, image_batch))


def test_round_trip_flat_state_dict(tmp_path, source_model, source_outputs, image_batch):
    """MAFT+ checkpoints are flat state dicts (no "model" entry)."""
    path = tmp_path / "flat.pth"
    torch.save(source_model.state_dict(), path)
    target = _tiny("fcclip_tiny", seed=2)
    MaskAdapterCheckpointer(target).load(str(path))
    _assert_same_state(source_model, target)
    _assert_same_outputs(source_outputs, _outputs(target, image_batch))


def test_criterion_empty_weight_is_ignored(tmp_path, source_model, caplog):
    """The released FC-CLIP + MA checkpoint carries SetCriterion's ``criterion.empty_weight``: dropped silently."""
    path = tmp_path / "released_layout.pth"
    torch.save({"model": {**source_model.state_dict(), "criterion.empty_weight": torch.ones(134)}}, path)
    target = _tiny("fcclip_tiny", seed=3)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        MaskAdapterCheckpointer(target).load(str(path))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
    assert "criterion.empty_weight" not in target.state_dict()
    _assert_same_state(source_model, target)


def test_other_architecture_gives_clear_error(tmp_path):
    """MAFT+ weights (10 queries, CDT) into an FC-CLIP with 7 queries: a ValueError listing the mismatched keys."""
    maftp = _tiny("maftp_tiny", seed=4)
    path = tmp_path / "maftp.pth"
    torch.save({"model": maftp.state_dict()}, path)
    del maftp
    target = _tiny("fcclip_tiny", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 7, seed=5)
    before = target.sem_seg_head.state_dict()
    with pytest.raises(ValueError) as info:
        MaskAdapterCheckpointer(target).load(str(path))
    msg = str(info.value)
    assert "sem_seg_head.predictor.query_feat.weight: checkpoint (10, 32) vs model (7, 32)" in msg
    assert "sem_seg_head.predictor.query_embed.weight: checkpoint (10, 32) vs model (7, 32)" in msg
    assert "2 tensors" in msg and str(path) in msg
    assert "config" in msg  # tells the user to pass the matching config file
    # Nothing was loaded.
    after = target.sem_seg_head.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_loading_after_inference_refreshes_text_embeddings(tmp_path, source_model, source_outputs, image_batch):
    """Regression: the text-embedding cache must not survive a weight load (its key follows the text tower)."""
    path = tmp_path / "model_final.pth"
    torch.save({"model": source_model.state_dict()}, path)
    target = _tiny("fcclip_tiny", seed=6)
    # Fill the text-embedding cache with the embeddings of target's own (random) text tower.
    _outputs(target, image_batch)
    MaskAdapterCheckpointer(target).load(str(path))
    _assert_same_state(source_model, target)
    expected = source_outputs[0]["sem_seg"]
    got = _outputs(target, image_batch)[0]["sem_seg"]
    assert torch.equal(expected, got), f"max difference {(expected - got).abs().max().item():.3g}"
