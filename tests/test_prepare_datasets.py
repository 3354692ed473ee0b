"""datasets/prepare_*.py on tiny inputs in each original format, then registration and loading via DatasetCatalog."""

import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from _raw_datasets import (
    ade_full_inputs,
    ade_inputs,
    pascal_context_inputs,
    read,
    rgb_image,
    save,
    script,
    voc_inputs,
)
from mask_adapter.data.catalog import get_split, register_all
from mask_adapter.data.vocabulary import load_vocabulary


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
    assert prep.prepare(str(root)) == 0 and out.stat().st_mtime_ns == mtime  # idempotent
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
    prep = script("prepare_ade20k_full_sem_seg")
    img, lab = prep._resize(np.zeros((600, 1000, 3), np.uint8), np.ones((600, 1000), np.uint16))
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
                "annotations": [
                    {"image_id": 1, "file_name": "000000000001.png", "segments_info": segments}
                ],
                "categories": [],
            }
        )
    )
    script("prepare_coco_semantic_annos_from_panoptic_annos").prepare(
        str(root), splits=("val2017",)
    )
    wall = [c.split(",")[0] for c in load_vocabulary("coco_panoptic")].index("wall")
    sem = read(coco / "panoptic_semseg_val2017" / "000000000001.png")
    assert (sem[:, :3] == 0).all() and (sem[:, 3:5] == wall).all() and (sem[:, 5] == 255).all()
    records = DatasetCatalog.get("openvocab_coco_2017_val_panoptic_with_sem_seg")
    assert records[0]["image_id"] == 1 and {
        s["category_id"] for s in records[0]["segments_info"]
    } == {0, wall}
    meta = MetadataCatalog.get("openvocab_coco_2017_val_panoptic_with_sem_seg")
    assert (
        meta.label_divisor == 1000
        and len(meta.stuff_classes) == 133
        and len(meta.thing_classes) == 80
    )


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
    assert (
        script("prepare_coco_stuff_sem_seg").prepare(str(root)) == 1
    )  # the all-ignore map is skipped
    out = read(coco / "stuffthingmaps_detectron2" / "val2017" / "000000000001.png")
    # person -> 0; id 12 (unused) -> 255; wood (id 182) -> 170; banner (id 92) -> 80; blanket (id 93) -> 81
    assert out.tolist() == [[0, 255, 170, 255], [0, 0, 80, 81], [255] * 4]
    assert not (coco / "stuffthingmaps_detectron2" / "val2017" / "000000000002.png").exists()
    records = DatasetCatalog.get("openvocab_coco_2017_test_stuff_sem_seg")
    assert (
        len(records) == 1
        and len(MetadataCatalog.get("openvocab_coco_2017_test_stuff_sem_seg").stuff_classes) == 171
    )


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
    save(
        ade / "annotations" / "validation" / "ADE_val_00000001.png", np.full((8, 10), 200, np.uint8)
    )
    with pytest.raises(ValueError) as e:
        script("prepare_ade20k_sem_seg").main(["--root", str(root)])
    assert "label value 200" in one_line(e)


def test_unknown_dataset_name():
    with pytest.raises(KeyError) as e:
        get_split("openvocab_ade20k_panoptic_vall")
    assert "Unknown dataset 'openvocab_ade20k_panoptic_vall'" in one_line(e)
