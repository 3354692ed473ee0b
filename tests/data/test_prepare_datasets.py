"""The datasets/prepare_*.py conversions on tiny inputs in each original format, then registration and loading via
DatasetCatalog."""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from mask_adapter.data.catalog import get_split, register_all
from mask_adapter.data.prepare import (
    prepare_ade20k_semantic,
    prepare_cityscapes,
    prepare_coco_panoptic_semantic,
    prepare_coco_stuff,
    prepare_mapillary,
)
from mask_adapter.data.vocabulary import load_vocabulary
from tests._raw_datasets import (
    REPO,
    ade_full_inputs,
    ade_inputs,
    cityscapes_inputs,
    mapillary_inputs,
    pascal_context_inputs,
    read,
    rgb_image,
    save,
    script,
    voc_inputs,
)


@pytest.fixture
def root(tmp_path):
    """A temporary dataset root registered for the test; the default root is restored afterwards."""
    register_all(str(tmp_path), overwrite=True)
    yield tmp_path
    register_all(None, overwrite=True)


def test_ade20k_sem_seg(root):
    ade = ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    prep = script("prepare_ade20k_sem_seg")
    assert prep.main(["--root", str(root)]) == 0
    out = ade / "annotations_detectron2" / "validation" / "ADE_val_00000001.png"
    label = read(out)
    assert label[0, 0] == 255 and label[1, 0] == 0 and label[3, 3] == 7
    mtime = out.stat().st_mtime_ns
    assert prepare_ade20k_semantic(str(root)) == 0 and out.stat().st_mtime_ns == mtime  # idempotent
    records = DatasetCatalog.get("openvocab_ade20k_sem_seg_val")
    assert len(records) == 1 and records[0]["sem_seg_file_name"] == str(out)
    meta = MetadataCatalog.get("openvocab_ade20k_sem_seg_val")
    assert len(meta.stuff_classes) == 150 and meta.ignore_label == 255


def test_ade20k_panoptic_and_instances(root):
    ade = ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    script("prepare_ade20k_sem_seg").main(["--root", str(root)])
    script("prepare_ade20k_pan_seg").main(["--root", str(root)])
    script("prepare_ade20k_ins_seg").main(["--root", str(root)])
    pan = json.loads((ade / "ade20k_panoptic_val.json").read_text())
    assert len(pan["categories"]) == 150 and sum(c["isthing"] for c in pan["categories"]) == 100
    (ann,) = pan["annotations"]
    assert {s["category_id"] for s in ann["segments_info"]} == {0, 7}
    records = DatasetCatalog.get("openvocab_ade20k_panoptic_val")
    segs = {s["category_id"]: s for s in records[0]["segments_info"]}
    assert segs[7]["isthing"] and not segs[0]["isthing"] and segs[7]["area"] == 16
    png = read(records[0]["pan_seg_file_name"]).astype(np.int64)
    ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
    assert (ids[2:6, 2:6] == segs[7]["id"]).all() and (ids[0] == 0).all()
    assert os.path.isfile(records[0]["sem_seg_file_name"])
    ins = DatasetCatalog.get("openvocab_ade20k_instance_val")
    (obj,) = ins[0]["annotations"]
    assert obj["category_id"] == 0  # bed is the first of the 100 thing classes
    assert MetadataCatalog.get("openvocab_ade20k_instance_val").thing_classes[0].startswith("bed")


def test_ade20k_full_sem_seg(root):
    ade = ade_full_inputs(root)
    assert script("prepare_ade20k_full_sem_seg").main(["--root", str(root)]) == 0
    label = read(ade / "annotations_detectron2" / "validation" / "ADE_val_00000001.tif")
    assert label.dtype == np.uint16
    assert (label[0] == 65535).all() and (label[1] == 846).all() and (label[2:] == 0).all()
    records = DatasetCatalog.get("openvocab_ade20k_full_sem_seg_val")
    assert len(records) == 1 and records[0]["sem_seg_file_name"].endswith(".tif")
    meta = MetadataCatalog.get("openvocab_ade20k_full_sem_seg_val")
    assert meta.ignore_label == 65535 and len(meta.stuff_classes) == 847


