"""Optimizer groups by parameter name (official adapter-norm decay), full-model gradient clipping, LR schedulers."""

import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config
from torch import nn

from mask_adapter.solver import build_lr_scheduler, build_optimizer, get_optimizer_param_groups

WD, WD_NORM, WD_EMBED = 0.05, 0.001, 0.002  # distinct values so each rule is identifiable
LR, BACKBONE_MULT = 1e-4, 0.1


def _cfg(**solver):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.BASE_LR = LR
    cfg.SOLVER.WEIGHT_DECAY = WD
    cfg.SOLVER.WEIGHT_DECAY_NORM = WD_NORM
    cfg.SOLVER.WEIGHT_DECAY_EMBED = WD_EMBED
    cfg.SOLVER.BACKBONE_MULTIPLIER = BACKBONE_MULT
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


class _Block(nn.Module):  # names of the adapter's ConvNeXt block
    def __init__(self) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.norm = nn.LayerNorm(4)  # a torch.nn norm, yet normal decay by name (official custom class)
        self.pwconv1 = nn.Linear(4, 8)
        self.pwconv2 = nn.Linear(8, 4)
        self.gamma = nn.Parameter(torch.full((4,), 1e-6))


class _Adapter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(4, 4, 1)
        self.cnext1 = _Block()
        self.cnext2 = _Block()
        self.norm = nn.LayerNorm(4)  # the adapter's final norm: WEIGHT_DECAY_NORM
        self.final = nn.Conv2d(4, 2, 1)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.GroupNorm(1, 2),
            nn.GELU(),
            nn.Conv2d(2, 4, 3),
            nn.LayerNorm(4),
            nn.GELU(),
        )


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Linear(4, 4))
        self.backbone[2].requires_grad_(False)  # frozen part of the backbone
        self.sem_seg_head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).requires_grad_(False)
        self.mask_adapter = _Adapter()
        self.void_embedding = nn.Embedding(1, 4)


def _hyperparams(optimizer):
    out = {}
    for group in optimizer.param_groups:
        for name in group["param_names"]:
            assert name not in out, f"{name} in two groups"
            out[name] = (group["lr"], group["weight_decay"])
    return out


def test_weight_decay_by_parameter_name():
    model = _Toy()
    hp = _hyperparams(build_optimizer(_cfg(), model))
    normal = (LR, WD)
    for block in ("cnext1", "cnext2"):
        for p in (
            "norm.weight",
            "norm.bias",
            "gamma",
            "dwconv.bias",
            "pwconv1.weight",
            "pwconv2.bias",
        ):
            assert hp[f"mask_adapter.{block}.{p}"] == normal, p
    for i in (1, 4):
        assert hp[f"mask_adapter.mask_downscaling.{i}.weight"] == normal
        assert hp[f"mask_adapter.mask_downscaling.{i}.bias"] == normal
    assert hp["mask_adapter.norm.weight"] == (LR, WD_NORM)
    assert hp["mask_adapter.norm.bias"] == (LR, WD_NORM)
    assert hp["mask_adapter.final.weight"] == normal
    assert hp["void_embedding.weight"] == (LR, WD_EMBED)
    assert hp["backbone.0.weight"] == pytest.approx((LR * BACKBONE_MULT, WD))
    assert hp["backbone.1.weight"] == pytest.approx((LR * BACKBONE_MULT, WD_NORM))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(hp) == trainable  # frozen parameters (sem_seg_head, backbone.2) are excluded
    assert not any(n.startswith("sem_seg_head") or n.startswith("backbone.2") for n in hp)


def test_rule_survives_a_wrapper_prefix():
    wrapper = nn.Module()
    wrapper.module = _Toy()
    hp = {n: (g["lr"], g["weight_decay"]) for g in get_optimizer_param_groups(_cfg(), wrapper) for n, _ in g["params"]}
    assert hp["module.mask_adapter.cnext1.norm.weight"] == (LR, WD)
    assert hp["module.mask_adapter.norm.weight"] == (LR, WD_NORM)


