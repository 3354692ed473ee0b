"""Official registry names, kept so official YAML files and checkpoints keep working.

Registries key on ``__name__``; names that break PascalCase are thin aliases of our classes. A name that some
other package already registered is left alone with a warning (importing the official packages next to this one
must not crash).
"""
import logging

from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

from .modeling.adapter.build import MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead
from .modeling.backbone.clip import CLIPBackbone
from .modeling.meta_arch import MAFTPlus, MaskAdapterWarmup

logger = logging.getLogger(__name__)


def _alias(registry, name: str, target: type) -> None:
    if name in registry:
        if registry.get(name) is not target and registry.get(name).__name__ != name:
            logger.warning("%s already has %r from another package; keeping it", registry._name, name)
        return
    registry._do_register(name, target)


_alias(META_ARCH_REGISTRY, "MAFT_Plus", MAFTPlus)
_alias(META_ARCH_REGISTRY, "MASK_Adapter", MaskAdapterWarmup)
_alias(BACKBONE_REGISTRY, "CLIP", CLIPBackbone)
_alias(MASK_ADAPTER_REGISTRY, "MASKAdapterHead", ConfigurableMaskAdapterHead)
