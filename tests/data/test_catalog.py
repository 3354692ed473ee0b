"""The split catalog: names, metadata, lazy registration, custom and synthetic datasets."""

import copy
import json
import logging
import pickle

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from mask_adapter.data.catalog import SPLITS, get_split, register_all, register_custom_semseg
from mask_adapter.data.metadata import LazyMetadata
from mask_adapter.data.synthetic import make_synthetic_dataset
from mask_adapter.evaluation.build import EVALUATOR_TABLE

# name: (evaluator_type, ignore_label, number of classes) of the official registrations
EXPECTED = {}
for _s in ("train", "val"):
    EXPECTED[f"openvocab_coco_2017_{_s}_panoptic_with_sem_seg"] = ("coco_panoptic_seg", 255, 133)
    EXPECTED[f"openvocab_coco_2017_{_s}"] = ("coco", 255, 80)
    EXPECTED[f"openvocab_ade20k_panoptic_{_s}"] = ("ade20k_panoptic_seg", 255, 150)
    EXPECTED[f"openvocab_ade20k_sem_seg_{_s}"] = ("sem_seg", 255, 150)
    EXPECTED[f"openvocab_ade20k_full_sem_seg_{_s}"] = ("sem_seg", 65535, 847)
    EXPECTED[f"openvocab_ade20k_instance_{_s}"] = ("coco", 255, 100)
    EXPECTED[f"openvocab_pascal_ctx59_sem_seg_{_s}"] = ("sem_seg", 255, 59)
    EXPECTED[f"openvocab_pascal_ctx459_sem_seg_{_s}"] = ("sem_seg", 65535, 459)
    EXPECTED[f"openvocab_pascal20_sem_seg_{_s}"] = ("sem_seg", 255, 20)
    EXPECTED[f"openvocab_pascal21_sem_seg_{_s}"] = ("sem_seg", 255, 21)
    EXPECTED[f"openvocab_cityscapes_fine_panoptic_{_s}"] = ("cityscapes_panoptic_seg", 255, 19)
    EXPECTED[f"openvocab_mapillary_vistas_panoptic_{_s}"] = (
        "mapillary_vistas_panoptic_seg",
        65,
        65,
    )
    EXPECTED[f"synthetic_shapes_panoptic_{_s}"] = ("coco_panoptic_seg", 255, 5)
for _s in ("train", "test"):
    EXPECTED[f"openvocab_coco_2017_{_s}_stuff_sem_seg"] = ("sem_seg", 255, 171)


@pytest.fixture
def root(tmp_path):
    register_all(str(tmp_path), overwrite=True)
    yield tmp_path
    register_all(None, overwrite=True)