def test_optimizer_types_and_errors():
    assert isinstance(build_optimizer(_cfg(), _Toy()), torch.optim.AdamW)
    sgd = build_optimizer(_cfg(OPTIMIZER="SGD", MOMENTUM=0.9), _Toy())
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match="ADAMW or SGD"):
        build_optimizer(_cfg(OPTIMIZER="LAMB"), _Toy())
    with pytest.raises(ValueError, match="no trainable parameter"):
        build_optimizer(_cfg(), _Toy().requires_grad_(False))
    cfg = get_cfg()
    with pytest.raises(KeyError, match="add_mask_adapter_config"):
        build_optimizer(cfg, _Toy())


def _two_param_model():
    model = nn.Module()
    model.a = nn.Linear(2, 1, bias=False)
    model.backbone = nn.LayerNorm(1)  # another group: lr x BACKBONE_MULTIPLIER
    return model


def _set_grads(model):
    model.a.weight.grad = torch.tensor([[3.0, 0.0]])
    model.backbone.weight.grad = torch.tensor([4.0])
    model.backbone.bias.grad = torch.tensor([0.0])


def _clip_cfg(enabled, clip_type, value=1.0):
    cfg = _cfg(OPTIMIZER="SGD", MOMENTUM=0.0, WEIGHT_DECAY=0.0, WEIGHT_DECAY_NORM=0.0, BASE_LR=1.0)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = enabled
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = value
    return cfg


def test_full_model_clipping_clips_the_global_norm():
    model = _two_param_model()
    opt = build_optimizer(_clip_cfg(True, "full_model"), model)
    assert len(opt.param_groups) == 2  # the gradients live in two groups
    before_a, before_n = model.a.weight.detach().clone(), model.backbone.weight.detach().clone()
    _set_grads(model)  # global norm 5 -> scaled by 1/5
    opt.step()
    torch.testing.assert_close(model.a.weight.grad, torch.tensor([[0.6, 0.0]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.backbone.weight.grad, torch.tensor([0.8]), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.a.weight.detach(), before_a - torch.tensor([[0.6, 0.0]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.backbone.weight.detach(), before_n - 0.8 * BACKBONE_MULT, atol=1e-5, rtol=0)


def test_per_parameter_value_clipping_and_disabled():
    model = _two_param_model()
    opt = build_optimizer(_clip_cfg(True, "value", 1.0), model)
    _set_grads(model)
    opt.step()
    torch.testing.assert_close(model.a.weight.grad, torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(model.backbone.weight.grad, torch.tensor([1.0]))
    model = _two_param_model()
    opt = build_optimizer(_clip_cfg(False, "full_model"), model)
    _set_grads(model)
    opt.step()
    torch.testing.assert_close(model.backbone.weight.grad, torch.tensor([4.0]))


def _lrs(cfg, n):
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_poly_lr():
    cfg = _cfg(
        LR_SCHEDULER_NAME="WarmupPolyLR",
        BASE_LR=1.0,
        MAX_ITER=100,
        WARMUP_ITERS=10,
        WARMUP_FACTOR=1.0,
    )
    lrs = _lrs(cfg, 60)
    for it in (10, 30, 59):
        assert lrs[it] == pytest.approx((1 - it / 100) ** 0.9)
    cfg.SOLVER.WARMUP_FACTOR = 0.1  # linear warmup from 0.1
    lrs = _lrs(cfg, 12)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx((0.1 * 0.5 + 0.5) * (1 - 5 / 100) ** 0.9)


def test_multistep_and_cosine_lr():
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupMultiStepLR", BASE_LR=1.0, MAX_ITER=10, STEPS=(4, 8), GAMMA=0.1)
    cfg.SOLVER.WARMUP_ITERS = 0
    lrs = _lrs(cfg, 10)
    assert lrs[3] == pytest.approx(1.0) and lrs[4] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.01)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    lrs = _lrs(cfg, 10)
    assert lrs[5] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))


def test_unknown_scheduler_and_missing_poly_keys():
    with pytest.raises(ValueError, match="WarmupPolyLR"):
        _lrs(_cfg(LR_SCHEDULER_NAME="StepLR"), 1)
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    with pytest.raises(KeyError, match="add_deeplab_config"):
        _lrs(cfg, 1)
