"""Weight fusion tools (marker, prefix and generator checks) on small synthetic checkpoints."""

import logging
import os
import runpy
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from mask_adapter.checkpoint import FUSION_MARKER_KEY, fusion
from tests import REPO as REPO_PATH

TOOLS = str(REPO_PATH / "tools")

D = 8  # CLIP embedding width of the synthetic checkpoints


def _stage1(dim=D, old_naming=False):
    prefix = "sem_seg_head" if old_naming else "mask_adapter"
    model = {
        "backbone.clip_model.proj": torch.full((dim, dim), 1.0),
        f"{prefix}.fuse.weight": torch.full((4, dim, 1, 1), 3.0),
        f"{prefix}.cnext1.gamma": torch.full((4,), 1e-6),
        f"{prefix}.mask_downscaling.6.weight": torch.full((dim, 16, 1, 1), 0.5),
        "void_embedding.weight": torch.full((1, dim), 1.0),
    }
    return {"model": model, "iteration": 9, "optimizer": {"state": {}, "param_groups": []}}


def _base(generator="fcclip", queries=None, dim=D):
    queries = queries or fusion.EXPECTED_QUERIES[generator]
    model = {
        "backbone.clip_model.proj": torch.full((dim, dim), 7.0),
        "sem_seg_head.predictor.query_feat.weight": torch.full((queries, 4), 2.0),
        "sem_seg_head.pixel_decoder.w": torch.full((3,), 2.0),
        "void_embedding.weight": torch.full((1, dim), 2.0),
        "criterion.empty_weight": torch.ones(134),
    }
    if generator == "maftp":
        model["cdt.w"] = torch.ones(2)
        return model  # MAFT+ base checkpoints are flat state dicts
    return {"model": model, "iteration": 1}


def _fuse(first=None, base=None, **kw):
    kw.setdefault("generator", "fcclip")
    return fusion.fuse_checkpoints(first or _stage1(), base or _base(kw["generator"]), **kw)


@pytest.mark.parametrize("generator", ["fcclip", "maftp"])
def test_fusion_copies_head_and_void_only(generator):
    out = _fuse(base=_base(generator), generator=generator)
    model = out["model"]
    assert set(out) == {
        "model",
        FUSION_MARKER_KEY,
    }  # stage-1 optimizer/iteration are not carried over
    assert torch.equal(model["sem_seg_head.pixel_decoder.w"], torch.full((3,), 2.0))
    assert model["sem_seg_head.predictor.query_feat.weight"].shape[0] == fusion.EXPECTED_QUERIES[generator]
    assert torch.equal(model["void_embedding.weight"], torch.full((1, D), 2.0))  # replaced by the base's
    assert torch.equal(model["backbone.clip_model.proj"], torch.full((D, D), 1.0))  # kept from stage 1
    assert torch.equal(model["mask_adapter.fuse.weight"], torch.full((4, D, 1, 1), 3.0))
    assert "criterion.empty_weight" not in model and "cdt.w" not in model
    meta = out[FUSION_MARKER_KEY]
    assert meta["generator"] == generator and meta["copied_tensors"] == 3
    assert meta["replaced_from_first_phase"] == ["void_embedding.weight"]


def test_fused_file_loads_cleanly_with_plain_detectron2(tmp_path, caplog):
    p1, base, out = (str(tmp_path / n) for n in ("p1.pth", "base.pth", "out.pth"))
    torch.save(_stage1(), p1)
    torch.save(_base(), base)
    fusion.fuse_files(p1, base, out, generator="fcclip")
    fused = torch.load(out, weights_only=True)
    holder = nn.Module()
    for k, v in fused["model"].items():  # a module tree with exactly the fused keys
        *path, leaf = k.split(".")
        mod = holder
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, nn.Parameter(torch.zeros_like(v)))
    with caplog.at_level(logging.WARNING):
        DetectionCheckpointer(holder).load(out)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert torch.equal(holder.void_embedding.weight.detach(), torch.full((1, D), 2.0))


