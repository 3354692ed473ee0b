"""The prepared ground truth equals what the official preparation scripts (Mask2Former / FC-CLIP / Mask-Adapter
``datasets/prepare_*.py``) write for the same raw input, and the official folder layouts are accepted."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from mask_adapter.data.catalog import register_all
from mask_adapter.data.prepare import (
    ADE_CATID_MAPPING,
    SegmentColors,
    ade_panoptic_categories,
    coco_stuff_lut,
    ids_to_rgb,
    prepare_ade20k_full,
    prepare_ade20k_instances,
    prepare_ade20k_panoptic,
    prepare_coco_stuff,
    read_ade_catid_mapping,
)
from mask_adapter.data.vocabulary import load_vocabulary
from tests._raw_datasets import ade_covered_stuff, ade_full_inputs, ade_inputs, read, save, script

MAPPING_FILE = ADE_CATID_MAPPING
PANOPTIC_JSON = "ADEChallengeData2016/ade20k_panoptic_val.json"


@pytest.fixture
def root(tmp_path):
    register_all(str(tmp_path), overwrite=True)
    yield tmp_path
    register_all(None, overwrite=True)


def covered_root(root):
    """ADEChallengeData2016 with the covered-stuff image as the only validation image."""
    ade_inputs(root, "validation", "ADE_val_00000001", *ade_covered_stuff())
    ade_inputs(root, "training", "ADE_train_00000001")
    # the panoptic splits also name the semantic folder (not read here)
    (root / "ADEChallengeData2016" / "annotations_detectron2" / "validation").mkdir(parents=True)
    return root / "ADEChallengeData2016"


def color_id(rgb) -> int:
    return int(rgb[0]) + 256 * int(rgb[1]) + 65536 * int(rgb[2])


def panoptic_ids(path) -> np.ndarray:
    png = read(path).astype(np.int64)
    return png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]


def official_panoptic_reference(sem, ins, mapping, categories):
    """The official prepare_ade20k_pan_seg.py rule, written out with panopticapi's IdGenerator: stuff first (one
    segment per stuff class, area and box of its own mask), then every instance painted over it. Deterministic
    when every thing class has at most one instance (no random colour)."""
    from panopticapi.utils import IdGenerator

    generator = IdGenerator({c["id"]: c for c in categories})
    pan, segments = np.zeros(sem.shape + (3,), np.uint8), []
    masks = [(int(c) - 1, sem == c) for c in np.unique(sem) if c and not categories[int(c) - 1]["isthing"]]
    masks += [
        (mapping[int(np.unique(ins[..., 0][ins[..., 1] == i])[0])], ins[..., 1] == i)
        for i in np.unique(ins[..., 1])
        if i
    ]
    for cat, mask in masks:
        seg_id, color = generator.get_id_and_color(cat)
        pan[mask] = color
        ys, xs = np.nonzero(mask)
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        segments.append({"id": int(seg_id), "category_id": cat, "area": int(mask.sum()), "bbox": box, "iscrowd": 0})
    return pan, segments


# Segments of tests/_raw_datasets.ade_covered_stuff() by the official rule: (category, area, bbox), by hand.
COVERED_OFFICIAL = [(0, 52, [0, 1, 10, 7]), (3, 12, [0, 5, 4, 3]), (7, 24, [0, 4, 6, 4]), (8, 6, [7, 1, 3, 2])]


def test_ade_panoptic_keeps_covered_stuff_with_pre_painting_area(root):
    ade = covered_root(root)
    assert prepare_ade20k_panoptic(str(root), MAPPING_FILE) == 2
    pan = json.loads((root / PANOPTIC_JSON).read_text())
    (ann,) = pan["annotations"]
    segments = ann["segments_info"]
    assert [(s["category_id"], s["area"], s["bbox"]) for s in segments] == COVERED_OFFICIAL
    # stuff ids are the class colours of the official palette, the first instance of a thing class too
    colors = {c["id"]: c["color"] for c in pan["categories"]}
    assert [s["id"] for s in segments] == [color_id(colors[c]) for c, _, _ in COVERED_OFFICIAL]
    ids = panoptic_ids(ade / "ade20k_panoptic_val" / "ADE_val_00000001.png")
    floor = segments[1]["id"]
    assert not (ids == floor).any()  # kept in the JSON although no pixel is left
    assert (ids == segments[0]["id"]).sum() == 40 and (ids[4:8, 0:6] == segments[2]["id"]).all()
    assert (ids[0] == 0).all()
    # key order and formatting of the official file (json.dump defaults)
    assert list(pan) == ["images", "annotations", "categories"]
    assert list(pan["images"][0]) == ["id", "file_name", "width", "height"]
    assert list(segments[0]) == ["id", "category_id", "area", "bbox", "iscrowd"]
    assert list(pan["categories"][0]) == ["name", "id", "isthing", "color"]
    assert (root / PANOPTIC_JSON).read_text() == json.dumps(pan)


def test_ade_panoptic_equals_the_official_rule(root):
    ade = covered_root(root)
    sem, ins = ade_covered_stuff()
    mapping = read_ade_catid_mapping(MAPPING_FILE)
    prepare_ade20k_panoptic(str(root), MAPPING_FILE)
    pan = json.loads((root / PANOPTIC_JSON).read_text())
    ref_png, ref_segments = official_panoptic_reference(sem, ins, mapping, pan["categories"])
    assert pan["annotations"][0]["segments_info"] == ref_segments
    assert np.array_equal(read(ade / "ade20k_panoptic_val" / "ADE_val_00000001.png"), ref_png)


def test_ade_panoptic_visible_areas_flag(root):
    covered_root(root)
    assert script("prepare_ade20k_pan_seg").main(["--root", str(root), "--visible-areas"]) == 0
    (ann,) = json.loads((root / PANOPTIC_JSON).read_text())["annotations"]
    got = [(s["category_id"], s["area"], s["bbox"]) for s in ann["segments_info"]]
    assert got == [(0, 40, [0, 1, 10, 7]), (7, 24, [0, 4, 6, 4]), (8, 6, [7, 1, 3, 2])]  # floor dropped


def test_ade_panoptic_categories_are_the_official_strings_and_colours():
    categories = ade_panoptic_categories(read_ade_catid_mapping(MAPPING_FILE))
    names = [c["name"] for c in categories]
    assert names[6] == "road, route" and names[8] == "window " and names[-1] == "flag"
    first_synonyms = [n.split(",")[0] for n in load_vocabulary("ade20k_150")]
    assert sum(a != b for a, b in zip(names, first_synonyms)) == 56
    assert [c["id"] for c in categories] == list(range(150)) and sum(c["isthing"] for c in categories) == 100
    assert categories[48]["color"] == [140, 140, 200] and categories[6]["color"] == [140, 140, 140]
    assert len({tuple(c["color"]) for c in categories}) == 150  # stuff ids (= colours) cannot collide
    # drawing keeps the registration colour of skyscraper
    assert MetadataCatalog.get("openvocab_ade20k_panoptic_val").stuff_colors[48] == [140, 140, 140]


def test_segment_colors_follow_the_id_generator_rule():
    categories = {c["id"]: c for c in ade_panoptic_categories(read_ade_catid_mapping(MAPPING_FILE))}
    bed = tuple(categories[7]["color"])
    stuff = {tuple(c["color"]) for c in categories.values() if not c["isthing"]}
    first = SegmentColors(categories, seed=0)
    drawn = [first.next(7) for _ in range(20)]
    assert drawn[0] == bed and len(set(drawn)) == 20 and first.next(0) == tuple(categories[0]["color"])
    assert all(max(abs(a - b) for a, b in zip(c, bed)) <= 30 and c not in stuff for c in drawn)
    again = SegmentColors(categories, seed=0)
    assert [again.next(7) for _ in range(20)] == drawn  # seeded: re-runs write the same files


def test_ade_panoptic_png_of_an_older_run_is_replaced(root):
    ade = covered_root(root)
    old = ade / "ade20k_panoptic_val" / "ADE_val_00000001.png"
    save(old, ids_to_rgb(np.arange(80).reshape(8, 10) % 3))  # e.g. sequential ids
    assert prepare_ade20k_panoptic(str(root), MAPPING_FILE) == 2
    segments = json.loads((root / PANOPTIC_JSON).read_text())["annotations"][0]["segments_info"]
    present = set(np.unique(panoptic_ids(old)).tolist()) - {0}
    assert present == {s["id"] for s in segments if s["category_id"] != 3}
    mtime = old.stat().st_mtime_ns
    assert prepare_ade20k_panoptic(str(root), MAPPING_FILE) == 0 and old.stat().st_mtime_ns == mtime


def ground_truth_pq(name: str) -> float:
    """PQ (detectron2's COCOPanopticEvaluator, panopticapi pq_compute) of the prepared PNGs used as predictions."""
    from detectron2.evaluation import COCOPanopticEvaluator

    evaluator = COCOPanopticEvaluator(name)
    evaluator.reset()
    for rec in DatasetCatalog.get(name):
        ids = panoptic_ids(rec["pan_seg_file_name"])
        present = set(np.unique(ids).tolist())
        segments = [
            {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]}
            for s in rec["segments_info"]
            if s["id"] in present
        ]
        evaluator.process([rec], [{"panoptic_seg": (torch.as_tensor(ids), segments)}])
    return evaluator.evaluate()["panoptic_seg"]["PQ"]


