"""Datasets, vocabularies and mappers.

Importing this package registers every split of :mod:`mask_adapter.data.catalog` (lazy: no file is read) under
``$DETECTRON2_DATASETS`` (default "datasets") and the training mappers of :mod:`mask_adapter.data.mappers`.
"""

from . import catalog, mappers, vocabulary  # noqa: F401
from .catalog import (
    OPENVOCAB_DEMO_DATASET,
    SPLITS,
    get_split,
    register_all,
    register_custom_semseg,
)  # noqa: F401
from .mappers import DATASET_MAPPER_REGISTRY, build_dataset_mapper  # noqa: F401
from .vocabulary import load_vocabulary, parse_inline_vocabulary, split_synonyms  # noqa: F401

register_all()