def test_refuses_a_second_fusion(tmp_path):
    fused = _fuse()
    with pytest.raises(fusion.FusionError, match="already a fused checkpoint.*#17"):
        _fuse(first=fused)
    with pytest.raises(fusion.FusionError, match="already a fused"):
        _fuse(base=fused)
    stage2 = _stage1()  # a stage-2 training checkpoint: generator inside, no marker
    stage2["model"]["sem_seg_head.pixel_decoder.w"] = torch.ones(3)
    with pytest.raises(fusion.FusionError, match="fused or stage-2 checkpoint"):
        _fuse(first=stage2)


def test_old_adapter_naming_is_refused_or_remapped():
    with pytest.raises(fusion.FusionError, match="--remap-old-adapter-names"):
        _fuse(first=_stage1(old_naming=True))
    out = _fuse(first=_stage1(old_naming=True), remap_old_adapter_names=True)
    model = out["model"]
    assert torch.equal(model["mask_adapter.fuse.weight"], torch.full((4, D, 1, 1), 3.0))
    assert "mask_adapter.cnext1.gamma" in model and "sem_seg_head.cnext1.gamma" not in model
    assert "sem_seg_head.pixel_decoder.w" in model
    assert out[FUSION_MARKER_KEY]["remapped_old_adapter_tensors"] == 3


def test_refuses_bad_inputs():
    no_head = _base()
    no_head["model"] = {k: v for k, v in no_head["model"].items() if not k.startswith("sem_seg_head")}
    with pytest.raises(fusion.FusionError, match="no sem_seg_head"):
        _fuse(base=no_head)
    no_adapter = {"model": {"backbone.clip_model.proj": torch.ones(D, D)}}
    with pytest.raises(fusion.FusionError, match="no mask_adapter"):
        _fuse(first=no_adapter)


def test_refuses_generator_mismatch():
    with pytest.raises(fusion.FusionError, match=r"250 queries.*--generator maftp expects 100.*--generator fcclip"):
        _fuse(base=_base("fcclip"), generator="maftp")
    with pytest.raises(fusion.FusionError, match=r"100 queries.*expects 250.*--generator maftp"):
        _fuse(base=_base("maftp"), generator="fcclip")
    assert _fuse(base=_base("fcclip", queries=300), num_queries=300)["model"]
    with pytest.raises(fusion.FusionError, match="different CLIP models"):
        _fuse(first=_stage1(dim=6), base=_base(dim=D))


def _paths(tmp_path, base_generator="maftp"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    p1, base, out = (str(tmp_path / n) for n in ("p1.pth", "base.pth", "out.pth"))
    torch.save(_stage1(), p1)
    torch.save(_base(base_generator), base)
    return ["--model_first_phase_path", p1, "--model_sem_seg_path", base, "--output_path", out], out


def test_cli_main(tmp_path, capsys):
    argv, out = _paths(tmp_path)
    assert fusion.main(argv, generator="maftp") == 0 and os.path.isfile(out)
    again = ["--model_first_phase_path", out] + argv[2:4] + ["--output_path", out + ".2", "--generator", "maftp"]
    assert fusion.main(again) == 2  # fusing the fused output is refused
    assert "already a fused" in capsys.readouterr().err
    argv2, _ = _paths(tmp_path / "b")
    assert fusion.main(argv2, generator="fcclip") == 2
    assert "--generator fcclip expects 250" in capsys.readouterr().err
    assert fusion.main(argv2 + ["--generator", "maftp"], generator="fcclip") == 2
    assert "tools/weight_fuse.py --generator maftp" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # tools/weight_fuse.py needs --generator
        fusion.main(argv2)
    same = argv2[:5] + [argv2[1]]
    assert fusion.main(same, generator="maftp") == 2
    assert "overwrite an input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "script, extra, code",
    [
        ("weight_fuse_maftp.py", [], 0),
        ("weight_fuse.py", ["--generator", "maftp"], 0),
        ("weight_fuse.py", [], 2),  # --generator is required
        ("weight_fuse_fcclip.py", [], 2),  # a MAFT+ base has 100 queries, not 250
    ],
)
def test_scripts_run(tmp_path, monkeypatch, capsys, script, extra, code):
    argv, out = _paths(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, *argv, *extra])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(os.path.join(TOOLS, script), run_name="__main__")
    assert exit_info.value.code == code, capsys.readouterr().err
    assert os.path.isfile(out) == (code == 0)
    if code == 0:
        assert torch.load(out, weights_only=True)[FUSION_MARKER_KEY]["generator"] == "maftp"
