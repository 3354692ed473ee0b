"""Evaluator table, semantic/panoptic/instance evaluators, and the five-benchmark runner."""

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, DatasetEvaluators
from detectron2.structures import BitMasks, Instances
from PIL import Image
from torch import nn

from mask_adapter.config import add_mask_adapter_config
from mask_adapter.data.catalog import register_all, register_custom_semseg
from mask_adapter.data.prepare import prepare_ade20k_instances
from mask_adapter.data.synthetic import make_synthetic_dataset
from mask_adapter.evaluation import (
    InstanceSegEvaluator,
    OpenVocabSemSegEvaluator,
    build_evaluator,
    evaluate_benchmarks,
)

# 2x4 label map with a 65535 pixel; prediction below; IoU 1/4, 3/5, 0 -> mIoU 85/3 % (hand computation)
GT_TIF = np.array([[0, 0, 1, 1], [2, 65535, 1, 1]], np.uint16)
PRED_TIF = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
MIOU_TIF = 100 * (1 / 4 + 3 / 5 + 0) / 3
# 2x4 label map with a 255 pixel; IoU 2/3, 1/3, 2/3 -> mIoU 5/9
GT_PNG = np.array([[0, 0, 1, 1], [255, 2, 2, 2]], np.uint8)
PRED_PNG = np.array([[0, 0, 0, 1], [0, 2, 2, 1]])
MIOU_PNG = 100 * 5 / 9


def make_cfg(semantic=True, panoptic=False, instance=False):
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 16, 32
    test = cfg.MODEL.MASK_FORMER.TEST
    test.SEMANTIC_ON, test.PANOPTIC_ON, test.INSTANCE_ON = semantic, panoptic, instance
    return cfg


def write(path, array):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def one_hot(pred, num_classes):
    return F.one_hot(torch.as_tensor(pred), num_classes).permute(2, 0, 1).float()


@pytest.fixture
def root(tmp_path):
    register_all(str(tmp_path), overwrite=True)
    yield tmp_path
    register_all(None, overwrite=True)


@pytest.fixture
def tif_dataset(tmp_path):
    write(tmp_path / "img" / "a.jpg", np.zeros((2, 4, 3), np.uint8))
    write(tmp_path / "img" / "b.jpg", np.zeros((2, 4, 3), np.uint8))
    write(tmp_path / "gt" / "a.tif", GT_TIF)
    write(tmp_path / "gt" / "b.tif", np.full((2, 4), 7, np.uint16))  # out of range: counted as ignore
    (tmp_path / "vocab.txt").write_text("0:cat\n1:dog\n2:bird\n")
    register_custom_semseg(
        "eval_test_tif",
        str(tmp_path / "img"),
        str(tmp_path / "gt"),
        str(tmp_path / "vocab.txt"),
        ignore_label=65535,
        gt_ext="tif",
    )
    yield "eval_test_tif", tmp_path
    DatasetCatalog.remove("eval_test_tif")
    MetadataCatalog.remove("eval_test_tif")


def test_semseg_miou_with_65535_ignore(tif_dataset, caplog):
    name, tmp = tif_dataset
    evaluator = build_evaluator(make_cfg(), name, str(tmp / "out"))
    assert isinstance(evaluator, OpenVocabSemSegEvaluator)
    with caplog.at_level(logging.INFO):
        evaluator.reset()
        evaluator.process([{"file_name": str(tmp / "img" / "a.jpg")}], [{"sem_seg": one_hot(PRED_TIF, 3)}])
        evaluator.process([{"file_name": str(tmp / "img" / "b.jpg")}], [{"sem_seg": one_hot(PRED_TIF, 3)}])
        res = evaluator.evaluate()["sem_seg"]
    assert res["mIoU"] == pytest.approx(MIOU_TIF)
    assert res["pACC"] == pytest.approx(100 * 4 / 7)
    assert res["IoU-dog"] == pytest.approx(60.0)
    text = caplog.text
    assert "Pillow" in text and "detectron2" in text and "outside [0, 3)" in text


def test_semseg_input_errors(tif_dataset):
    name, tmp = tif_dataset
    evaluator = build_evaluator(make_cfg(), name)
    evaluator.reset()
    inputs = [{"file_name": str(tmp / "img" / "a.jpg")}]
    with pytest.raises(ValueError, match="predicts 5 classes but the dataset has 3.*set_metadata"):
        evaluator.process(inputs, [{"sem_seg": torch.zeros(5, 2, 4)}])
    with pytest.raises(ValueError, match="differ in size"):
        evaluator.process(inputs, [{"sem_seg": torch.zeros(3, 4, 8)}])