def test_ade_panoptic_ground_truth_scores_100_against_itself(root):
    ade_inputs(root)  # things do not cover stuff: the official segments are the visible ones
    ade_inputs(root, "training", "ADE_train_00000001")
    (root / "ADEChallengeData2016" / "annotations_detectron2" / "validation").mkdir(parents=True)
    prepare_ade20k_panoptic(str(root), MAPPING_FILE)
    assert ground_truth_pq("openvocab_ade20k_panoptic_val") == pytest.approx(100.0)


@pytest.mark.parametrize("visible_areas", [False, True])
def test_ade_panoptic_pq_where_things_cover_stuff(root, visible_areas):
    covered_root(root)
    prepare_ade20k_panoptic(str(root), MAPPING_FILE, visible_areas=visible_areas)
    # official: wall IoU 40 / 52 (the JSON area is the pre-painting one), the covered floor a false negative
    expected = 100.0 if visible_areas else 100.0 * (40 / 52 + 0 + 1 + 1) / 4
    assert ground_truth_pq("openvocab_ade20k_panoptic_val") == pytest.approx(expected)


def test_ade_instance_json_is_the_official_one(root):
    ade = covered_root(root)
    prepare_ade20k_instances(str(root), MAPPING_FILE)
    path = ade / "ade20k_instance_val.json"
    info = json.loads(path.read_text())
    assert path.read_text() == json.dumps(info)
    assert list(info) == ["images", "categories", "annotations"]
    categories = info["categories"]
    names = {c["id"]: c["name"] for c in categories}
    # the names of ade20k_instance_imgCatIds.json where they differ from the first vocabulary synonym
    assert [names[k] for k in (72, 82, 125, 130, 133, 139, 147)] == [
        "palm",
        "light",
        "pot",
        "screen",
        "hood",
        "fan",
        "glass",
    ]
    assert names[8] == "windowpane" and names[12] == "person" and len(categories) == 100
    mapping = read_ade_catid_mapping(MAPPING_FILE)
    assert [c["id"] for c in categories] == [mapping[k] for k in range(1, 101)]
    assert list(categories[0]) == ["id", "name"]
    bed, window = info["annotations"]
    assert list(bed) == ["id", "image_id", "iscrowd", "category_id", "bbox", "segmentation", "area"]
    assert (bed["id"], bed["category_id"], bed["area"], bed["bbox"]) == (1, 7, 24, [0, 4, 6, 4])
    assert (window["id"], window["category_id"], window["area"], window["bbox"]) == (2, 8, 6, [7, 1, 3, 2])
    assert info["images"] == [{"id": "ADE_val_00000001", "file_name": "ADE_val_00000001.jpg", "width": 10, "height": 8}]
    records = DatasetCatalog.get("openvocab_ade20k_instance_val")
    assert [a["category_id"] for a in records[0]["annotations"]] == [0, 1]  # bed, windowpane among the 100


