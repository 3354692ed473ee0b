"""Official registry names, kept so official YAML files and checkpoints keep working.

Registries key on ``__name__``; names that break PascalCase are aliases of our classes. A name that another
package already registered is left alone with a warning (importing the official packages next to this one must
not crash).
"""

from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

from ..modeling.adapter.build import MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead
from ..modeling.backbone.clip import CLIPBackbone
from ..modeling.meta_arch import MAFTPlus, MaskAdapterWarmup
from ..utils.registry import register_once, register_unsupported

register_once(META_ARCH_REGISTRY, MAFTPlus, "MAFT_Plus")
register_once(META_ARCH_REGISTRY, MaskAdapterWarmup, "MASK_Adapter")
register_once(BACKBONE_REGISTRY, CLIPBackbone, "CLIP")
register_once(MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead, "MASKAdapterHead")
register_unsupported(
    META_ARCH_REGISTRY,
    "MaskFormer",
    "the base YAML files name it but every leaf config overrides it; use FCCLIP, MAFT_Plus, MASK_Adapter or "
    "Mask2FormerCLIP as MODEL.META_ARCHITECTURE",
)
