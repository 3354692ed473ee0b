"""Automatic mask generators of the training-free path: SAM (package ``segment-anything``) and SAM2 (``sam2``).

One table, ``MASK_SOURCES``, describes each source: the package it needs and how to install it, the config keys of
its model and checkpoint, where to get weights, how to build its model and which automatic mask generator wraps it.
``build_mask_generator`` does what all sources share (package check, model name, checkpoint file, generator
settings); ``mask_generator_from_cfg`` reads MODEL.SAM.* / MODEL.SAM2.*.

Both generators (``SamAutomaticMaskGenerator``, ``SAM2AutomaticMaskGenerator``) have one interface: ``generate(image)``
with an (H, W, 3) uint8 RGB array returns a list of dicts, each with "segmentation" (H, W) bool and "area",
"predicted_iou", "stability_score", ... No SAM or SAM2 weights are bundled.
"""

import importlib
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from detectron2.config import CfgNode
from torch import nn

__all__ = [
    "MASK_SOURCES",
    "MaskGenerator",
    "MaskSource",
    "build_mask_generator",
    "build_sam_mask_generator",
    "mask_generator_from_cfg",
    "mask_source",
    "sam2_config_name",
]

logger = logging.getLogger(__name__)


class MaskGenerator(Protocol):
    """What the SAM path needs from a mask generator (SamAutomaticMaskGenerator's interface)."""

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """(H, W, 3) uint8 RGB image -> list of {"segmentation": (H, W) bool, ...}."""
        ...


@dataclass(frozen=True)
class MaskSource:
    """One automatic mask generator package.

    Attributes:
        name: MODEL.SAM.SOURCE value and demo ``--masks`` choice.
        label: the model's name in messages.
        package: import name of the package.
        install: how to install it (one line).
        model_key, checkpoint_key: config keys of the model name and of the checkpoint file.
        checkpoint_flag: the demo option for the checkpoint.
        resolve_model: model name -> the name ``build`` takes; raises ValueError for unknown names.
        build: (resolved model name, checkpoint file or None for random weights, device) -> the model.
        generator: (model, generator settings) -> the automatic mask generator.
        checkpoint_hint: resolved model name -> where to get a checkpoint for it.
        cfg_settings: settings of this source only, read from a config (e.g. SAM2's use_m2m).
    """

    name: str
    label: str
    package: str
    install: str
    model_key: str
    checkpoint_key: str
    checkpoint_flag: str
    resolve_model: Callable[[str], str]
    build: Callable[[str, str | None, str], nn.Module]
    generator: Callable[[nn.Module, dict[str, Any]], MaskGenerator]
    checkpoint_hint: Callable[[str], str]
    cfg_settings: Callable[[CfgNode], dict[str, Any]] = field(default=lambda cfg: {})

    def read(self, cfg: CfgNode) -> tuple[str, str]:
        """(model name, checkpoint) of this source in ``cfg``."""
        return _cfg_node(cfg, self.model_key)[1], _cfg_node(cfg, self.checkpoint_key)[1]

    def configure(self, cfg: CfgNode, *, model: str | None = None, checkpoint: str | None = None) -> None:
        """Set this source's model and/or checkpoint keys in a (not frozen) ``cfg``; None leaves a key as it is."""
        for key, value in ((self.model_key, model), (self.checkpoint_key, checkpoint)):
            if value is not None:
                node, _ = _cfg_node(cfg, key)
                node[key.rsplit(".", 1)[1]] = value


def _cfg_node(cfg: CfgNode, key: str) -> tuple[CfgNode, Any]:
    """(parent node, value) of a dotted config key."""
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    return node, node[leaf]


# ---------------------------------------------------------------------------------------------------- SAM
def _resolve_sam_model(model_type: str) -> str:
    from segment_anything import sam_model_registry

    if model_type.startswith("sam2") or model_type.endswith(".yaml"):
        raise ValueError(
            f"MODEL.SAM.MODEL_TYPE {model_type!r} is a SAM2 model: set MODEL.SAM.SOURCE sam2 and MODEL.SAM2.CONFIG "
            f"{model_type} (demo: --masks sam2 --sam2-config {model_type} --sam2-checkpoint FILE)"
        )
    if model_type not in sam_model_registry:
        raise ValueError(
            f"unknown MODEL.SAM.MODEL_TYPE {model_type!r}; use one of {sorted(sam_model_registry)} "
            "or MODEL.SAM.SOURCE sam2 for a SAM2 model"
        )
    return model_type


def _build_sam(model_type: str, checkpoint: str | None, device: str) -> nn.Module:
    from segment_anything import sam_model_registry

    return sam_model_registry[model_type](checkpoint=checkpoint).to(device).eval()


def _sam_generator(model: nn.Module, settings: dict[str, Any]) -> MaskGenerator:
    from segment_anything import SamAutomaticMaskGenerator

    return SamAutomaticMaskGenerator(model, **settings)


