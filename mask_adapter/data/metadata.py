"""Dataset metadata derived from the shipped vocabularies, computed lazily on first access.

Detectron2 metadata (``MetadataCatalog``) is normally filled at registration. Building it here needs the
vocabulary files, and ``import mask_adapter`` must read no file, so each split gets a :class:`LazyMetadata`
that runs a builder the first time a missing attribute (``stuff_classes``, ``thing_classes``, ...) is read.

Class order follows the vocabulary file. Conventions (as in Mask2Former/FC-CLIP):
- ``stuff_classes`` lists *all* classes (things included) of semantic and panoptic splits; instance splits only
  have ``thing_classes``.
- ``thing_dataset_id_to_contiguous_id`` maps a dataset category id to its index in ``stuff_classes`` (panoptic) or
  in ``thing_classes`` (instance splits); ``stuff_dataset_id_to_contiguous_id`` maps every dataset id.
"""

import functools
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from detectron2.data import Metadata

from .vocabulary import load_vocabulary, load_vocabulary_entries, load_vocabulary_meta

__all__ = ["ClassInfo", "class_table", "LazyMetadata", "openvocab_demo_metadata", "default_colors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassInfo:
    """One class of a vocabulary.

    Attributes:
        dataset_id: category id used by the dataset's annotation files (panoptic/instance JSON).
        names: class string "name,synonym,...".
        isthing: whether the class has instances (panoptic/instance tasks).
        color: RGB colour for visualisation.
    """

    dataset_id: int
    names: str
    isthing: bool
    color: tuple[int, int, int]


def default_colors(n: int, key: str) -> list[tuple[int, int, int]]:
    """Deterministic pseudo-random RGB colours for vocabularies that ship none."""
    rng = np.random.RandomState(zlib.crc32(key.encode("utf-8")) & 0x7FFFFFFF)
    return [tuple(int(c) for c in rgb) for rgb in rng.randint(32, 256, size=(n, 3))]


def _coco_table() -> list[ClassInfo]:
    # COCO panoptic: vocabulary ids are the COCO category ids; thing flags and colours are detectron2's.
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    by_id = {c["id"]: c for c in COCO_CATEGORIES}
    return [
        ClassInfo(i, names, bool(by_id[i]["isthing"]), tuple(by_id[i]["color"]))
        for i, names in load_vocabulary_entries("coco_panoptic")
    ]


def _cityscapes_table() -> list[ClassInfo]:
    # Cityscapes: vocabulary ids are train ids; the panoptic JSON uses the label ids of detectron2's table.
    from detectron2.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES

    by_train_id = {c["trainId"]: c for c in CITYSCAPES_CATEGORIES}
    return [
        ClassInfo(
            by_train_id[i]["id"],
            names,
            bool(by_train_id[i]["isthing"]),
            tuple(by_train_id[i]["color"]),
        )
        for i, names in load_vocabulary_entries("cityscapes")
    ]


def _ade150_table() -> list[ClassInfo]:
    # ADE20K-150: the prepared panoptic/instance JSONs use the 0-based class index as category id
    # (vocabulary id - 1), as Mask2Former's prepare_ade20k_{pan,ins}_seg.py do.
    meta = load_vocabulary_meta("ade20k_150")
    things = set(meta["thing_indices"])
    entries = load_vocabulary_entries("ade20k_150")
    return [ClassInfo(i, names, i in things, tuple(meta["colors"][i])) for i, (_, names) in enumerate(entries)]


def _table_from_meta(key: str) -> list[ClassInfo]:
    # Vocabulary ids are the dataset ids; thing ids and colours come from <key>_meta.json.
    meta = load_vocabulary_meta(key)
    things = set(meta["thing_ids"])
    entries = load_vocabulary_entries(key)
    return [ClassInfo(i, names, i in things, tuple(meta["colors"][k])) for k, (i, names) in enumerate(entries)]


_TABLES: dict[str, Callable[[], list[ClassInfo]]] = {
    "coco_panoptic": _coco_table,
    "cityscapes": _cityscapes_table,
    "ade20k_150": _ade150_table,
    "mapillary_vistas": functools.partial(_table_from_meta, "mapillary_vistas"),
    "synthetic_shapes": functools.partial(_table_from_meta, "synthetic_shapes"),
}


def class_table(key_or_path: str) -> list[ClassInfo]:
    """Classes of a vocabulary with dataset ids, thing flags and colours.

    Args:
        key_or_path: a shipped vocabulary key or a user vocabulary file. Vocabularies without thing/stuff
            side data are all-stuff with generated colours, and their dataset id is the 0-based class index.

    Returns:
        One ClassInfo per class, in vocabulary order.
    """
    if key_or_path in _TABLES:
        return _TABLES[key_or_path]()
    names = load_vocabulary(key_or_path)
    colors = default_colors(len(names), str(key_or_path))
    return [ClassInfo(i, n, False, colors[i]) for i, n in enumerate(names)]


def semantic_metadata(classes: Sequence[ClassInfo]) -> dict[str, Any]:
    """Metadata fields of a semantic split: all classes as ``stuff_classes``."""
    return {
        "stuff_classes": [c.names for c in classes],
        "stuff_colors": [list(c.color) for c in classes],
    }


def panoptic_metadata(classes: Sequence[ClassInfo]) -> dict[str, Any]:
    """Metadata fields of a panoptic split (thing ids map into the all-class contiguous space)."""
    things = [(k, c) for k, c in enumerate(classes) if c.isthing]
    return {
        **semantic_metadata(classes),
        "thing_classes": [c.names for _, c in things],
        "thing_colors": [list(c.color) for _, c in things],
        "thing_dataset_id_to_contiguous_id": {c.dataset_id: k for k, c in things},
        "stuff_dataset_id_to_contiguous_id": {c.dataset_id: k for k, c in enumerate(classes)},
    }


def instance_metadata(classes: Sequence[ClassInfo]) -> dict[str, Any]:
    """Metadata fields of an instance split: the thing classes only, contiguous among themselves."""
    things = [c for c in classes if c.isthing]
    return {
        "thing_classes": [c.names for c in things],
        "thing_colors": [list(c.color) for c in things],
        "thing_dataset_id_to_contiguous_id": {c.dataset_id: k for k, c in enumerate(things)},
    }


class LazyMetadata(Metadata):
    """detectron2 ``Metadata`` whose vocabulary-derived fields are built on first access.

    The builder runs once, the first time an attribute that is not set eagerly is read (or ``as_dict()`` is
    called); its dict is then set as ordinary metadata, so later reads are plain attribute reads.
    """

    def __init__(self, name: str = "N/A", builder: Callable[[], dict[str, Any]] | None = None, **eager: Any):
        super().__init__(name=name, **eager)
        if builder is not None:
            self.__dict__["_lazy_builder"] = builder

    def _materialize(self) -> bool:
        builder = self.__dict__.pop("_lazy_builder", None)
        if builder is None:
            return False
        self.set(**builder())
        return True

    def __getattr__(self, key: str) -> Any:
        if not key.startswith("__") and self._materialize():
            return getattr(self, key)
        return super().__getattr__(key)

    def as_dict(self) -> dict[str, Any]:
        self._materialize()
        return super().as_dict()

    @property
    def is_materialized(self) -> bool:
        """Whether the lazy fields have been built."""
        return "_lazy_builder" not in self.__dict__


def openvocab_demo_metadata() -> dict[str, Any]:
    """Metadata of the demo's default vocabulary ``openvocab_dataset`` (the official demo's default).

    Things first (COCO things, ADE-150 things, LVIS-1203), then stuff (COCO stuff, ADE-150 stuff), duplicates
    removed by exact class string (first occurrence kept); ``stuff_classes`` holds all classes.

    Returns:
        Metadata fields: stuff/thing classes and colours, identity ``thing_dataset_id_to_contiguous_id`` over the
        thing block and ``stuff_dataset_id_to_contiguous_id`` over all classes.
    """
    coco, ade = class_table("coco_panoptic"), class_table("ade20k_150")
    lvis = load_vocabulary("lvis_1203")
    lvis_colors = default_colors(len(lvis), "lvis_1203")
    things = [(c.names, c.color) for c in coco if c.isthing] + [(c.names, c.color) for c in ade if c.isthing]
    things += list(zip(lvis, lvis_colors))
    stuff = [(c.names, c.color) for c in coco if not c.isthing] + [(c.names, c.color) for c in ade if not c.isthing]
    seen, thing_rows, stuff_rows = set(), [], []
    for rows, out in ((things, thing_rows), (stuff, stuff_rows)):
        for names, color in rows:
            if names not in seen:
                seen.add(names)
                out.append((names, list(color)))
    all_rows = thing_rows + stuff_rows
    return {
        "stuff_classes": [n for n, _ in all_rows],
        "stuff_colors": [c for _, c in all_rows],
        "thing_classes": [n for n, _ in thing_rows],
        "thing_colors": [c for _, c in thing_rows],
        "thing_dataset_id_to_contiguous_id": {i: i for i in range(len(thing_rows))},
        "stuff_dataset_id_to_contiguous_id": {i: i for i in range(len(all_rows))},
    }
