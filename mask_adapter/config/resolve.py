"""Validation of the `mask_adapter` config keys and the resolution of their "auto" values.

The keys themselves are declared in `mask_adapter.config.keys`. What "auto" means can depend on the meta-architecture
(MAFT+ follows other conventions than FC-CLIP): each meta-architecture class states it in its ``auto_defaults``
class attribute, an `ArchDefaults`, which the resolvers take as an argument. This module imports no modeling code.

Typical use::

    check_config(cfg)
    defaults = arch_defaults(cfg.MODEL.META_ARCHITECTURE)
    projection = resolve_dense_projection(cfg, defaults)
"""

from dataclasses import dataclass
from typing import Any

from detectron2.config import CfgNode as CN
from detectron2.modeling import META_ARCH_REGISTRY

__all__ = [
    "COMPILE_MODES",
    "ArchDefaults",
    "arch_defaults",
    "check_config",
    "resolve_dense_projection",
    "resolve_cdt_variant",
    "resolve_match_pred_threshold",
    "resolve_cos_stop_grad",
    "resolve_seed",
]


@dataclass(frozen=True)
class ArchDefaults:
    """What the "auto" values of MODEL.MASK_ADAPTER.* (and a negative SEED) mean for one meta-architecture.

    The defaults are FC-CLIP's; MAFT+ overrides them (the scrambled dense projection, the 0.5 matcher
    threshold, no stop-gradient in the cosine loss, and its always-seeded training script).
    """

    dense_projection: str = "pixelwise"  # DENSE_PROJECTION "auto"
    match_pred_threshold: float = 0.4  # MATCH_PRED_THRESHOLD < 0
    cos_stop_grad: bool = True  # COS_STOP_GRAD "auto"
    seed: int = -1  # SEED used when the config's SEED is negative (-1 = unseeded)
    color_aug_ssd: bool = True  # the training mapper honours INPUT.COLOR_AUG_SSD (official stage 1 did not)


def arch_defaults(meta_architecture: str) -> ArchDefaults:
    """The ``auto_defaults`` of a registered meta-architecture (FC-CLIP's for names without them).

    Read from detectron2's META_ARCH_REGISTRY, which ``import mask_adapter`` fills.
    """
    if meta_architecture not in META_ARCH_REGISTRY:
        return ArchDefaults()
    return getattr(META_ARCH_REGISTRY.get(meta_architecture), "auto_defaults", ArchDefaults())


# ``torch.compile`` modes of MODEL.MASK_ADAPTER.COMPILE / ``MaskAdapterHead(compile_mode=...)`` ("none" = eager).
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")

# Allowed values of the enum-like string keys, checked by `check_config`.
_ENUM_KEYS: dict[str, tuple[str, ...]] = {
    "MODEL.MASK_ADAPTER.DENSE_PROJECTION": ("auto", "pixelwise", "maftp_scrambled"),
    "MODEL.MASK_ADAPTER.CDT_VARIANT": ("auto", "panoptic", "semantic"),
    "MODEL.MASK_ADAPTER.COS_STOP_GRAD": ("auto", "true", "false"),
    "MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER": ("adapter", "mask_pooling"),
    "MODEL.MASK_ADAPTER.AMP_DTYPE": ("none", "bf16", "fp16"),
    "MODEL.MASK_ADAPTER.COMPILE": COMPILE_MODES,
    "MODEL.MASK_ADAPTER.VOID_SKIP": ("exact", "none"),
}

# Integer keys that must be >= 0 (0 means "all" / "infer").
_NON_NEGATIVE_INT_KEYS = (
    "MODEL.MASK_ADAPTER.INFERENCE_CHUNK",
    "MODEL.MASK_ADAPTER.ADAPTER_TOP_K",
    "MODEL.MASK_ADAPTER.CLIP_DIM",
    "MODEL.MASK_FORMER.TEST.SEMANTIC_CHUNK",
    "MODEL.SAM.MIN_MASK_REGION_AREA",
)

# Integer keys that must be >= 1.
_POSITIVE_INT_KEYS = (
    "MODEL.MASK_ADAPTER.NUM_OUTPUT_MAPS",
    "MODEL.MASK_ADAPTER.MASK_IN_CHANNELS",
    "MODEL.MASK_ADAPTER.NUM_CHANNELS",
    "MODEL.MASK_ADAPTER.INFERENCE_MEMORY_MB",
    "MODEL.MASK_ADAPTER.WARMUP_NUM_MASKS",
    "MODEL.SAM.POINTS_PER_SIDE",
)


