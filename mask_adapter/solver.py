"""Optimizer and learning-rate scheduler builders (Mask2Former style).

Parameter groups follow Mask2Former's ``build_optimizer`` (``facebookresearch/Mask2Former:train_net.py``): only
trainable parameters; ``torch.nn`` normalization layers get ``SOLVER.WEIGHT_DECAY_NORM``; ``nn.Embedding`` gets
``SOLVER.WEIGHT_DECAY_EMBED``; Swin's position tables get no decay; modules whose name contains "backbone" get
``lr * SOLVER.BACKBONE_MULTIPLIER``.

One deliberate difference, decided by *parameter name* (an official quirk kept for faithful retraining): in the
official code the adapter's ConvNeXt-block norms (``mask_adapter.cnext{i}.norm``) and the mask downscaler's
LayerNorm2d layers (``mask_adapter.mask_downscaling.{1,4}``) were custom classes that Mask2Former's
``isinstance`` test did not recognize, so they received the normal ``SOLVER.WEIGHT_DECAY``. Our adapter may build
them from ``nn.LayerNorm``; the name rule below keeps their official decay whatever class implements them. Only
the adapter's final ``mask_adapter.norm`` gets ``WEIGHT_DECAY_NORM``. Biases and ``gamma`` get the normal decay.
"""

import itertools
import logging
import re
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.solver import build_lr_scheduler as build_d2_lr_scheduler
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn

__all__ = [
    "NORMAL_DECAY_NORM_MODULES",
    "build_lr_scheduler",
    "build_optimizer",
    "get_optimizer_param_groups",
]

logger = logging.getLogger(__name__)

# torch.nn normalization classes (Mask2Former's list).
_NORM_MODULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)

# Module names of norms that keep the *normal* weight decay (official custom classes, see the module docstring).
# Matched with re.search against the full module name, so DDP's "module." prefix does not matter.
NORMAL_DECAY_NORM_MODULES: tuple[str, ...] = (
    r"(^|\.)mask_adapter\.cnext\d+\.norm$",
    r"(^|\.)mask_adapter\.mask_downscaling\.(1|4)$",
)
_NORMAL_DECAY_RE = re.compile("|".join(f"(?:{p})" for p in NORMAL_DECAY_NORM_MODULES))
# Swin parameters without weight decay (Mask2Former).
_NO_DECAY_PARAM_NAMES = ("relative_position_bias_table", "absolute_pos_embed")


def _param_hyperparams(module_name: str, module: nn.Module, param_name: str, cfg: CfgNode) -> dict[str, float]:
    """lr and weight_decay of one parameter, by the rules of the module docstring."""
    lr = cfg.SOLVER.BASE_LR
    weight_decay = cfg.SOLVER.WEIGHT_DECAY
    if "backbone" in module_name:
        lr = lr * cfg.SOLVER.BACKBONE_MULTIPLIER
    if param_name in _NO_DECAY_PARAM_NAMES:
        weight_decay = 0.0
    if isinstance(module, _NORM_MODULE_TYPES) and not _NORMAL_DECAY_RE.search(module_name):
        weight_decay = cfg.SOLVER.WEIGHT_DECAY_NORM
    if isinstance(module, nn.Embedding):
        weight_decay = cfg.SOLVER.WEIGHT_DECAY_EMBED
    return {"lr": float(lr), "weight_decay": float(weight_decay)}


