"""Class vocabularies: the `id:name,synonym,...` files shipped as package data, and user vocabularies.

A *class string* is one class with its synonyms, e.g. ``"couch,sofa,sofas"``. Vocabulary files hold one class
per line as ``id:class string``; lines whose class string is ``invalid_class_id`` are placeholders for unused
dataset ids and are skipped, so the class order is the file order after skipping (as in the official loaders).

Package vocabularies are addressed by key (``"ade20k_150"`` -> ``vocabularies/ade20k_150_with_prompt_eng.txt``)
and read through ``importlib.resources``, never through working-directory paths. Nothing is read at import.
"""

import codecs
import functools
import json
import os
from collections.abc import Sequence
from importlib import resources

# One implementation of the official synonym rule (split on ","), re-exported here for data-side users.
from mask_adapter.modeling.text.classifier import split_synonyms

__all__ = [
    "decode_text_file",
    "VOCABULARY_KEYS",
    "INVALID_CLASS",
    "parse_vocabulary_text",
    "parse_vocabulary_entries",
    "load_vocabulary",
    "load_vocabulary_entries",
    "load_vocabulary_meta",
    "split_synonyms",
    "count_synonyms",
    "parse_inline_vocabulary",
    "shipped_synonym_totals",
    "check_no_lvis_widths",
    "LVIS_LEFTOVER_WIDTHS",
]

# Keys of the vocabularies shipped in mask_adapter/data/vocabularies/<key>_with_prompt_eng.txt.
VOCABULARY_KEYS: tuple[str, ...] = (
    "ade20k_150",
    "ade20k_847",
    "coco_panoptic",
    "coco_stuff",
    "pascal_ctx_459",
    "pascal_ctx_59",
    "pascal_voc_21",
    "lvis_1203",
    "cityscapes",
    "mapillary_vistas",
    "synthetic_shapes",
)

# Placeholder class string for unused dataset ids.
INVALID_CLASS = "invalid_class_id"

# Synonym totals at which the official stage-1 classifier skipped the per-class synonym max (an LVIS /
# Objects365 leftover that we do not reproduce). No shipped vocabulary may have exactly this many synonyms.
LVIS_LEFTOVER_WIDTHS: tuple[int, ...] = (1203, 365)

_VOCAB_SUFFIX = "_with_prompt_eng.txt"


def _resource(name: str):
    return resources.files("mask_adapter.data").joinpath("vocabularies", name)


def parse_vocabulary_entries(text: str, source: str = "<text>") -> list[tuple[int, str]]:
    """Parse `id:class string` lines into (id, class string) pairs, in file order, invalid ids skipped.

    Args:
        text: file content; blank lines are ignored.
        source: name used in error messages (a path or a key).

    Returns:
        [(dataset id, class string)], the class string kept verbatim (synonyms not split).
    """
    entries: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        idx, sep, names = line.partition(":")
        if not sep or not idx.strip().lstrip("-").isdigit():
            raise ValueError(
                f"{source}:{lineno}: expected 'id:name,synonym,...', got {raw!r}; "
                "every line starts with an integer id and a colon"
            )
        if not names.strip():
            raise ValueError(f"{source}:{lineno}: class id {idx} has no name; write 'id:name[,synonym...]'")
        if names.strip() == INVALID_CLASS:
            continue
        entries.append((int(idx), names))
    if not entries:
        raise ValueError(f"{source}: the vocabulary has no classes; write one 'id:name,synonym,...' line per class")
    return entries


def parse_vocabulary_text(text: str, source: str = "<text>") -> list[str]:
    """Parse vocabulary file content into class strings ("name,syn,...") in file order, invalid ids skipped.

    Args:
        text: content of an `id:name,synonym,...` file.
        source: name used in error messages.

    Returns:
        The class strings.
    """
    return [names for _, names in parse_vocabulary_entries(text, source)]


# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_text_file(data: bytes, source: str) -> str:
    """The text of a user's file: UTF-8, or any text with a byte-order mark (UTF-8 with BOM as Windows Notepad
    writes it, UTF-16 and UTF-32 LE/BE); the mark is dropped.

    Raises:
        ValueError: neither (one line naming the file, the first bad byte and the fix).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{source} starts with a {encoding.upper()} byte-order mark but is not valid {encoding.upper()} "
                    f"(at byte {e.start + len(bom)}); save it again as UTF-8"
                ) from None
    if b"\x00" in data and len(data) % 2 == 0:  # UTF-16 without a mark: every ASCII character has a zero byte
        for zeros, encoding in ((data[1::2], "utf-16-le"), (data[0::2], "utf-16-be")):
            if zeros.count(0) >= len(zeros) // 2:
                try:
                    return data.decode(encoding)
                except UnicodeDecodeError:
                    break
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{source} is not UTF-8 text: byte 0x{data[e.start]:02x} at position {e.start}; save it as UTF-8 "
            "(or UTF-16 with a byte-order mark)"
        ) from None
    if "\x00" in text:
        raise ValueError(f"{source} holds NUL bytes (a binary file?); give a UTF-8 text file")
    return text


@functools.cache
def _read_vocabulary(key_or_path: str) -> str:
    if key_or_path in VOCABULARY_KEYS:
        return _resource(key_or_path + _VOCAB_SUFFIX).read_text(encoding="utf-8")
    if os.path.isfile(key_or_path):
        with open(key_or_path, "rb") as f:
            return decode_text_file(f.read(), key_or_path)
    raise FileNotFoundError(
        f"Vocabulary {key_or_path!r} is neither a shipped key ({', '.join(VOCABULARY_KEYS)}) nor an existing "
        "file; pass a key or the path of an 'id:name,synonym,...' file"
    )


def load_vocabulary_entries(key_or_path: str) -> list[tuple[int, str]]:
    """(dataset id, class string) pairs of a shipped vocabulary key or a user file; invalid ids skipped.

    Args:
        key_or_path: a key of ``VOCABULARY_KEYS`` or a path to an `id:name,synonym,...` file.

    Returns:
        The pairs in file order.
    """
    return parse_vocabulary_entries(_read_vocabulary(str(key_or_path)), str(key_or_path))


def load_vocabulary(key_or_path: str) -> list[str]:
    """Class strings ("name,syn,...") of a shipped vocabulary key or a user file, in file order.

    Args:
        key_or_path: a key of ``VOCABULARY_KEYS`` (package data) or a path to an `id:name,synonym,...` file.

    Returns:
        One class string per class; ``invalid_class_id`` lines skipped.
    """
    return [names for _, names in load_vocabulary_entries(key_or_path)]


@functools.cache
def _read_meta(key: str) -> str:
    return _resource(f"{key}_meta.json").read_text(encoding="utf-8")


def load_vocabulary_meta(key: str) -> dict:
    """Per-vocabulary side data shipped as ``vocabularies/<key>_meta.json`` (thing flags, colours, id maps).

    Args:
        key: vocabulary key; only some keys have side data (ade20k_150, ade20k_847, pascal_ctx_59,
            mapillary_vistas, synthetic_shapes).

    Returns:
        The parsed JSON object (a fresh copy).
    """
    try:
        return json.loads(_read_meta(key))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No side data (thing flags / colours / id maps) is shipped for vocabulary {key!r}"
        ) from None


def count_synonyms(class_strings: Sequence[str]) -> int:
    """Total number of synonyms (text rows T of the classifier) of a list of class strings."""
    return sum(len(split_synonyms(c)) for c in class_strings)


def parse_inline_vocabulary(spec: str) -> list[str]:
    """Parse an inline vocabulary such as ``"cat,kitten;dog;traffic light"`` into class strings.

    Classes are separated by ";" (the demo's "|" is accepted as well), synonyms by ","; spaces around names are
    trimmed; any unicode is allowed.

    Args:
        spec: the inline vocabulary.

    Returns:
        Class strings, e.g. ``["cat,kitten", "dog", "traffic light"]``.

    Raises:
        ValueError: empty vocabulary or only separators, an empty class or synonym, or a class name (first name)
            given twice.
    """
    if not spec or not spec.strip():
        raise ValueError("The inline vocabulary is empty; give classes like 'cat,kitten;dog;traffic light'")
    if not spec.replace("|", ";").replace(";", "").replace(",", "").strip():
        raise ValueError(
            f"The inline vocabulary {spec.strip()!r} has only separators and no class names; give classes like "
            "'cat,kitten;dog;traffic light'"
        )
    classes: list[str] = []
    seen: dict[str, int] = {}
    for position, chunk in enumerate(spec.replace("|", ";").split(";"), start=1):
        names = [n.strip() for n in chunk.split(",")]
        if not any(names):
            raise ValueError(f"Class {position} of the inline vocabulary {spec!r} is empty; remove the extra ';'")
        if not all(names):
            raise ValueError(f"Class {position} ({chunk.strip()!r}) has an empty synonym; remove the extra ','")
        if names[0] in seen:
            raise ValueError(
                f"Duplicate class name {names[0]!r} in the inline vocabulary (classes {seen[names[0]]} and "
                f"{position}); give each class once and list its synonyms after commas"
            )
        seen[names[0]] = position
        classes.append(",".join(names))
    return classes


def shipped_synonym_totals() -> dict[str, int]:
    """Total synonym count of every shipped vocabulary (for :func:`check_no_lvis_widths`).

    Returns:
        {key: number of synonyms over its classes (invalid ids skipped)}.
    """
    return {key: count_synonyms(load_vocabulary(key)) for key in VOCABULARY_KEYS}


def check_no_lvis_widths() -> dict[str, int]:
    """Check that no shipped vocabulary has exactly 1203 or 365 synonyms.

    The official stage-1 classifier skipped the per-class synonym max at those raw widths (an LVIS / Objects365
    leftover); this package always takes the max, and this check guards against a vocabulary that would have
    triggered the old bypass. LVIS-1203 itself has 1,203 classes but 1,825 synonyms.

    Returns:
        {key: synonym total} of every shipped vocabulary.

    Raises:
        ValueError: naming the vocabularies with a leftover width.
    """
    totals = shipped_synonym_totals()
    bad = {k: v for k, v in totals.items() if v in LVIS_LEFTOVER_WIDTHS}
    if bad:
        raise ValueError(f"Vocabularies with exactly {LVIS_LEFTOVER_WIDTHS} synonyms: {bad}")
    return totals
