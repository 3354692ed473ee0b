"""Duplicate-safe registration in detectron2 registries.

The official FC-CLIP / MAFT+ / Mask-Adapter packages register the same names (``FCCLIP``, ``CLIP``,
``MultiScaleMaskedTransformerDecoder`` ...), so importing two of them crashed. Here an existing entry wins and a
warning names the conflict.
"""

import logging
from typing import TypeVar

from detectron2.utils.registry import Registry

__all__ = ["register_once", "register_unsupported"]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=type)


def register_once(registry: Registry, obj: T, name: str | None = None) -> T:
    """Register ``obj`` under ``name`` (default ``obj.__name__``) unless the name is taken.

    Args:
        registry: a detectron2 ``Registry``.
        obj: class to register.
        name: registry key, for aliases such as the official ``MAFT_Plus``.

    Returns:
        ``obj`` unchanged (so it also works as ``cls = register_once(REG, cls)``).
    """
    key = name or obj.__name__
    if key not in registry:
        registry._do_register(key, obj)
        return obj
    existing = registry.get(key)
    if existing is not obj:
        logger.warning(
            "registry %s already holds %r (%s.%s); keeping it, %s.%s is not registered",
            registry._name,
            key,
            existing.__module__,
            existing.__qualname__,
            obj.__module__,
            obj.__qualname__,
        )
    return obj


def register_unsupported(registry: Registry, name: str, reason: str) -> None:
    """Register a placeholder for an official name this package does not implement.

    Official base YAML files name components their leaf files always override (e.g. META_ARCHITECTURE
    "MaskFormer", SEM_SEG_HEAD "FCCLIPMASKHead"); they must load, and building one raises one clear line.
    """

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        raise ValueError(f"{registry._name} {name!r} is not supported by mask_adapter: {reason}")

    doc = f"Placeholder for the official name {name!r}; building it raises ValueError."
    register_once(registry, type(name, (), {"__init__": __init__, "__doc__": doc, "__module__": __name__}))
