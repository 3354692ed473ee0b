"""mIoU under the two averaging conventions detectron2 has used, on data where they differ (hand arithmetic).

Label maps (K = 5 classes, 255 = ignore)::

    GT   0 0 0 0      PRED 0 0 0 3
         1 1 1 1           1 1 2 2
         ignore x4         4 4 4 4

class 0: TP 3, GT 4, predicted 3 -> IoU 3 / (4 + 3 - 3) = 3/4
class 1: TP 2, GT 4, predicted 2 -> IoU 2/4
classes 2 and 3: predicted only (2 and 1 pixels); class 4: predicted only on ignored pixels (does not count).

mIoU over the classes present in the ground truth: (3/4 + 2/4) / 2 = 62.5 %.
detectron2 0.6 (classes in the ground truth or the prediction: 0, 1, 2, 3): (3/4 + 2/4) / 4 = 31.25 %.
"""

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from mask_adapter.data.catalog import register_custom_semseg
from mask_adapter.evaluation import (
    MIOU_CONVENTIONS,
    OpenVocabSemSegEvaluator,
    format_benchmark_table,
    miou_conventions,
)

GT = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [255, 255, 255, 255]], np.uint8)
PRED = np.array([[0, 0, 0, 3], [1, 1, 2, 2], [4, 4, 4, 4]])
MIOU_GT = 100 * (3 / 4 + 2 / 4) / 2  # 62.5
MIOU_D2V06 = 100 * (3 / 4 + 2 / 4) / 4  # 31.25


def confusion(gt: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(K + 1)^2 counts laid out as detectron2 does: row = prediction, column = ground truth, last = ignore."""
    gt = np.where(gt == 255, k, gt).astype(int)
    return np.bincount((k + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(k + 1) ** 2).reshape(k + 1, k + 1)


def test_conventions_on_a_constructed_confusion_matrix():
    conv = miou_conventions(confusion(GT, PRED, 5))
    assert conv["mIoU"] == pytest.approx(62.5) == pytest.approx(MIOU_GT)
    assert conv["mIoU_d2v06"] == pytest.approx(31.25) == pytest.approx(MIOU_D2V06)
    assert (conv["classes_gt"], conv["classes_gt_or_pred"]) == (2, 4)


def test_conventions_agree_when_nothing_is_predicted_outside_the_ground_truth():
    conv = miou_conventions(confusion(GT, np.where(np.isin(PRED, (2, 3, 4)), 1, PRED), 5))
    # class 0: 3/4; class 1: TP 4, GT 4, predicted 4 + 1 (the 3 at row 0) -> 4/5
    assert conv["mIoU"] == pytest.approx(conv["mIoU_d2v06"]) == pytest.approx(100 * (3 / 4 + 4 / 5) / 2)


def test_empty_ground_truth_gives_nan():
    conv = miou_conventions(np.zeros((4, 4), np.int64))
    assert np.isnan(conv["mIoU"]) and np.isnan(conv["mIoU_d2v06"])


@pytest.fixture
def five_class_dataset(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(tmp_path / "img" / "a.jpg")
    Image.fromarray(GT).save(tmp_path / "gt" / "a.png")
    (tmp_path / "vocab.txt").write_text("0:cat\n1:dog\n2:bird\n3:tree\n4:sky\n")
    name = "miou_conventions_test"
    register_custom_semseg(name, str(tmp_path / "img"), str(tmp_path / "gt"), str(tmp_path / "vocab.txt"))
    yield name, tmp_path
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_evaluator_reports_and_logs_both_conventions(five_class_dataset, caplog):
    name, tmp = five_class_dataset
    evaluator = OpenVocabSemSegEvaluator(name, distributed=False)
    evaluator.reset()
    scores = F.one_hot(torch.as_tensor(PRED), 5).permute(2, 0, 1).float()
    evaluator.process([{"file_name": str(tmp / "img" / "a.jpg")}], [{"sem_seg": scores}])
    with caplog.at_level(logging.INFO, logger="mask_adapter.evaluation.sem_seg"):
        res = evaluator.evaluate()["sem_seg"]
    assert res["mIoU"] == pytest.approx(MIOU_GT)
    assert res["mIoU_d2v06"] == pytest.approx(MIOU_D2V06)
    assert res["IoU-cat"] == pytest.approx(75.0) and res["IoU-dog"] == pytest.approx(50.0)
    assert "classes present in the ground truth (detectron2 > 0.6" in caplog.text
    assert "ground truth or the prediction (detectron2 0.6)" in caplog.text
    assert "2 classes" in caplog.text and "4 classes" in caplog.text


def test_benchmark_table_names_the_convention():
    report = {"PC-459": {"dataset": "x", "status": "ok", "images": 1, "mIoU": MIOU_GT, "mIoU_d2v06": MIOU_D2V06}}
    text = format_benchmark_table(report)
    header = next(line for line in text.splitlines() if line.startswith("| benchmark"))
    assert "mIoU" in header and "mIoU_d2v06" in header
    assert "| 62.50 " in text and "| 31.25 " in text
    for key, meaning in MIOU_CONVENTIONS.items():
        assert f"{key}: {meaning}" in text