@pytest.fixture
def synthetic(root):
    make_synthetic_dataset(str(root), n_train=1, n_val=2, size=(48, 64), seed=2)
    return root


def test_evaluator_table(synthetic):
    name = "synthetic_shapes_panoptic_val"
    assert isinstance(build_evaluator(make_cfg(), name), OpenVocabSemSegEvaluator)
    both = build_evaluator(make_cfg(panoptic=True), name)
    assert isinstance(both, DatasetEvaluators)
    assert [type(e) for e in both._evaluators] == [OpenVocabSemSegEvaluator, COCOPanopticEvaluator]
    inst = build_evaluator(make_cfg(instance=True), name)
    assert [type(e) for e in inst._evaluators] == [OpenVocabSemSegEvaluator, COCOEvaluator]
    os.remove(MetadataCatalog.get(name).json_file)
    with pytest.raises(FileNotFoundError, match="INSTANCE_ON False"):
        build_evaluator(make_cfg(instance=True), name)  # the instances JSON is missing
    with pytest.raises(ValueError, match="No evaluator for 'openvocab_coco_2017_val'.*INSTANCE_ON"):
        build_evaluator(make_cfg(), "openvocab_coco_2017_val")
    MetadataCatalog.get("eval_test_weird").set(evaluator_type="weird")
    try:
        with pytest.raises(KeyError, match="evaluator_type 'weird'"):
            build_evaluator(make_cfg(), "eval_test_weird")
    finally:
        MetadataCatalog.remove("eval_test_weird")


def ground_truth_outputs(record):
    """Model outputs that reproduce a synthetic record exactly: sem_seg, panoptic_seg and instances."""
    sem = np.array(Image.open(record["sem_seg_file_name"])).astype(np.int64)
    pan = np.array(Image.open(record["pan_seg_file_name"])).astype(np.int64)
    ids = torch.as_tensor(pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2], dtype=torch.int32)
    segments = [
        {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]} for s in record["segments_info"]
    ]
    things = [s for s in segments if s["isthing"]]
    instances = Instances(tuple(ids.shape))
    instances.pred_masks = torch.stack([ids == s["id"] for s in things])
    instances.pred_boxes = BitMasks(instances.pred_masks).get_bounding_boxes()
    instances.scores = torch.linspace(0.9, 0.5, len(things))
    instances.pred_classes = torch.tensor([s["category_id"] for s in things])  # contiguous ids
    return {
        "sem_seg": one_hot(np.where(sem == 255, 0, sem), 5),
        "panoptic_seg": (ids, segments),
        "instances": instances,
    }


def test_semantic_panoptic_and_instance_on_ground_truth(synthetic):
    """All three TEST flags on the synthetic val split; ground-truth predictions score 100 everywhere.

    mIoU, PQ and mask/box AP are exactly 100: every GT pixel, segment and instance is reproduced (IoU 1), and COCO
    AP averages only categories with ground truth (-1 entries are skipped), so absent categories do not count.
    """
    name = "synthetic_shapes_panoptic_val"
    cfg = make_cfg(semantic=True, panoptic=True, instance=True)
    evaluator = build_evaluator(cfg, name, str(synthetic / "out"))
    types = [type(e) for e in evaluator._evaluators]
    assert types == [OpenVocabSemSegEvaluator, COCOPanopticEvaluator, COCOEvaluator]
    evaluator.reset()
    for r in DatasetCatalog.get(name):
        inputs = [{"file_name": r["file_name"], "image_id": r["image_id"]}]
        evaluator.process(inputs, [ground_truth_outputs(r)])
    results = evaluator.evaluate()
    assert results["sem_seg"]["mIoU"] == pytest.approx(100.0)
    assert results["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    evaluated = [k for k, v in results["segm"].items() if k.startswith("AP-") and not np.isnan(v)]
    assert evaluated and all(results["segm"][k] == pytest.approx(100.0) for k in evaluated)


def test_instance_evaluator_on_ade_like_data(root):
    ade = root / "ADEChallengeData2016"
    write(ade / "images" / "validation" / "ADE_val_00000001.jpg", np.zeros((8, 10, 3), np.uint8))
    ins = np.zeros((8, 10, 3), np.uint8)
    ins[2:6, 2:6] = (1, 1, 0)  # a bed
    ins[6:8, 0:3] = (2, 2, 0)  # a window
    write(ade / "annotations_instance" / "validation" / "ADE_val_00000001.png", ins)
    (ade / "ade20k_instance_train.json").write_text("{}")  # only the val split is needed here
    prepare_ade20k_instances(str(root))
    evaluator = build_evaluator(make_cfg(semantic=False, instance=True), "openvocab_ade20k_panoptic_val")
    assert isinstance(evaluator, InstanceSegEvaluator)
    evaluator.reset()
    masks = torch.zeros(2, 8, 10, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 6:8, 0:3] = True
    pred = Instances((8, 10))
    pred.pred_masks, pred.pred_boxes = masks, BitMasks(masks).get_bounding_boxes()
    pred.scores, pred.pred_classes = torch.tensor([0.9, 0.8]), torch.tensor([7, 8])  # indices among 150 classes
    evaluator.process([{"image_id": "ADE_val_00000001"}], [{"instances": pred}])
    results = evaluator.evaluate()
    assert results["segm"]["AP"] == pytest.approx(100.0) and results["bbox"]["AP"] == pytest.approx(100.0)


class FakeModel(nn.Module):
    """Returns crafted predictions (looked up by image name) as one-hot ``sem_seg`` at the original size."""

    def __init__(self, predictions, num_classes=None):
        super().__init__()
        self.predictions, self.num_classes, self.bound = predictions, num_classes, []
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, batched_inputs):
        outs = []
        for x in batched_inputs:
            pred = self.predictions[os.path.basename(x["file_name"])]
            assert pred.shape == (x["height"], x["width"])
            outs.append({"sem_seg": one_hot(pred, self.num_classes)})
        return outs