def _get(cfg: CN, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _as_enum(value: Any) -> str:
    """Lower-case string form of an enum value; bools map to "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def check_config(cfg: CN) -> None:
    """Validate enum-like and range-limited keys.

    Args:
        cfg: a config after `add_mask_adapter_config` and merging.

    Raises:
        ValueError: one message listing every invalid key, its value and the allowed values.
    """
    problems: list[str] = []
    for key, allowed in _ENUM_KEYS.items():
        value = _get(cfg, key)
        if _as_enum(value) not in allowed:
            problems.append(f"{key}={value!r} is invalid; allowed: {', '.join(allowed)}")
    for key in _NON_NEGATIVE_INT_KEYS:
        value = _get(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{key}={value!r} is invalid; expected an integer >= 0 (0 = all/auto)")
    for key in _POSITIVE_INT_KEYS:
        value = _get(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{key}={value!r} is invalid; expected an integer >= 1")
    threshold = cfg.MODEL.MASK_ADAPTER.MATCH_PRED_THRESHOLD
    if threshold != -1.0 and not 0.0 <= threshold <= 1.0:
        problems.append(
            f"MODEL.MASK_ADAPTER.MATCH_PRED_THRESHOLD={threshold!r} is invalid; expected -1 (auto) or a "
            "probability in [0, 1]"
        )
    if problems:
        raise ValueError("Invalid config: " + "; ".join(problems))


def resolve_dense_projection(cfg: CN, defaults: ArchDefaults) -> str:
    """Dense adapter-input projection.

    "auto" gives "maftp_scrambled" with MODEL.MASK_ADAPTER.TRAIN_MAFT (a stage-1 adapter for MAFT+: the frozen CDT
    and the released MAFT+ adapters were trained on that layout), else the meta-architecture's default.

    Args:
        cfg: merged config.
        defaults: the meta-architecture's ``auto_defaults``.

    Returns:
        "pixelwise" or "maftp_scrambled".
    """
    value = _as_enum(cfg.MODEL.MASK_ADAPTER.DENSE_PROJECTION)
    if value != "auto":
        return value
    if cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT:
        return "maftp_scrambled"
    return defaults.dense_projection


def resolve_cdt_variant(cfg: CN) -> str:
    """MAFT+ CDT layout.

    "auto" follows MODEL.MASK_FORMER.TEST.PANOPTIC_ON as the official code does (an evaluation
    flag thereby changes the model function; kept so released weights give their published numbers): "panoptic" if it
    is on, else "semantic". The released MAFTP-L weights were evaluated with "panoptic" (issue #20); the
    MAFT+ meta-architecture warns when a ConvNeXt-L model resolves to "semantic".

    Args:
        cfg: merged config.

    Returns:
        "panoptic" or "semantic".
    """
    value = _as_enum(cfg.MODEL.MASK_ADAPTER.CDT_VARIANT)
    if value == "auto":
        value = "panoptic" if cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON else "semantic"
    return value


def resolve_match_pred_threshold(cfg: CN, defaults: ArchDefaults) -> float:
    """Probability threshold that binarizes IoU-matched predicted masks in stage 2.

    A negative value means the meta-architecture's default (0.4 FC-CLIP, 0.5 MAFT+, the official values).

    Args:
        cfg: merged config.
        defaults: the meta-architecture's ``auto_defaults``.

    Returns:
        The threshold in [0, 1].
    """
    value = float(cfg.MODEL.MASK_ADAPTER.MATCH_PRED_THRESHOLD)
    if value >= 0.0:
        return value
    return defaults.match_pred_threshold


def resolve_cos_stop_grad(cfg: CN, defaults: ArchDefaults) -> bool:
    """Whether the GT-side embedding of the cosine loss is detached.

    "auto": the meta-architecture's default (True for FC-CLIP, whose official stage 2 detaches; False for MAFT+,
    whose official code does not).

    Args:
        cfg: merged config.
        defaults: the meta-architecture's ``auto_defaults``.

    Returns:
        True to stop the gradient.

    Raises:
        ValueError: the value is not one of "auto", "true", "false".
    """
    value = _as_enum(cfg.MODEL.MASK_ADAPTER.COS_STOP_GRAD)
    if value == "true":
        return True
    if value == "false":
        return False
    if value != "auto":
        allowed = ", ".join(_ENUM_KEYS["MODEL.MASK_ADAPTER.COS_STOP_GRAD"])
        raise ValueError(f"MODEL.MASK_ADAPTER.COS_STOP_GRAD={value!r} is invalid; allowed: {allowed}")
    return defaults.cos_stop_grad


def resolve_seed(cfg: CN, defaults: ArchDefaults) -> int:
    """SEED if it is >= 0, else the meta-architecture's default seed (MAFT+: 123, as its official script).

    Args:
        cfg: merged config.
        defaults: the meta-architecture's ``auto_defaults``.

    Returns:
        The seed; negative means unseeded.
    """
    return int(cfg.SEED) if cfg.SEED >= 0 else defaults.seed