def test_table_has_exactly_the_spec_splits():
    assert sorted(s.name for s in SPLITS) == sorted(EXPECTED)
    assert set(DatasetCatalog.list()) >= set(EXPECTED) | {"openvocab_dataset"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_split_metadata(name):
    evaluator_type, ignore, n = EXPECTED[name]
    meta = MetadataCatalog.get(name)
    assert meta.dataname == name and meta.evaluator_type == evaluator_type and meta.ignore_label == ignore
    assert evaluator_type in EVALUATOR_TABLE
    classes = meta.get("stuff_classes") or meta.thing_classes
    assert len(classes) == n and len(set(classes)) == n
    assert meta.vocabulary_key == get_split(name).vocab
    if "panoptic" in evaluator_type:
        things = meta.thing_dataset_id_to_contiguous_id
        stuff = meta.stuff_dataset_id_to_contiguous_id
        assert sorted(stuff.values()) == list(range(n))
        assert [meta.stuff_classes[i] for i in sorted(things.values())] == meta.thing_classes
        assert meta.panoptic_root and meta.panoptic_json and len(meta.thing_colors) == len(meta.thing_classes)
    if evaluator_type == "coco":
        assert sorted(meta.thing_dataset_id_to_contiguous_id.values()) == list(range(n))


def test_dataset_ids_and_label_divisor():
    coco = MetadataCatalog.get("openvocab_coco_2017_val_panoptic_with_sem_seg")
    assert coco.label_divisor == 1000 and coco.thing_dataset_id_to_contiguous_id[1] == 0
    assert coco.stuff_dataset_id_to_contiguous_id[200] == 132 and 200 not in coco.thing_dataset_id_to_contiguous_id
    assert coco.json_file.endswith("coco/annotations/instances_val2017.json")
    ade = MetadataCatalog.get("openvocab_ade20k_panoptic_val")
    assert ade.thing_dataset_id_to_contiguous_id[7] == 7 and len(ade.thing_classes) == 100
    assert ade.panoptic_json.endswith("ADEChallengeData2016/ade20k_panoptic_val.json")
    assert ade.json_file.endswith("ADEChallengeData2016/ade20k_instance_val.json")
    inst = MetadataCatalog.get("openvocab_ade20k_instance_val")
    assert inst.thing_dataset_id_to_contiguous_id[7] == 0 and not inst.get("stuff_classes")
    pas20 = MetadataCatalog.get("openvocab_pascal20_sem_seg_val")
    assert pas20.stuff_classes[0].startswith("aeroplane")
    city = MetadataCatalog.get("openvocab_cityscapes_fine_panoptic_val")
    assert city.thing_dataset_id_to_contiguous_id == {
        24: 11,
        25: 12,
        26: 13,
        27: 14,
        28: 15,
        31: 16,
        32: 17,
        33: 18,
    }


def test_lazy_metadata_builds_once_and_pickles():
    calls = []

    def builder():
        calls.append(1)
        return {"stuff_classes": ["a", "b"]}

    meta = LazyMetadata(name="lazy_test", builder=builder, evaluator_type="sem_seg")
    assert meta.evaluator_type == "sem_seg" and not meta.is_materialized and not calls
    assert meta.stuff_classes == ["a", "b"] and meta.get("stuff_classes") == ["a", "b"] and len(calls) == 1
    assert meta.get("missing", 3) == 3 and len(calls) == 1
    with pytest.raises(AssertionError):
        meta.stuff_classes = ["c"]  # detectron2 keeps metadata consistent
    real = MetadataCatalog.get("openvocab_pascal_ctx59_sem_seg_val")
    for clone in (pickle.loads(pickle.dumps(real)), copy.deepcopy(real)):
        assert len(clone.stuff_classes) == 59 and clone.dataname == "openvocab_pascal_ctx59_sem_seg_val"
    assert "stuff_classes" in real.as_dict()


def test_reregistration_is_skipped_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mask_adapter.data.catalog"):
        assert register_all() == []
    warnings = [r for r in caplog.records if "already registered" in r.getMessage()]
    assert len(warnings) == 1 and "openvocab_ade20k_panoptic_val" in warnings[0].getMessage()


def test_missing_root_names_path_and_script(root):
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get("openvocab_pascal_ctx459_sem_seg_val")
    text = str(e.value)
    assert "\n" not in text
    assert str(root / "pascal_ctx_d2/images/validation") in text and "prepare_pascal_ctx_full_sem_seg.py" in text
    with pytest.raises(FileNotFoundError, match="tools/prepare_synthetic_dataset.py"):
        DatasetCatalog.get("synthetic_shapes_panoptic_val")


def test_unknown_name_is_one_line():
    with pytest.raises(KeyError) as e:
        get_split("ade20k_val")
    assert "\n" not in str(e.value) and "register_custom_semseg" in str(e.value)


def test_register_custom_semseg(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "img" / "a.jpg")
    Image.fromarray(np.array([[0, 1], [2, 65535]], np.uint16)).save(tmp_path / "gt" / "a.tif")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("0:invalid_class_id\n1:cat,kitten\n2:dog\n3:traffic light\n")
    try:
        split = register_custom_semseg(
            "custom_test_semseg",
            str(tmp_path / "img"),
            str(tmp_path / "gt"),
            str(vocab),
            ignore_label=65535,
            gt_ext="tif",
        )
        records = DatasetCatalog.get("custom_test_semseg")
        assert len(records) == 1 and records[0]["sem_seg_file_name"].endswith("gt/a.tif")
        meta = MetadataCatalog.get("custom_test_semseg")
        assert meta.stuff_classes == ["cat,kitten", "dog", "traffic light"] and meta.ignore_label == 65535
        assert meta.dataname == "custom_test_semseg" and meta.evaluator_type == "sem_seg" and split.gt_ext == "tif"
        with pytest.raises(ValueError, match="already registered"):
            register_custom_semseg("custom_test_semseg", str(tmp_path), str(tmp_path), str(vocab))
        register_custom_semseg("custom_test_empty", str(tmp_path / "img"), str(tmp_path / "img"), str(vocab))
        with pytest.raises(FileNotFoundError, match=r"no '\*\.png' file directly in"):
            DatasetCatalog.get("custom_test_empty")
    finally:
        for name in ("custom_test_semseg", "custom_test_empty"):
            if name in DatasetCatalog.list():
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        register_custom_semseg("custom_bad", str(tmp_path), str(tmp_path), str(bad))
    assert "custom_bad" not in DatasetCatalog.list()


def test_synthetic_dataset(root):
    out = make_synthetic_dataset(str(root), n_train=3, n_val=2, size=(64, 96), seed=3)
    records = DatasetCatalog.get("synthetic_shapes_panoptic_val")
    assert len(records) == 2 and len(DatasetCatalog.get("synthetic_shapes_panoptic_train")) == 3
    for r in records:
        img = np.array(Image.open(r["file_name"]))
        assert img.ndim == 3 and 64 <= img.shape[0] <= 96 and 64 <= img.shape[1] <= 96
        pan = np.array(Image.open(r["pan_seg_file_name"])).astype(np.int64)
        ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        sem = np.array(Image.open(r["sem_seg_file_name"]))
        assert set(np.unique(sem)) <= {0, 1, 2, 3, 4, 255} and (sem[0] == 255).all() and (ids[0] == 0).all()
        for seg in r["segments_info"]:
            mask = ids == seg["id"]
            assert mask.sum() == seg["area"] and (sem[mask] == seg["category_id"]).all()
            assert seg["isthing"] == (seg["category_id"] < 3)
    first = open(out["val_json"], "rb").read()
    make_synthetic_dataset(str(root), n_train=3, n_val=2, size=(64, 96), seed=3)
    assert open(out["val_json"], "rb").read() == first  # deterministic
    meta = MetadataCatalog.get("synthetic_shapes_panoptic_val")
    assert meta.stuff_classes[0] == "square,squares" and meta.thing_dataset_id_to_contiguous_id == {
        1: 0,
        2: 1,
        3: 2,
    }


def test_synthetic_instances_json_matches_panoptic(root):
    """instances_{split}.json: one RLE annotation per thing segment of the panoptic ground truth."""
    import pycocotools.mask as mask_util

    out = make_synthetic_dataset(str(root), n_train=2, n_val=3, size=(64, 96), seed=5)
    meta = MetadataCatalog.get("synthetic_shapes_panoptic_val")
    assert meta.json_file == out["val_instances_json"]
    assert meta.json_file.endswith("synthetic_shapes/instances_val.json")
    assert MetadataCatalog.get("synthetic_shapes_panoptic_train").json_file == out["train_instances_json"]
    data = json.load(open(out["val_instances_json"]))
    panoptic = json.load(open(out["val_json"]))
    assert data["images"] == panoptic["images"]
    assert data["categories"] == [
        {"id": 1, "name": "square"},
        {"id": 2, "name": "circle"},
        {"id": 3, "name": "triangle"},
    ]
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
    records = {r["image_id"]: r for r in DatasetCatalog.get("synthetic_shapes_panoptic_val")}
    n_things = 0
    for image_id, r in records.items():
        pan = np.array(Image.open(r["pan_seg_file_name"])).astype(np.int64)
        ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        things = [s for s in r["segments_info"] if s["isthing"]]
        anns = [a for a in data["annotations"] if a["image_id"] == image_id]
        assert len(anns) == len(things) >= 1
        n_things += len(things)
        for seg, ann in zip(things, anns):
            mask = mask_util.decode(ann["segmentation"]).astype(bool)
            assert mask.shape == ids.shape and (mask == (ids == seg["id"])).all()
            assert ann["area"] == seg["area"] == mask.sum() and ann["iscrowd"] == 0
            # dataset category id (JSON) -> contiguous id of the loaded panoptic record
            assert meta.thing_dataset_id_to_contiguous_id[ann["category_id"]] == seg["category_id"]
            assert ann["bbox"] == seg["bbox"] and ann["bbox"][2] > 0 and ann["bbox"][3] > 0
    assert n_things == len(data["annotations"])


def test_coco_instances_split(root):
    (root / "coco" / "val2017").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "coco" / "val2017" / "000000000001.jpg")
    (root / "coco" / "annotations").mkdir()
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 18,
            "bbox": [0, 0, 2, 2],
            "area": 4,
            "iscrowd": 0,
            "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 92,
            "bbox": [0, 0, 1, 1],
            "area": 1,
            "iscrowd": 0,
            "segmentation": [[0, 0, 1, 0, 1, 1]],
        },  # a stuff id: not an instance class, dropped
    ]
    images = [{"id": 1, "file_name": "000000000001.jpg", "height": 4, "width": 4}]
    categories = [{"id": 18, "name": "dog"}, {"id": 92, "name": "banner"}]
    (root / "coco" / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": categories})
    )
    (record,) = DatasetCatalog.get("openvocab_coco_2017_val")
    (ann,) = record["annotations"]
    thing_classes = MetadataCatalog.get("openvocab_coco_2017_val").thing_classes
    assert thing_classes[ann["category_id"]].startswith("dog,")