class BindingFakeModel(FakeModel):
    def set_metadata(self, metadata):
        self.num_classes = len(metadata.stuff_classes)
        self.bound.append(metadata.dataname)


def benchmark_root(root):
    d2 = root / "pascal_ctx_d2"
    write(d2 / "images" / "validation" / "2008_000001.jpg", np.zeros((2, 4, 3), np.uint8))
    write(d2 / "annotations_ctx59" / "validation" / "2008_000001.png", GT_PNG)
    full = root / "ADE20K_2021_17_01"
    write(
        full / "images_detectron2" / "validation" / "ADE_val_00000001.jpg",
        np.zeros((2, 4, 3), np.uint8),
    )
    write(full / "annotations_detectron2" / "validation" / "ADE_val_00000001.tif", GT_TIF)
    return {"2008_000001.jpg": PRED_PNG, "ADE_val_00000001.jpg": PRED_TIF}


def test_evaluate_benchmarks(root):
    predictions = benchmark_root(root)
    model = BindingFakeModel(predictions)
    out = root / "bench"
    report = evaluate_benchmarks(make_cfg(), model, None, str(out))
    assert list(report) == ["A-847", "A-150", "PC-459", "PC-59", "PAS-20"]
    assert report["A-847"]["status"] == "ok" and report["A-847"]["mIoU"] == pytest.approx(MIOU_TIF)
    assert report["PC-59"]["status"] == "ok" and report["PC-59"]["mIoU"] == pytest.approx(MIOU_PNG)
    assert model.bound == [
        "openvocab_ade20k_full_sem_seg_val",
        "openvocab_pascal_ctx59_sem_seg_val",
    ]
    for short, script in (
        ("A-150", "prepare_ade20k_pan_seg.py"),
        ("PC-459", "prepare_pascal_ctx_full_sem_seg.py"),
        ("PAS-20", "prepare_pascal_voc_sem_seg.py"),
    ):
        assert report[short]["status"] == "missing"
        assert script in report[short]["error"] and str(root) in report[short]["error"]
    saved = json.loads((out / "benchmarks.json").read_text())
    assert saved["benchmarks"]["PC-59"]["mIoU"] == pytest.approx(MIOU_PNG) and "Pillow" in saved["versions"]
    rows = list(csv.DictReader((out / "benchmarks.csv").open()))
    assert [r["benchmark"] for r in rows] == list(report) and float(rows[3]["mIoU"]) == pytest.approx(MIOU_PNG)


def test_failed_benchmark_does_not_stop_the_others(root):
    predictions = benchmark_root(root)
    model = FakeModel(predictions, num_classes=59)  # no set_metadata: right only for PC-59
    report = evaluate_benchmarks(make_cfg(), model, ["A-847", "PC-59"], None)
    assert report["A-847"]["status"] == "failed" and "predicts 59 classes" in report["A-847"]["error"]
    assert report["PC-59"]["mIoU"] == pytest.approx(MIOU_PNG)
    with pytest.raises(KeyError, match="Unknown benchmark 'A-999'"):
        evaluate_benchmarks(make_cfg(), model, ["A-999"], None)


def test_evaluate_benchmarks_tool_parses_arguments():
    from mask_adapter.evaluation.command import parse_args

    args = parse_args(["--config-file", "c.yaml", "--benchmarks", "A-150,PC-59", "MODEL.DEVICE", "cpu"])
    assert args.benchmarks == "A-150,PC-59" and args.opts == ["MODEL.DEVICE", "cpu"]