def test_ade_instance_mapping_without_the_100_classes_is_reported(root, tmp_path):
    covered_root(root)
    short = tmp_path / "mapping.txt"
    short.write_text(
        "".join(Path(MAPPING_FILE).read_text().splitlines(keepends=True)[:-1])
    )  # instance class 100 missing
    with pytest.raises(ValueError) as e:
        prepare_ade20k_instances(str(root), str(short))
    assert "\n" not in str(e.value) and str(short) in str(e.value) and "99 instance classes" in str(e.value)


# ------------------------------------------------------------------ official folder layouts


def coco_stuff_map(path, value: int) -> None:
    save(path, np.array([[value, 0], [255, 255]], np.uint8))


def test_coco_stuff_reads_the_official_folder_first(root):
    coco = root / "coco"
    coco_stuff_map(coco / "stuffthingmaps" / "val2017" / "000000000001.png", 181)  # wood -> 170
    coco_stuff_map(coco / "stuffthingmaps_trainval2017" / "val2017" / "000000000001.png", 91)  # banner -> 80
    (coco / "stuffthingmaps" / "train2017").mkdir()
    assert prepare_coco_stuff(str(root)) == 1
    out = read(coco / "stuffthingmaps_detectron2" / "val2017" / "000000000001.png")
    assert out.tolist() == [[170, 0], [255, 255]]


