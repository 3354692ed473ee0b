"""Training dataset mappers (registered in DATASET_MAPPER_REGISTRY on import)."""

from .build import DATASET_MAPPER_REGISTRY, build_dataset_mapper  # noqa: F401
from .lsj import (
    COCOPanopticLSJMapper,
    LSJDatasetMapper,
    MaskFormerSemanticMapper,
    build_lsj_augmentations,
)  # noqa: F401
