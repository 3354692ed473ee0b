"""Shipped vocabularies (line, class and synonym counts), their side data, and the vocabulary parsers."""

import json
import os
import subprocess
import sys

import pytest

from mask_adapter.data.metadata import class_table, openvocab_demo_metadata
from mask_adapter.data.prepare import ADE_CATID_MAPPING
from mask_adapter.data.vocabulary import (
    INVALID_CLASS,
    LVIS_LEFTOVER_WIDTHS,
    VOCABULARY_KEYS,
    check_no_lvis_widths,
    count_synonyms,
    decode_text_file,
    load_vocabulary,
    load_vocabulary_entries,
    load_vocabulary_meta,
    parse_inline_vocabulary,
    parse_vocabulary_text,
    shipped_synonym_totals,
    split_synonyms,
)
from tests import REPO

VOCAB_DIR = REPO / "mask_adapter" / "data" / "vocabularies"

# key: (lines, invalid lines, classes) of the official files (+ the synthetic test vocabulary)
COUNTS = {
    "ade20k_150": (151, 1, 150),
    "ade20k_847": (848, 1, 847),
    "coco_panoptic": (201, 68, 133),
    "coco_stuff": (183, 12, 171),
    "pascal_ctx_459": (460, 1, 459),
    "pascal_ctx_59": (60, 1, 59),
    "pascal_voc_21": (21, 0, 21),
    "lvis_1203": (1203, 0, 1203),
    "cityscapes": (19, 0, 19),
    "mapillary_vistas": (66, 1, 65),
    "synthetic_shapes": (6, 1, 5),
}

# Synonym totals over the classes (what the text classifier encodes) ...
SYNONYMS = {
    "ade20k_150": 403,
    "ade20k_847": 1342,
    "pascal_ctx_459": 559,
    "pascal_ctx_59": 160,
    "pascal_voc_21": 153,
}
# ... and over every line including "0:invalid_class_id", the other common reading (404, 1,343, 560, 161).
SYNONYMS_ALL_LINES = {
    "ade20k_150": 404,
    "ade20k_847": 1343,
    "pascal_ctx_459": 560,
    "pascal_ctx_59": 161,
    "pascal_voc_21": 153,
}


