"""The vocabulary of a demo run: user classes (inline or file), a dataset's classes, or the default, combined.

A vocabulary is a pair (class strings "name,synonym,...", contiguous ids of the countable "thing" classes).
"""

import argparse
import logging
import os
from collections.abc import Sequence

from detectron2.config import CfgNode

from mask_adapter.api.config import is_random_tiny_model

__all__ = ["Vocab", "build_vocabulary", "dataset_vocabulary", "default_vocabulary", "file_label_ids", "user_classes"]

# The demos' one logger (mask_adapter.apps.demo and the modules it uses share it).
logger = logging.getLogger("mask_adapter.demo")

Vocab = tuple[list[str], list[int]]  # class strings, thing ids


def _check_unique(names: Sequence[str], source: str) -> None:
    from mask_adapter.data.vocabulary import split_synonyms

    seen: dict[str, int] = {}
    for i, c in enumerate(names):
        first = split_synonyms(c)[0].strip()
        if not first:
            raise ValueError(f"class {i + 1} of {source} has an empty name")
        if first in seen:
            raise ValueError(
                f"duplicate class {first!r} in {source} (classes {seen[first] + 1} and {i + 1}); "
                "give each class once and list its synonyms after commas"
            )
        seen[first] = i


def user_classes(args: argparse.Namespace) -> list[str]:
    """Class strings of --vocabulary / --vocabulary-file.

    Args:
        args: the parsed demo command line (``vocabulary``, ``vocabulary_file``).

    Returns:
        The classes in order ([] when neither option is given).
    """
    from mask_adapter.data.vocabulary import load_vocabulary, parse_inline_vocabulary

    if args.vocabulary_file is not None:
        if not os.path.isfile(args.vocabulary_file):
            raise FileNotFoundError(f"vocabulary file not found: {args.vocabulary_file}")
        names = [c.strip() for c in load_vocabulary(args.vocabulary_file)]
        _check_unique(names, args.vocabulary_file)
        return names
    if args.vocabulary is not None:
        if _names_a_file(args.vocabulary):
            raise ValueError(
                f"--vocabulary {args.vocabulary} names a file, but --vocabulary takes inline classes "
                "('cat,kitten;dog'); pass the file with --vocabulary-file"
            )
        return parse_inline_vocabulary(args.vocabulary)
    return []


def _names_a_file(value: str) -> bool:
    """Whether an inline --vocabulary looks like a mistaken file argument: an existing file whose name has a
    folder part or an extension (``classes.txt``, ``./cat``). A bare word such as ``cat`` is always a class, even
    when a file of that name happens to be in the working folder."""
    value = value.strip()
    looks_like_a_path = os.sep in value or "/" in value or bool(os.path.splitext(value)[1])
    return bool(value) and looks_like_a_path and os.path.isfile(value)


def file_label_ids(args: argparse.Namespace) -> list[int] | None:
    """The ids of a --vocabulary-file's classes (``5:cat`` -> 5), in file order, when they are the whole vocabulary
    (``--vocab-mode replace``): label maps then keep the file's ids. None otherwise (ids 0, 1, ... in order)."""
    from mask_adapter.data.vocabulary import load_vocabulary_entries

    if args.vocabulary_file is None or args.vocab_mode != "replace" or args.dataset_vocabulary:
        return None
    ids = [i for i, _ in load_vocabulary_entries(args.vocabulary_file)]
    if any(i < 0 for i in ids):
        raise ValueError(f"{args.vocabulary_file}: class id {min(ids)} is negative; use ids 0, 1, 2, ...")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{args.vocabulary_file}: class id {dup} is used twice; give each class its own id")
    return ids


def _ensure_registered(name: str) -> bool:
    from detectron2.data import DatasetCatalog

    if name in DatasetCatalog.list():
        return True
    from mask_adapter.data.catalog import register_all

    register_all()
    return name in DatasetCatalog.list()


def dataset_vocabulary(name: str) -> Vocab:
    """Classes and thing ids of a registered dataset, or of a shipped vocabulary key (all classes countable).

    Args:
        name: a dataset name (registered on demand) or a key of ``mask_adapter.data.vocabulary.VOCABULARY_KEYS``.

    Returns:
        The vocabulary.
    """
    from detectron2.data import MetadataCatalog

    from mask_adapter.data.vocabulary import VOCABULARY_KEYS, load_vocabulary
    from mask_adapter.modeling.meta_arch.vocabulary import Vocabulary

    if name in VOCABULARY_KEYS:
        names = load_vocabulary(name)
        return list(names), list(range(len(names)))
    if not _ensure_registered(name):
        raise ValueError(
            f"unknown dataset {name!r} for --dataset-vocabulary; give a registered dataset name "
            f"(e.g. openvocab_ade20k_panoptic_val) or a vocabulary key ({', '.join(VOCABULARY_KEYS)})"
        )
    vocab = Vocabulary.from_metadata(MetadataCatalog.get(name))
    return list(vocab.class_names), sorted(vocab.thing_ids)


def default_vocabulary(cfg: CfgNode) -> Vocab:
    """Pascal VOC's 20 classes for the tiny random model (the bundled photo is a VOC image), else the released
    demo's combined COCO + ADE-150 + LVIS vocabulary (``mask_adapter.data.catalog.OPENVOCAB_DEMO_DATASET``).

    Args:
        cfg: the demo's merged config.

    Returns:
        The vocabulary.
    """
    if is_random_tiny_model(cfg):
        from mask_adapter.data.vocabulary import load_vocabulary

        names = load_vocabulary("pascal_voc_21")[1:]  # line 0 is "background" with many stuff synonyms
        return list(names), list(range(len(names)))
    from mask_adapter.data.catalog import OPENVOCAB_DEMO_DATASET

    return dataset_vocabulary(OPENVOCAB_DEMO_DATASET)


def build_vocabulary(args: argparse.Namespace, cfg: CfgNode) -> Vocab:
    """The vocabulary of a demo run: class strings and the ids of countable (thing) classes.

    User classes (--vocabulary / --vocabulary-file) are all countable. ``extend`` appends them to the base
    vocabulary (--dataset-vocabulary, else the default), skipping classes the base already has.

    Args:
        args: the parsed demo command line (vocabulary options and ``vocab_mode``).
        cfg: the demo's merged config (chooses the default vocabulary).

    Returns:
        The vocabulary.
    """
    user = user_classes(args)
    if args.dataset_vocabulary and user and args.vocab_mode == "replace":
        raise ValueError(
            "--dataset-vocabulary and --vocabulary/--vocabulary-file both replace the vocabulary; "
            "give one, or use --vocab-mode extend to combine them"
        )
    if user and args.vocab_mode == "replace":
        return user, list(range(len(user)))
    base, things = dataset_vocabulary(args.dataset_vocabulary) if args.dataset_vocabulary else default_vocabulary(cfg)
    from mask_adapter.data.vocabulary import split_synonyms

    have = {split_synonyms(c)[0].strip() for c in base}
    extra = [c for c in user if split_synonyms(c)[0].strip() not in have]
    if len(extra) < len(user):
        logger.warning(
            "--vocab-mode extend: %d given classes are already in the vocabulary and were skipped",
            len(user) - len(extra),
        )
    names = list(base) + extra
    return names, list(things) + list(range(len(base), len(names)))