def _sam_checkpoint_hint(model_type: str) -> str:
    return (
        "download a SAM checkpoint (e.g. sam_vit_b_01ec64.pth from "
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth) and pass it with --sam-checkpoint "
        "(MODEL.SAM.CHECKPOINT)"
    )


# ---------------------------------------------------------------------------------------------------- SAM2
_SAM2_CONFIG_FOLDERS = ("sam2", "sam2.1")


def _sam2_configs() -> list[str]:
    """Hydra names of the model configs shipped with the sam2 package ("configs/sam2.1/sam2.1_hiera_t.yaml", ...)."""
    import sam2

    root = Path(sam2.__file__).resolve().parent
    folders = [root / "configs" / folder for folder in _SAM2_CONFIG_FOLDERS]
    return sorted(p.relative_to(root).as_posix() for folder in folders for p in folder.glob("*.yaml"))


def sam2_config_name(config: str) -> str:
    """Hydra config name of a SAM2 model: "sam2.1_hiera_t" -> "configs/sam2.1/sam2.1_hiera_t.yaml".

    Args:
        config: a short name (file stem of a config of the sam2 package) or a config name ending in ".yaml".

    Returns:
        The config name ``sam2.build_sam.build_sam2`` takes (unchanged when it ends in ".yaml").
    """
    if config.endswith(".yaml"):
        return config
    folder = "sam2.1" if config.startswith("sam2.1") else "sam2"
    return f"configs/{folder}/{config}.yaml"


def _resolve_sam2_model(config: str) -> str:
    name = sam2_config_name(config)
    available = _sam2_configs()
    if name not in available:
        short = ", ".join(Path(c).stem for c in available)
        raise ValueError(f"unknown SAM2 config {config!r} (MODEL.SAM2.CONFIG); use one of the sam2 package's: {short}")
    return name


def _sam2_release(config_name: str) -> tuple[str, str] | None:
    """(model-hub repository, checkpoint file) of the official release of a SAM2 config, from the sam2 package."""
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    for repo_id, (name, file) in HF_MODEL_ID_TO_FILENAMES.items():
        if name == config_name:
            return repo_id, file
    return None


def _sam2_checkpoint_hint(config_name: str) -> str:
    release = _sam2_release(config_name)
    what = (
        f"{release[1]} (model hub repository {release[0]})"
        if release
        else "the checkpoint of that config (e.g. sam2.1_hiera_large.pt, model hub repository "
        "facebook/sam2.1-hiera-large)"
    )
    return (
        f"download the SAM2 checkpoint of {Path(config_name).stem}, {what}, and pass it with --sam2-checkpoint "
        "(MODEL.SAM2.CHECKPOINT)"
    )


def _first_line(e: BaseException) -> str:
    """The first informative line of an error ("Error(s) in loading state_dict for X:" is followed by details)."""
    lines = [s.strip() for s in str(e).splitlines() if s.strip()] or [type(e).__name__]
    return lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]


def _load_sam2_weights(model: nn.Module, checkpoint: str, config_name: str) -> None:
    """Load a SAM2 release file ({"model": state_dict}) or a flat state dict, strictly, with one-line errors."""
    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"cannot read SAM2 checkpoint {checkpoint} ({_first_line(e)}); download it again") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"SAM2 checkpoint {checkpoint} holds a {type(data).__name__}, expected a state dict")
    fix = f"pass the config of the checkpoint with --sam2-config (MODEL.SAM2.CONFIG), now {Path(config_name).stem}"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"SAM2 checkpoint {checkpoint} does not fit the model ({_first_line(e)}); {fix}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"SAM2 checkpoint {checkpoint} does not fit the model ({len(result.missing_keys)} tensors missing, e.g. "
            f"{result.missing_keys[:2]}; {len(result.unexpected_keys)} unexpected, e.g. "
            f"{result.unexpected_keys[:2]}); {fix}"
        )


def _build_sam2(config_name: str, checkpoint: str | None, device: str) -> nn.Module:
    from sam2.build_sam import build_sam2

    model = build_sam2(config_name, None, device="cpu", mode="eval")  # the package's own config, random weights
    if checkpoint is not None:
        _load_sam2_weights(model, checkpoint, config_name)
    return model.to(device).eval()


def _sam2_generator(model: nn.Module, settings: dict[str, Any]) -> MaskGenerator:
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator(model, **settings)


