"""The model config of the demos and the Python API: which file to load, and how the options change it.

Config files come from ``mask_adapter.model_zoo`` (the packaged copy of the repository's ``configs/``), so this
works from an installed package as well as from a checkout.
"""

import argparse
from collections.abc import Sequence

from detectron2.config import CfgNode

from mask_adapter.api.predictor import TASK_FLAGS
from mask_adapter.checkpoint.hub import RELEASED_MODELS
from mask_adapter.model_zoo import get_config_file
from mask_adapter.modeling.mask_generators import MASK_SOURCES as TRAINING_FREE_SOURCES

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_CONFIG_NAME",
    "MASK_SOURCES",
    "build_cfg",
    "is_random_tiny_model",
    "released_config_file",
    "setup_cfg",
]

# The default model: the tiny random FC-CLIP + Mask-Adapter (no weights; its outputs only show the format).
DEFAULT_CONFIG_NAME = "tiny/fcclip_tiny.yaml"
DEFAULT_CONFIG = get_config_file(DEFAULT_CONFIG_NAME)

# The demos' mask sources (`--masks` of demo.py, the "Masks" choice of app.py): name -> what proposes the masks.
# Beside the model's own generator, every training-free source of the package's table.
MASK_SOURCES: dict[str, str] = {
    "generator": "the model's own mask generator",
    **{name: f"{src.label}'s automatic mask generator (training-free)" for name, src in TRAINING_FREE_SOURCES.items()},
}


def released_config_file(name: str) -> str:
    """The packaged config of a released model's short name (a key of ``mask_adapter.checkpoint.RELEASED_MODELS``)."""
    return str(get_config_file(RELEASED_MODELS[name].config))


def build_cfg(
    config_file: str | None = None,
    weights: str | None = None,
    opts: Sequence[str] = (),
    masks: str = "generator",
    sam_checkpoint: str | None = None,
    sam2_checkpoint: str | None = None,
    sam2_config: str | None = None,
    tasks: Sequence[str] = ("semantic",),
) -> CfgNode:
    """:func:`setup_cfg` with keyword arguments instead of a parsed command line.

    Args:
        config_file: a YAML file; None: the config of ``weights`` if it is a released short name, else
            ``DEFAULT_CONFIG`` (the tiny random model).
        weights: MODEL.WEIGHTS (file, URL or released short name); None keeps the config's value.
        opts: config overrides KEY VALUE ...
        masks: a key of ``MASK_SOURCES``.
        sam_checkpoint, sam2_checkpoint, sam2_config: the SAM / SAM2 weights (and SAM2 model config) of the
            "sam" / "sam2" mask sources.
        tasks: the outputs to enable ("semantic", "panoptic", "instance").

    Returns:
        The frozen config.
    """
    args = argparse.Namespace(
        config_file=None if config_file is None else str(config_file),
        weights=weights,
        opts=list(opts),
        masks=masks,
        sam_checkpoint=sam_checkpoint,
        sam2_checkpoint=sam2_checkpoint,
        sam2_config=sam2_config,
        task=list(tasks),
    )
    return setup_cfg(args)


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """Merge the config file, --opts, --weights, the mask source and the requested task flags.

    Args:
        args: the parsed demo command line (``config_file``, ``weights``, ``opts``, ``masks``, ``sam_checkpoint``,
            ``task``; for ``masks == "sam2"`` also ``sam2_checkpoint``, ``sam2_config``).

    Returns:
        The frozen config. Without --config-file it is the config of a short --weights name, else
        ``DEFAULT_CONFIG``.
    """
    from detectron2.config import get_cfg

    from mask_adapter import add_mask_adapter_config
    from mask_adapter.config import merge_config, resolve_cdt_variant
    from mask_adapter.modeling.meta_arch.sam import to_sam_config

    config_file = args.config_file
    if config_file is None:
        if args.weights in RELEASED_MODELS:
            config_file = released_config_file(args.weights)
        else:
            config_file = str(DEFAULT_CONFIG)
    if len(args.opts) % 2:
        raise ValueError(f"--opts needs KEY VALUE pairs, got an odd number of items: {args.opts}")
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    merge_config(cfg, config_file, args.opts)  # one-line errors: missing file, unknown key, wrong value type
    if args.weights is not None:
        cfg.MODEL.WEIGHTS = args.weights
    # Pin the MAFT+ CDT variant before enabling task flags: the official code derives it from PANOPTIC_ON,
    # and drawing a panoptic output must not change the model function.
    cfg.MODEL.MASK_ADAPTER.CDT_VARIANT = resolve_cdt_variant(cfg)
    if args.masks == "sam":
        cfg = to_sam_config(cfg, args.sam_checkpoint, source="sam")
    elif args.masks == "sam2":
        if args.sam_checkpoint is not None:
            raise ValueError("--sam-checkpoint is for --masks sam; give SAM2 weights with --sam2-checkpoint")
        cfg = to_sam_config(
            cfg, getattr(args, "sam2_checkpoint", None), source="sam2", model=getattr(args, "sam2_config", None)
        )
    for task in args.task:
        setattr(cfg.MODEL.MASK_FORMER.TEST, TASK_FLAGS[task], True)
    cfg.freeze()
    return cfg


def is_random_tiny_model(cfg: CfgNode) -> bool:
    """True for the bundled tiny configs (random tiny CLIP, no weights): outputs are meaningless.

    Args:
        cfg: a merged config.

    Returns:
        Whether its CLIP is one of the tiny test models.
    """
    return cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME.startswith("tiny_")