def test_ade20k_full_resizes_large_images():
    from mask_adapter.data.prepare import resize_ade_full

    img, lab = resize_ade_full(np.zeros((600, 1000, 3), np.uint8), np.ones((600, 1000), np.uint16))
    assert img.shape == (512, 853, 3) and lab.shape == (512, 853) and (lab == 1).all()


def test_coco_panoptic_to_semantic(root):
    coco = root / "coco"
    rgb_image(coco / "val2017" / "000000000001.jpg", 4, 6)
    pan = np.zeros((4, 6, 3), np.uint8)
    pan[:, :3] = (5, 0, 0)  # segment 5 = person (id 1)
    pan[:, 3:5] = (1, 1, 0)  # segment 257 = wall (id 199)
    save(coco / "panoptic_val2017" / "000000000001.png", pan)
    segments = [
        {"id": 5, "category_id": 1, "iscrowd": 0},
        {"id": 257, "category_id": 199, "iscrowd": 0},
    ]
    (coco / "annotations").mkdir(parents=True)
    (coco / "annotations" / "panoptic_val2017.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 4, "width": 6}],
                "annotations": [{"image_id": 1, "file_name": "000000000001.png", "segments_info": segments}],
                "categories": [],
            }
        )
    )
    prepare_coco_panoptic_semantic(str(root), splits=("val2017",))
    wall = [c.split(",")[0] for c in load_vocabulary("coco_panoptic")].index("wall")
    sem = read(coco / "panoptic_semseg_val2017" / "000000000001.png")
    assert (sem[:, :3] == 0).all() and (sem[:, 3:5] == wall).all() and (sem[:, 5] == 255).all()
    records = DatasetCatalog.get("openvocab_coco_2017_val_panoptic_with_sem_seg")
    assert records[0]["image_id"] == 1 and {s["category_id"] for s in records[0]["segments_info"]} == {0, wall}
    meta = MetadataCatalog.get("openvocab_coco_2017_val_panoptic_with_sem_seg")
    assert meta.label_divisor == 1000 and len(meta.stuff_classes) == 133 and len(meta.thing_classes) == 80


def test_coco_stuff(root):
    coco = root / "coco"
    for stem in ("000000000001", "000000000002"):
        rgb_image(coco / "val2017" / f"{stem}.jpg", 3, 4)
    label = np.array([[0, 11, 181, 255], [0, 0, 91, 92], [255, 255, 255, 255]], np.uint8)
    save(coco / "stuffthingmaps_trainval2017" / "val2017" / "000000000001.png", label)
    save(
        coco / "stuffthingmaps_trainval2017" / "val2017" / "000000000002.png",
        np.full((3, 4), 255, np.uint8),
    )
    (coco / "stuffthingmaps_trainval2017" / "train2017").mkdir()
    assert prepare_coco_stuff(str(root)) == 1  # the all-ignore map is skipped
    out = read(coco / "stuffthingmaps_detectron2" / "val2017" / "000000000001.png")
    # person -> 0; id 12 (unused) -> 255; wood (id 182) -> 170; banner (id 92) -> 80; blanket (id 93) -> 81
    assert out.tolist() == [[0, 255, 170, 255], [0, 0, 80, 81], [255] * 4]
    assert not (coco / "stuffthingmaps_detectron2" / "val2017" / "000000000002.png").exists()
    records = DatasetCatalog.get("openvocab_coco_2017_test_stuff_sem_seg")
    assert len(records) == 1 and len(MetadataCatalog.get("openvocab_coco_2017_test_stuff_sem_seg").stuff_classes) == 171