def get_optimizer_param_groups(cfg: CfgNode, model: nn.Module) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (lr, weight_decay), each group with its ``param_names``.

    Args:
        cfg: reads SOLVER.{BASE_LR, WEIGHT_DECAY, WEIGHT_DECAY_NORM, WEIGHT_DECAY_EMBED, BACKBONE_MULTIPLIER}.
        model: the full model; parameters with ``requires_grad`` False are left out, shared ones counted once.

    Returns:
        A list of ``{"params": [(name, Parameter), ...], "lr": float, "weight_decay": float}`` in the order the
        groups first appear; torch stores the names as the group's ``param_names``.
    """
    _check_solver_keys(cfg)
    groups: dict[tuple[float, float], list[tuple[str, nn.Parameter]]] = {}
    seen = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or param in seen:
                continue
            seen.add(param)
            hp = _param_hyperparams(module_name, module, param_name, cfg)
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            groups.setdefault((hp["lr"], hp["weight_decay"]), []).append((full_name, param))
    return [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]


def _check_solver_keys(cfg: CfgNode) -> None:
    missing = [k for k in ("WEIGHT_DECAY_EMBED", "BACKBONE_MULTIPLIER", "OPTIMIZER") if k not in cfg.SOLVER]
    if missing:
        raise KeyError(
            f"cfg.SOLVER lacks {missing}: call mask_adapter.add_mask_adapter_config(cfg) before building the solver"
        )


def _add_full_model_gradient_clipping(
    optimizer_type: type[torch.optim.Optimizer], clip_value: float, norm_type: float
) -> type[torch.optim.Optimizer]:
    """Subclass whose ``step`` first clips the norm of *all* gradients together (Mask2Former "full_model")."""

    def step(self, closure=None):
        all_params = itertools.chain(*[group["params"] for group in self.param_groups])
        torch.nn.utils.clip_grad_norm_(all_params, clip_value, norm_type)
        return super(full_model_type, self).step(closure=closure)

    full_model_type = type(optimizer_type.__name__ + "WithFullModelGradientClip", (optimizer_type,), {"step": step})
    return full_model_type


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer over the trainable parameters of ``model``.

    Args:
        cfg: SOLVER.{OPTIMIZER (ADAMW | SGD), BASE_LR, MOMENTUM, WEIGHT_DECAY*, BACKBONE_MULTIPLIER,
            CLIP_GRADIENTS.{ENABLED, CLIP_TYPE, CLIP_VALUE, NORM_TYPE}}. CLIP_TYPE "full_model" clips the global
            norm over all parameters at once (the shipped configs: 1.0); "value"/"norm" use detectron2's per-parameter
            ``maybe_add_gradient_clipping``.
        model: the full model.

    Returns:
        The optimizer; its param groups carry ``param_names``.
    """
    groups = get_optimizer_param_groups(cfg, model)
    if not groups:
        raise ValueError("the model has no trainable parameter (all requires_grad False); nothing to optimize")
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "SGD":
        optimizer_type, kwargs = torch.optim.SGD, {"momentum": cfg.SOLVER.MOMENTUM}
    elif name == "ADAMW":
        optimizer_type, kwargs = torch.optim.AdamW, {}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER {cfg.SOLVER.OPTIMIZER!r} is not supported; use ADAMW or SGD")
    clip = cfg.SOLVER.CLIP_GRADIENTS
    full_model_clip = clip.ENABLED and clip.CLIP_TYPE == "full_model" and clip.CLIP_VALUE > 0.0
    if full_model_clip:
        optimizer_type = _add_full_model_gradient_clipping(optimizer_type, clip.CLIP_VALUE, clip.NORM_TYPE)
    elif clip.ENABLED and clip.CLIP_TYPE != "full_model":
        optimizer_type = maybe_add_gradient_clipping(cfg, optimizer_type)
    optimizer = optimizer_type(groups, lr=cfg.SOLVER.BASE_LR, **kwargs)
    for group in optimizer.param_groups:
        logger.info(
            "optimizer group: %d tensors, lr %.3g, weight_decay %.3g",
            len(group["params"]),
            group["lr"],
            group["weight_decay"],
        )
    return optimizer


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Build SOLVER.LR_SCHEDULER_NAME: WarmupMultiStepLR, WarmupCosineLR (detectron2) or WarmupPolyLR (DeepLab).

    Args:
        cfg: SOLVER.{LR_SCHEDULER_NAME, MAX_ITER, STEPS, GAMMA, WARMUP_*, BASE_LR_END}; WarmupPolyLR also reads
            POLY_LR_POWER and POLY_LR_CONSTANT_ENDING (detectron2's ``add_deeplab_config``).
        optimizer: from :func:`build_optimizer`.

    Returns:
        An iteration-based scheduler (call ``step()`` once per iteration).
    """
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if name == "WarmupPolyLR":
        from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR

        if "POLY_LR_POWER" not in cfg.SOLVER or "POLY_LR_CONSTANT_ENDING" not in cfg.SOLVER:
            raise KeyError(
                "WarmupPolyLR needs SOLVER.POLY_LR_POWER and SOLVER.POLY_LR_CONSTANT_ENDING: call "
                "detectron2.projects.deeplab.add_deeplab_config(cfg)"
            )
        return WarmupPolyLR(
            optimizer,
            cfg.SOLVER.MAX_ITER,
            warmup_factor=cfg.SOLVER.WARMUP_FACTOR,
            warmup_iters=cfg.SOLVER.WARMUP_ITERS,
            warmup_method=cfg.SOLVER.WARMUP_METHOD,
            power=cfg.SOLVER.POLY_LR_POWER,
            constant_ending=cfg.SOLVER.POLY_LR_CONSTANT_ENDING,
        )
    if name in ("WarmupMultiStepLR", "WarmupCosineLR"):
        return build_d2_lr_scheduler(cfg, optimizer)
    raise ValueError(
        f"SOLVER.LR_SCHEDULER_NAME {name!r} is not supported; use WarmupMultiStepLR, WarmupCosineLR or WarmupPolyLR"
    )