# ---------------------------------------------------------------------------------------------------- table
MASK_SOURCES: dict[str, MaskSource] = {
    "sam": MaskSource(
        name="sam",
        label="SAM",
        package="segment_anything",
        install="pip install segment-anything==1.0",
        model_key="MODEL.SAM.MODEL_TYPE",
        checkpoint_key="MODEL.SAM.CHECKPOINT",
        checkpoint_flag="--sam-checkpoint",
        resolve_model=_resolve_sam_model,
        build=_build_sam,
        generator=_sam_generator,
        checkpoint_hint=_sam_checkpoint_hint,
    ),
    "sam2": MaskSource(
        name="sam2",
        label="SAM2",
        package="sam2",
        install="SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 (or bash scripts/install.sh)",
        model_key="MODEL.SAM2.CONFIG",
        checkpoint_key="MODEL.SAM2.CHECKPOINT",
        checkpoint_flag="--sam2-checkpoint",
        resolve_model=_resolve_sam2_model,
        build=_build_sam2,
        generator=_sam2_generator,
        checkpoint_hint=_sam2_checkpoint_hint,
        cfg_settings=lambda cfg: {"use_m2m": bool(cfg.MODEL.SAM2.USE_M2M)},
    ),
}


def mask_source(name: str) -> MaskSource:
    """The entry of ``MASK_SOURCES`` named ``name``; ValueError naming the choices otherwise."""
    if name not in MASK_SOURCES:
        raise ValueError(f"unknown mask source {name!r} (MODEL.SAM.SOURCE); use one of {', '.join(MASK_SOURCES)}")
    return MASK_SOURCES[name]


def build_mask_generator(
    source: str,
    model: str,
    checkpoint: str | None,
    *,
    points_per_side: int = 32,
    pred_iou_thresh: float = 0.88,
    stability_score_thresh: float = 0.95,
    min_mask_region_area: int = 0,
    device: str = "cpu",
    **source_settings: Any,
) -> MaskGenerator:
    """Build the automatic mask generator of a source.

    Args:
        source: a key of ``MASK_SOURCES``: "sam" or "sam2".
        model: SAM: a ``segment_anything.sam_model_registry`` key ("vit_b", "vit_l", "vit_h"); SAM2: a config of the
            sam2 package ("sam2.1_hiera_t" ... "sam2.1_hiera_l", "sam2_hiera_t", or "configs/sam2.1/....yaml").
        checkpoint: the weights file; None builds random weights (tests only; a config always names a file).
        points_per_side, pred_iou_thresh, stability_score_thresh, min_mask_region_area: generator settings
            (MODEL.SAM.*).
        device: where the SAM / SAM2 model runs.
        source_settings: further keyword arguments of the source's generator (SAM2: ``use_m2m``).

    Returns:
        A ``SamAutomaticMaskGenerator`` / ``SAM2AutomaticMaskGenerator``.

    Raises:
        ImportError: the package is not installed. ValueError: unknown source or model, empty checkpoint, or a
        checkpoint that does not fit the model. FileNotFoundError: missing checkpoint file.
    """
    src = mask_source(source)
    try:
        importlib.import_module(src.package)
    except ImportError:
        raise ImportError(
            f"the {src.name} mask source needs the '{src.package}' package, which is not installed: {src.install}"
        ) from None
    name = src.resolve_model(model)
    if checkpoint is not None:
        if not checkpoint:
            raise ValueError(
                f"the {src.name} mask source needs weights but {src.checkpoint_key} is empty: "
                f"{src.checkpoint_hint(name)}"
            )
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"{src.label} checkpoint not found: {checkpoint}; {src.checkpoint_hint(name)}")
    else:
        logger.warning("%s mask source without a checkpoint: random weights", src.name)
    settings = dict(
        points_per_side=points_per_side,
        pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_score_thresh,
        min_mask_region_area=min_mask_region_area,
        **source_settings,
    )
    return src.generator(src.build(name, checkpoint, device), settings)


def build_sam_mask_generator(model_type: str, checkpoint: str | None, **kwargs: Any) -> MaskGenerator:
    """``build_mask_generator("sam", model_type, checkpoint, **kwargs)``."""
    return build_mask_generator("sam", model_type, checkpoint, **kwargs)


def mask_generator_from_cfg(cfg: CfgNode) -> MaskGenerator:
    """The mask generator of MODEL.SAM.SOURCE, with MODEL.SAM.* settings, on MODEL.DEVICE.

    Args:
        cfg: a config with the SAM keys (``add_mask_adapter_config``).

    Returns:
        See :func:`build_mask_generator` (the checkpoint is always the config's file: "" is an error).
    """
    sam = cfg.MODEL.SAM
    src = mask_source(sam.SOURCE)
    model, checkpoint = src.read(cfg)
    return build_mask_generator(
        src.name,
        model,
        checkpoint,
        points_per_side=sam.POINTS_PER_SIDE,
        pred_iou_thresh=sam.PRED_IOU_THRESH,
        stability_score_thresh=sam.STABILITY_SCORE_THRESH,
        min_mask_region_area=sam.MIN_MASK_REGION_AREA,
        device=cfg.MODEL.DEVICE,
        **src.cfg_settings(cfg),
    )