def _raw_lines(key):
    return [
        line
        for line in (VOCAB_DIR / f"{key}_with_prompt_eng.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_every_key_is_tested():
    assert set(COUNTS) == set(VOCABULARY_KEYS)


@pytest.mark.parametrize("key", sorted(COUNTS))
def test_line_invalid_and_class_counts(key):
    lines, invalid, classes = COUNTS[key]
    raw = _raw_lines(key)
    assert len(raw) == lines
    assert sum(line.split(":", 1)[1] == INVALID_CLASS for line in raw) == invalid
    names = load_vocabulary(key)
    assert len(names) == classes
    assert all(n and n != INVALID_CLASS for n in names)
    ids = [i for i, _ in load_vocabulary_entries(key)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("key", sorted(SYNONYMS))
def test_synonym_totals(key):
    assert count_synonyms(load_vocabulary(key)) == SYNONYMS[key]
    all_lines = [line.split(":", 1)[1] for line in _raw_lines(key)]
    assert count_synonyms(all_lines) == SYNONYMS_ALL_LINES[key]


def test_pas20_drops_background_line():
    voc = load_vocabulary("pascal_voc_21")
    assert voc[0].startswith("background,") and len(split_synonyms(voc[0])) > 50
    assert voc[1].startswith("aeroplane")


def test_no_vocabulary_has_lvis_leftover_width():
    totals = check_no_lvis_widths()
    assert totals == shipped_synonym_totals()
    assert totals["lvis_1203"] == 1825  # 1203 classes, but more synonyms than classes
    demo = count_synonyms(openvocab_demo_metadata()["stuff_classes"])
    for key, total in list(totals.items()) + [("openvocab_dataset", demo)]:
        assert total not in LVIS_LEFTOVER_WIDTHS, key


def test_split_synonyms_follows_official_rule():
    # coco_stuff line 177 has a ", " that the official code normalises
    wood = [c for c in load_vocabulary("coco_stuff") if c.startswith("wall-wood")][0]
    assert wood == "wall-wood,wood wall, wall wood"
    assert split_synonyms(wood) == ["wall-wood", "wood wall", "wall wood"]
    assert split_synonyms("sky") == ["sky"]


def test_parse_vocabulary_text_and_errors():
    text = "0:invalid_class_id\n1:cat,kitten\n\n2:dog\n"
    assert parse_vocabulary_text(text) == ["cat,kitten", "dog"]
    with pytest.raises(ValueError, match=r"vocab.txt:2: expected 'id:name"):
        parse_vocabulary_text("1:cat\ndog\n", source="vocab.txt")
    with pytest.raises(ValueError, match="has no classes"):
        parse_vocabulary_text("0:invalid_class_id\n")
    with pytest.raises(ValueError, match="class id 3 has no name"):
        parse_vocabulary_text("3:\n")


def test_load_user_file_and_unknown_key(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("0:chat,chaton\n1:东京塔\n", encoding="utf-8")
    assert load_vocabulary(str(path)) == ["chat,chaton", "东京塔"]
    with pytest.raises(FileNotFoundError, match="neither a shipped key .*ade20k_150"):
        load_vocabulary("ade20k_151")


def test_parse_inline_vocabulary():
    assert parse_inline_vocabulary("cat,kitten;dog;traffic light") == [
        "cat,kitten",
        "dog",
        "traffic light",
    ]
    assert parse_inline_vocabulary("  cat , kitten ;  dog ") == ["cat,kitten", "dog"]
    assert parse_inline_vocabulary("chat|chien,toutou|東京タワー") == [
        "chat",
        "chien,toutou",
        "東京タワー",
    ]
    with pytest.raises(ValueError, match="Duplicate class name 'dog'") as e:
        parse_inline_vocabulary("dog;cat;dog,puppy")
    assert "\n" not in str(e.value)
    for bad, msg in (
        ("", "empty"),
        ("   ", "empty"),
        ("cat;;dog", "Class 2"),
        ("cat,,kitten", "empty synonym"),
    ):
        with pytest.raises(ValueError, match=msg):
            parse_inline_vocabulary(bad)


def test_side_data_is_consistent_with_vocabularies():
    ade = load_vocabulary_meta("ade20k_150")
    assert len(ade["colors"]) == 150 and len(ade["thing_indices"]) == 100
    with open(ADE_CATID_MAPPING, encoding="utf-8") as f:
        mapping = f.read().splitlines()[1:]
    rows = [r.split() for r in mapping if r.strip()]
    assert sorted({int(r[1]) - 1 for r in rows}) == ade["thing_indices"]
    full = load_vocabulary_meta("ade20k_847")["ade20k_2021_class_values"]
    assert len(full) == 847 == len(set(full))
    # every full-ADE id of the instance mapping is one of the 847 classes, except booth variant 246
    assert {int(r[2]) for r in rows} - set(full) == {246}
    assert full[:3] == [2978, 312, 2420]  # wall, building, sky
    labels = load_vocabulary_meta("pascal_ctx_59")["pascal_ctx_459_labels"]
    c59, c459 = load_vocabulary("pascal_ctx_59"), load_vocabulary("pascal_ctx_459")
    assert len(labels) == 59 and labels == sorted(labels)
    mismatched = [
        (a, c459[label - 1]) for a, label in zip(c59, labels) if not set(a.split(",")) & set(c459[label - 1].split(","))
    ]
    assert mismatched == [("computer case", "computer")]  # openseg renamed the 59-class "computer"


def test_class_tables_thing_flags():
    coco = class_table("coco_panoptic")
    assert sum(c.isthing for c in coco) == 80 and coco[0].names.startswith("person") and coco[0].dataset_id == 1
    ade = class_table("ade20k_150")
    assert [c.dataset_id for c in ade] == list(range(150)) and ade[7].isthing and not ade[0].isthing
    city = class_table("cityscapes")
    assert sum(c.isthing for c in city) == 8 and city[0].dataset_id == 7
    assert sum(c.isthing for c in class_table("mapillary_vistas")) == 37
    assert [c.isthing for c in class_table("synthetic_shapes")] == [True, True, True, False, False]


def test_demo_vocabulary():
    meta = openvocab_demo_metadata()
    classes, things = meta["stuff_classes"], meta["thing_classes"]
    assert len(classes) == len(set(classes)) == len(meta["stuff_colors"])
    assert classes[: len(things)] == things
    assert things[0].startswith("person,") and "zucchini,courgette" in things
    assert meta["thing_dataset_id_to_contiguous_id"] == {i: i for i in range(len(things))}
    coco, ade = load_vocabulary("coco_panoptic"), load_vocabulary("ade20k_150")
    lvis = load_vocabulary("lvis_1203")
    assert set(classes) == set(coco) | set(ade) | set(lvis)


def test_package_data_independent_of_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_vocabulary("ade20k_847")) == 847


@pytest.mark.slow  # subprocess
def test_import_reads_no_file():
    code = (
        "import mask_adapter.data as d\n"
        "from detectron2.data import MetadataCatalog\n"
        "assert d.vocabulary._read_vocabulary.cache_info().currsize == 0\n"
        "assert d.vocabulary._read_meta.cache_info().currsize == 0\n"
        "assert not any(MetadataCatalog.get(s.name).is_materialized for s in d.SPLITS)\n"
        "print(len(MetadataCatalog.get('openvocab_ade20k_panoptic_val').stuff_classes))\n"
    )
    env = dict(os.environ, DETECTRON2_DATASETS="/nonexistent/root")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(REPO))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "150"


def test_meta_files_are_valid_json():
    for path in VOCAB_DIR.glob("*_meta.json"):
        assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_vocabulary_file_encodings_are_read(encoding, tmp_path):
    """UTF-8 with or without a byte-order mark (Notepad), UTF-16/32 with a mark, UTF-16 without one."""
    text = "5:cat,kitten\r\n9:chien\r\n12:草地\r\n"
    assert decode_text_file(text.encode(encoding), "v.txt") == text
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    assert load_vocabulary_entries(str(path)) == [(5, "cat,kitten"), (9, "chien"), (12, "草地")]


def test_undecodable_vocabulary_file_is_one_line():
    with pytest.raises(ValueError, match=r"^v\.txt is not UTF-8 text: byte 0xe9 at position 5; save it as UTF-8"):
        decode_text_file("0:caf\u00e9\n".encode("latin-1"), "v.txt")
    with pytest.raises(ValueError, match=r"^v\.txt holds NUL bytes"):
        decode_text_file(b"0:cat\x00\n", "v.txt")