def test_pascal_voc(root):
    voc_inputs(root)
    script("prepare_pascal_voc_sem_seg").main(["--root", str(root)])
    d2 = root / "pascal_voc_d2"
    p21 = read(d2 / "annotations_pascal21" / "validation" / "2007_000002.png")
    p20 = read(d2 / "annotations_pascal20" / "validation" / "2007_000002.png")
    assert p21[2, 2] == 15 and p21[1, 1] == 0 and p21[0, 0] == 255
    assert p20[2, 2] == 14 and p20[1, 1] == 255 and p20[0, 0] == 255
    assert len(DatasetCatalog.get("openvocab_pascal20_sem_seg_val")) == 1
    assert len(MetadataCatalog.get("openvocab_pascal20_sem_seg_val").stuff_classes) == 20
    assert len(MetadataCatalog.get("openvocab_pascal21_sem_seg_val").stuff_classes) == 21


def test_pascal_context_59_and_459(root):
    pascal_context_inputs(root)
    script("prepare_pascal_ctx_sem_seg").main(["--root", str(root)])
    script("prepare_pascal_ctx_full_sem_seg").main(["--root", str(root)])
    d2 = root / "pascal_ctx_d2"
    for split, stem in (("training", "2008_000001"), ("validation", "2008_000002")):
        c59 = read(d2 / "annotations_ctx59" / split / f"{stem}.png")
        c459 = read(d2 / "annotations_ctx459" / split / f"{stem}.tif")
        # computer (459-label 85) is 59-class 18 ("computer case"); accordion and unlabeled are ignored
        assert c59.tolist() == [[255, 255, 0], [255, 18, 0]]
        assert c459.dtype == np.uint16 and c459.tolist() == [[65535, 0, 1], [458, 84, 1]]
    assert len(DatasetCatalog.get("openvocab_pascal_ctx59_sem_seg_val")) == 1
    assert len(DatasetCatalog.get("openvocab_pascal_ctx459_sem_seg_val")) == 1
    assert MetadataCatalog.get("openvocab_pascal_ctx459_sem_seg_val").ignore_label == 65535


def panoptic_ids(path) -> np.ndarray:
    png = read(path).astype(np.int64)
    return png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]


@pytest.mark.parametrize("offset", [0, 1 << 30])  # small ids (bincount) and large ones (sorted)
def test_segment_table_matches_per_mask_boxes(offset):
    from mask_adapter.data.prepare import mask_bbox, segment_table

    ids = np.random.RandomState(0).randint(0, 6, (9, 13)) * 1000 + offset
    ids[3:5, 2:9] = offset + 77
    values, inverse, areas, boxes = segment_table(ids)
    assert values.tolist() == sorted(np.unique(ids).tolist()) and (values[inverse] == ids).all()
    for k, v in enumerate(values):
        mask = ids == v
        assert areas[k] == mask.sum() and boxes[k].tolist() == mask_bbox(mask)


# Segments of tests/_raw_datasets.cityscapes_instance_ids(): id -> (label id, area, bbox, iscrowd), by hand.
CITYSCAPES_SEGMENTS = {
    7: (7, 14 * 64 - 128 - 96 - 80 - 14 * 4, [0, 16, 64, 14], 0),  # road minus cars, crowd and person
    11: (11, 8 * 64 - 16 - 6 * 4, [0, 8, 64, 8], 0),  # building minus caravan and person
    23: (23, 6 * 64, [0, 2, 64, 6], 0),  # sky
    26: (26, 80, [40, 20, 10, 8], 1),  # car region without instances: a crowd segment
    24000: (24, 80, [54, 10, 4, 20], 0),
    26000: (26, 128, [4, 18, 16, 8], 0),
    26001: (26, 96, [24, 18, 12, 8], 0),
}