def test_coco_stuff_reports_both_folders(root):
    with pytest.raises(FileNotFoundError) as e:
        prepare_coco_stuff(str(root))
    text = str(e.value)
    assert "\n" not in text
    assert str(root / "coco" / "stuffthingmaps" / "train2017") in text
    assert str(root / "coco" / "stuffthingmaps_trainval2017" / "train2017") in text


def test_coco_stuff_table_equals_the_official_mapping():
    # official: every COCO id - 1 in 0..181 except the 11 ids COCO-Stuff never uses, numbered in order; 255 kept
    unused = {11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90}
    kept = [k for k in range(182) if k not in unused]
    lut = coco_stuff_lut()
    assert lut[kept].tolist() == list(range(171))
    assert all(lut[k] == 255 for k in unused | set(range(182, 256)))


@pytest.mark.parametrize("parent", ["", "ade"])
def test_ade_full_accepts_both_layouts(root, parent):
    ade_full_inputs(root / parent if parent else root)
    assert prepare_ade20k_full(str(root)) == 1
    label = read(root / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation" / "ADE_val_00000001.tif")
    assert (label[0] == 65535).all() and (label[1] == 846).all() and (label[2:] == 0).all()
    assert len(DatasetCatalog.get("openvocab_ade20k_full_sem_seg_val")) == 1


def test_ade_full_keeps_grayscale_images_grayscale(root):
    from PIL import Image

    ade = ade_full_inputs(root)
    image = ade / "images" / "ADE" / "validation" / "home" / "bedroom" / "ADE_val_00000001.jpg"
    Image.fromarray(np.full((6, 7), 90, np.uint8)).save(image)
    prepare_ade20k_full(str(root))
    with Image.open(ade / "images_detectron2" / "validation" / "ADE_val_00000001.jpg") as out:
        assert out.mode == "L" and out.size == (7, 6)


def test_ade_full_reports_both_folders(root):
    with pytest.raises(FileNotFoundError) as e:
        prepare_ade20k_full(str(root))
    text = str(e.value)
    assert "\n" not in text
    assert str(root / "ADE20K_2021_17_01") in text and str(root / "ade" / "ADE20K_2021_17_01") in text