def test_cityscapes_panoptic(root):
    city = cityscapes_inputs(root)
    single_car = np.full((32, 64), 7, np.uint16)
    single_car[4:8, 10:30] = 26003
    cityscapes_inputs(root, "val", "frankfurt_000001_000538", single_car)
    cityscapes_inputs(root, "train", "aachen_000000_000019")
    assert prepare_cityscapes(str(root)) == 3 * 2 + 2  # train-id map + panoptic PNG per image, one JSON per split
    json_path = city / "gtFine" / "cityscapes_panoptic_val.json"
    mtime = json_path.stat().st_mtime_ns
    main = script("prepare_cityscapes_panoptic").main
    assert main(["--root", str(root)]) == 0 and json_path.stat().st_mtime_ns == mtime  # idempotent

    gt = city / "gtFine" / "val" / "frankfurt"
    train_ids = read(gt / "frankfurt_000000_000294_gtFine_labelTrainIds.png")
    assert train_ids.dtype == np.uint8
    # unlabeled, sky, building, caravan, road, car (instance and crowd), person, ego vehicle
    for (y, x), train_id in {
        (0, 0): 255,
        (5, 5): 10,
        (9, 0): 2,
        (13, 1): 255,
        (28, 0): 0,
        (20, 5): 13,
        (22, 45): 13,
        (15, 55): 11,
        (31, 63): 255,
    }.items():
        assert train_ids[y, x] == train_id, (y, x)

    pan = json.loads((city / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    cats = [(c["id"], c["name"], c["isthing"]) for c in pan["categories"]]
    assert cats[:2] == [(7, "road", 0), (8, "sidewalk", 0)] and cats[-1] == (33, "bicycle", 1)
    assert len(pan["categories"]) == 19 and sum(c["isthing"] for c in pan["categories"]) == 8
    assert pan["images"][0] == {
        "id": "frankfurt_000000_000294",
        "file_name": "frankfurt_000000_000294_leftImg8bit.png",
        "height": 32,
        "width": 64,
    }
    segs = {s["id"]: s for s in pan["annotations"][0]["segments_info"]}
    assert {k: (s["category_id"], s["area"], s["bbox"], s["iscrowd"]) for k, s in segs.items()} == (CITYSCAPES_SEGMENTS)

    records = DatasetCatalog.get("openvocab_cityscapes_fine_panoptic_val")
    assert [r["image_id"] for r in records] == ["frankfurt_000000_000294", "frankfurt_000001_000538"]
    rec = records[0]
    image = city / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    assert rec["file_name"] == str(image)
    assert rec["sem_seg_file_name"] == str(gt / "frankfurt_000000_000294_gtFine_labelTrainIds.png")
    contiguous = {s["id"]: (s["category_id"], s["isthing"]) for s in rec["segments_info"]}
    assert contiguous == {
        7: (0, False),
        11: (2, False),
        23: (10, False),
        26: (13, True),
        24000: (11, True),
        26000: (13, True),
        26001: (13, True),
    }
    ids = panoptic_ids(rec["pan_seg_file_name"])
    assert ids[0, 0] == 0 and ids[13, 1] == 0 and ids[31, 0] == 0  # unlabeled, caravan, ego vehicle: void
    assert ids[20, 5] == 26000 and ids[20, 30] == 26001 and ids[22, 45] == 26 and ids[15, 55] == 24000
    assert {int(v): int((ids == v).sum()) for v in np.unique(ids) if v} == {
        k: v[1] for k, v in CITYSCAPES_SEGMENTS.items()
    }
    (car,) = [s for s in records[1]["segments_info"] if s["isthing"]]
    assert car["id"] == 26003 and car["area"] == 80 and car["category_id"] == 13
    assert len(DatasetCatalog.get("openvocab_cityscapes_fine_panoptic_train")) == 1
    # detectron2's Cityscapes evaluators glob <gt_dir>/*/*_gtFine_{instanceIds,labelIds}.png
    assert MetadataCatalog.get("openvocab_cityscapes_fine_panoptic_val").gt_dir == str(city / "gtFine" / "val")


def test_cityscapes_loader_under_a_root_with_a_dot(tmp_path):
    root = tmp_path / "d2.v1"
    register_all(str(root), overwrite=True)
    try:
        cityscapes_inputs(root)
        cityscapes_inputs(root, "train", "aachen_000000_000019")
        prepare_cityscapes(str(root))
        (rec,) = DatasetCatalog.get("openvocab_cityscapes_fine_panoptic_val")
        assert os.path.isfile(rec["sem_seg_file_name"]) and os.path.isfile(rec["pan_seg_file_name"])
    finally:
        register_all(None, overwrite=True)


# Segments of tests/_raw_datasets.mapillary_panoptic(): id -> (contiguous class, isthing, area), by hand.
MAPILLARY_SEGMENTS = {
    1000000: (27, False, 8 * 64 - 8),  # sky minus the person's top
    3: (17, False, 6 * 64 - 24),  # building
    70000: (13, False, 16 * 64 - 128 - 80 - 48),  # road minus the cars and the person
    5000: (55, True, 128),  # car
    5001: (55, True, 80),
    77: (19, True, 80),  # person
}


@pytest.mark.parametrize("layout", ["v1.2", "v2.0"])
def test_mapillary_vistas_panoptic(root, layout):
    mv = mapillary_inputs(root, layout)
    assert prepare_mapillary(str(root)) == 0  # the downloads hold every label: nothing to render
    assert prepare_mapillary(str(root)) == 0
    val = mv / "validation"
    if layout == "v2.0":  # the v1.2 folders are linked into place, relative to the split folder
        assert os.readlink(val / "panoptic") == os.path.join("v1.2", "panoptic")
        assert os.readlink(val / "labels") == os.path.join("v1.2", "labels")
    (rec,) = DatasetCatalog.get("openvocab_mapillary_vistas_panoptic_val")
    assert rec["image_id"] == "val_key_1" and rec["file_name"] == str(val / "images" / "val_key_1.jpg")
    assert {s["id"]: (s["category_id"], s["isthing"], s["area"]) for s in rec["segments_info"]} == (MAPILLARY_SEGMENTS)
    ids = panoptic_ids(rec["pan_seg_file_name"])
    assert ids[0, 0] == 0 and ids[5, 5] == 1000000 and ids[20, 5] == 5000 and ids[20, 52] == 77
    label = read(rec["sem_seg_file_name"])
    assert label[0, 0] == 65 and label[5, 5] == 27 and label[12, 0] == 17 and label[30, 0] == 13
    assert label[20, 5] == 55 and label[20, 52] == 19
    meta = MetadataCatalog.get("openvocab_mapillary_vistas_panoptic_val")
    assert meta.ignore_label == 65 and len(meta.stuff_classes) == 65
    assert meta.stuff_classes[label[20, 5]].startswith("car") and meta.stuff_classes[27].startswith("sky")
    assert len(DatasetCatalog.get("openvocab_mapillary_vistas_panoptic_train")) == 1


def test_mapillary_copy_and_labels_from_panoptic(root):
    mv = mapillary_inputs(root, "v2.0")
    raw = read(mv / "validation" / "v1.2" / "labels" / "val_key_1.png")
    shutil.rmtree(mv / "training" / "v1.2" / "labels")
    shutil.rmtree(mv / "validation" / "v1.2" / "labels")
    assert script("prepare_mapillary_vistas_panoptic").main(["--root", str(root), "--copy"]) == 0
    val = mv / "validation"
    assert not (val / "panoptic").is_symlink() and (val / "panoptic" / "panoptic_2018.json").is_file()
    rendered = read(val / "labels" / "val_key_1.png")
    assert rendered.dtype == np.uint8 and np.array_equal(rendered, raw)
    (rec,) = DatasetCatalog.get("openvocab_mapillary_vistas_panoptic_val")
    assert np.array_equal(read(rec["sem_seg_file_name"]), raw)


@pytest.mark.parametrize("name", ["openvocab_cityscapes_fine_panoptic_val", "openvocab_mapillary_vistas_panoptic_val"])
def test_prepared_ground_truth_scores_100_as_a_prediction(root, name):
    """The evaluators of the split (panopticapi PQ and mIoU) accept the prepared files as they are."""
    import torch
    from detectron2.evaluation import COCOPanopticEvaluator

    from mask_adapter.evaluation.sem_seg import OpenVocabSemSegEvaluator

    if "cityscapes" in name:
        cityscapes_inputs(root)
        cityscapes_inputs(root, "train", "aachen_000000_000019")
        prepare_cityscapes(str(root))
    else:
        mapillary_inputs(root, "v2.0")
        prepare_mapillary(str(root))
    meta = MetadataCatalog.get(name)
    panoptic, semantic = COCOPanopticEvaluator(name), OpenVocabSemSegEvaluator(name, distributed=False)
    panoptic.reset()
    semantic.reset()
    for rec in DatasetCatalog.get(name):
        segments = [
            {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]} for s in rec["segments_info"]
        ]
        label = torch.as_tensor(read(rec["sem_seg_file_name"]).astype(np.int64))
        scores = torch.nn.functional.one_hot(
            label.clamp(max=len(meta.stuff_classes) - 1), len(meta.stuff_classes)
        ).permute(2, 0, 1)
        output = {
            "panoptic_seg": (torch.as_tensor(panoptic_ids(rec["pan_seg_file_name"])), segments),
            "sem_seg": scores.float(),
        }
        panoptic.process([rec], [output])
        semantic.process([rec], [output])
    assert panoptic.evaluate()["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert semantic.evaluate()["sem_seg"]["mIoU"] == pytest.approx(100.0)


def test_scripts_are_launchers_of_the_package_commands():
    """Each datasets/prepare_<name>.py only runs mask_adapter.data.prepare.commands.<name>.main."""
    scripts = sorted((REPO / "datasets").glob("prepare_*.py"))
    assert len(scripts) == 11
    for path in scripts:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        _, *statements = tree.body  # the docstring, then the statements
        assert ast.get_docstring(tree).splitlines()[0] == script(path.stem).__doc__.splitlines()[0]
        imports = [n for n in statements if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [ast.unparse(n) for n in imports] == [
            "import sys",
            f"from mask_adapter.data.prepare.commands.{path.stem} import main",
        ], path.name
        rest = [ast.unparse(n) for n in statements if n not in imports]
        assert rest == ["if __name__ == '__main__':\n    sys.exit(main())"], path.name


@pytest.mark.slow
def test_cli_runs_and_reports_a_missing_root(tmp_path):
    cityscapes_inputs(tmp_path)
    cityscapes_inputs(tmp_path, "train", "aachen_000000_000019")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cli = [sys.executable, str(REPO / "datasets" / "prepare_cityscapes_panoptic.py"), "--root", str(tmp_path)]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cityscapes" / "gtFine" / "cityscapes_panoptic_val.json").is_file()
    cli = [sys.executable, str(REPO / "datasets" / "prepare_mapillary_vistas_panoptic.py")]
    failed = subprocess.run(cli + ["--root", str(tmp_path)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode != 0
    last = failed.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "mapillary_vistas" / "training") in last and "mapillary.com/dataset/vistas" in last


# ---------------------------------------------------------------- bad inputs: one clear line each


def one_line(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_missing_root_is_reported(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        script("prepare_ade20k_sem_seg").main(["--root", str(missing)])
    assert str(missing / "ADEChallengeData2016" / "annotations" / "training") in one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        script("prepare_pascal_ctx_sem_seg").main(["--root", str(missing)])
    assert "trainval" in one_line(e)


def test_missing_raw_cityscapes_and_mapillary_are_reported(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        script("prepare_cityscapes_panoptic").main(["--root", str(missing)])
    text = one_line(e)
    assert str(missing / "cityscapes" / "leftImg8bit" / "train") in text
    assert "https://www.cityscapes-dataset.com/downloads/" in text
    with pytest.raises(FileNotFoundError) as e:
        script("prepare_mapillary_vistas_panoptic").main(["--root", str(missing)])
    text = one_line(e)
    assert str(missing / "mapillary_vistas" / "training") in text
    assert "https://www.mapillary.com/dataset/vistas" in text


def test_missing_cityscapes_image_and_bad_instance_ids(root):
    city = cityscapes_inputs(root)
    cityscapes_inputs(root, "train", "aachen_000000_000019")
    image = city / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    image.unlink()
    with pytest.raises(FileNotFoundError) as e:
        prepare_cityscapes(str(root))
    assert str(image) in one_line(e) and "leftImg8bit_trainvaltest.zip" in str(e.value)
    cityscapes_inputs(root)
    bad = city / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_instanceIds.png"
    save(bad, np.full((32, 64), 40000, np.uint16))  # label id 40 does not exist
    with pytest.raises(ValueError) as e:
        prepare_cityscapes(str(root))
    assert "instance id 40000" in one_line(e) and str(bad) in str(e.value)


def test_mapillary_v2_only_and_wrong_classes(root):
    mv = mapillary_inputs(root, "v2.0")
    shutil.rmtree(mv / "training" / "v1.2")
    with pytest.raises(FileNotFoundError) as e:
        prepare_mapillary(str(root))
    assert "v2.0" in one_line(e) and "65 v1.2 classes" in str(e.value)
    mapillary_inputs(root, "v1.2")
    json_path = mv / "validation" / "panoptic" / "panoptic_2018.json"
    info = json.loads(json_path.read_text())
    info["categories"][55]["isthing"] = 0  # car (id 56) listed as stuff: not the v1.2 class table
    json_path.write_text(json.dumps(info))
    with pytest.raises(ValueError) as e:
        prepare_mapillary(str(root))
    assert "class id 56 (car) with isthing=1" in one_line(e) and str(json_path) in str(e.value)
    info["categories"][55]["isthing"] = 1
    info["annotations"][0]["segments_info"][0]["category_id"] = 66  # "unlabeled" is not a class
    json_path.write_text(json.dumps(info))
    with pytest.raises(ValueError) as e:
        prepare_mapillary(str(root))
    assert "category id 66" in one_line(e)


def test_missing_split_is_reported(root):
    ade_inputs(root, "training", "ADE_train_00000001")
    with pytest.raises(FileNotFoundError) as e:
        script("prepare_ade20k_sem_seg").main(["--root", str(root)])
    assert "annotations/validation" in one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get("openvocab_ade20k_sem_seg_val")
    text = one_line(e)
    assert "ADEChallengeData2016/images/validation" in text and "prepare_ade20k_sem_seg.py" in text


def test_corrupt_annotation_png(root):
    ade = ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    bad = ade / "annotations" / "validation" / "ADE_val_00000001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError) as e:
        script("prepare_ade20k_sem_seg").main(["--root", str(root)])
    assert str(bad) in one_line(e) and "corrupt" in str(e.value)


def test_label_outside_expected_range(root):
    ade = ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    save(ade / "annotations" / "validation" / "ADE_val_00000001.png", np.full((8, 10), 200, np.uint8))
    with pytest.raises(ValueError) as e:
        script("prepare_ade20k_sem_seg").main(["--root", str(root)])
    assert "label value 200" in one_line(e)


def test_unknown_dataset_name():
    with pytest.raises(KeyError) as e:
        get_split("openvocab_ade20k_panoptic_vall")
    assert "Unknown dataset 'openvocab_ade20k_panoptic_vall'" in one_line(e)
