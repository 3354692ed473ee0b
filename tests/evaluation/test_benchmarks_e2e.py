"""End to end: the five benchmarks prepared from tiny raw copies, the all-benchmarks command, and mIoU by hand.

The raw sources (ADE20K_2021_17_01 full, ADEChallengeData2016 with its instance maps, Pascal Context, VOC2012) are
built once per module by ``_raw_datasets.prepare_benchmarks`` and converted by the real datasets/prepare_*.py
scripts. Then:

- ``tools/evaluate_benchmarks.py`` runs in a subprocess on the tiny random FC-CLIP config (all TEST flags on, so
  A-150 also runs the panoptic and instance evaluators) and must print the five rows, all "ok";
- ``evaluate_benchmarks`` runs in-process on a crafted model whose ``sem_seg`` is a chosen label map per image;
  each mIoU must equal a hand computation.

Hand computation, as detectron2's ``SemSegEvaluator.evaluate`` does it: pixels whose label is the ignore value
are dropped (whatever is predicted there); per class IoU = TP / (GT + predicted - TP) over the remaining pixels,
summed over all images; mIoU averages the classes that have ground-truth pixels (``acc_valid = pos_gt > 0``) —
a class that is only predicted lowers its pixels' true classes' IoU but is not averaged itself.
"""

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BitMasks, Instances
from torch import nn

from mask_adapter.config import build_config
from mask_adapter.data.catalog import register_all
from mask_adapter.evaluation import BENCHMARKS, evaluate_benchmarks
from tests._raw_datasets import REPO, prepare_benchmarks, read

TINY_CONFIG = REPO / "configs" / "tiny" / "fcclip_tiny.yaml"
NAMES = ["A-847", "A-150", "PC-459", "PC-59", "PAS-20"]
IMAGES = {"A-847": 1, "A-150": 2, "PC-459": 1, "PC-59": 1, "PAS-20": 1}

# A second ADE-150 validation image (6x8): unlabeled, wall (1), floor (4 -> 3), a window (9 -> 8, instance class 2).
ADE_SEM_2 = np.ones((6, 8), np.uint8)
ADE_SEM_2[4:, :] = 4
ADE_SEM_2[1:3, 5:8] = 9
ADE_SEM_2[0, :2] = 0
ADE_INS_2 = np.zeros((6, 8, 3), np.uint8)
ADE_INS_2[1:3, 5:8] = (2, 1, 0)

# VOC label (palette indices): background 0, cat 8, dog 12, person 15, border 255.
VOC_LABEL = np.array(
    [
        [0, 0, 15, 15, 255],
        [0, 8, 8, 15, 255],
        [0, 8, 8, 0, 0],
        [255, 255, 255, 0, 0],
        [12, 12, 0, 0, 0],
    ],
    np.uint8,
)

# ---- prepared ground truth (what the scripts must write) and crafted predictions, with their hand mIoU ----
I16 = 65535
# A-847 (ADE20K_2021 6x7): row 0 ignore, row 1 adding machine (846), rows 2-5 wall (0).
GT_A847 = np.array([[I16] * 7, [846] * 7] + [[0] * 7] * 4)
PRED_A847 = np.zeros((6, 7), np.int64)
PRED_A847[0] = 846  # on ignored pixels: not counted
PRED_A847[1, :3] = 846
PRED_A847[2:, 0] = 846
PRED_A847[2:, 6] = 5  # class 5 has no GT pixel: lowers wall's IoU, not averaged itself
# 846: TP 3, GT 7, pred 7 -> 3/11; wall: TP 20, GT 28, pred 24 -> 20/32
MIOU_A847 = 100 * (3 / 11 + 20 / 32) / 2
# PC-459 (2x3): [[unlabeled, accordion, aeroplane], [wool, computer, aeroplane]] -> 0-based, 65535 ignore.
GT_PC459 = np.array([[I16, 0, 1], [458, 84, 1]])
PRED_PC459 = np.array([[3, 0, 1], [458, 0, 0]])
MIOU_PC459 = 100 * (1 / 3 + 1 / 2 + 1 + 0) / 4  # accordion, aeroplane, wool, computer
# PC-59: accordion and unlabeled are ignored; computer -> "computer case" (18).
GT_PC59 = np.array([[255, 255, 0], [255, 18, 0]])
PRED_PC59 = np.array([[5, 18, 0], [0, 18, 18]])
MIOU_PC59 = 100 * (1 / 2 + 1 / 2) / 2
# PAS-20: background and border ignored; cat 7, dog 11, person 14.
GT_PAS20 = np.array(
    [
        [255, 255, 14, 14, 255],
        [255, 7, 7, 14, 255],
        [255, 7, 7, 255, 255],
        [255, 255, 255, 255, 255],
        [11, 11, 255, 255, 255],
    ]
)
PRED_PAS20 = np.full((5, 5), 14)  # person on every ignored pixel: not counted
PRED_PAS20[1, 3] = 7  # a person pixel called cat
PRED_PAS20[1:3, 1:3] = 7
PRED_PAS20[2, 2] = 11  # a cat pixel called dog
PRED_PAS20[4] = [11, 0, 14, 14, 14]  # a dog pixel called aeroplane (no GT pixel: not averaged)
# person, cat, dog (averaging aeroplane too would give 40)
MIOU_PAS20 = 100 * (2 / 3 + 3 / 5 + 1 / 3) / 3

HAND = {
    "A-847": (GT_A847, PRED_A847, MIOU_A847),
    "PC-459": (GT_PC459, PRED_PC459, MIOU_PC459),
    "PC-59": (GT_PC59, PRED_PC59, MIOU_PC59),
    "PAS-20": (GT_PAS20, PRED_PAS20, MIOU_PAS20),
}


def reference_miou(pairs: Iterable[tuple[np.ndarray, np.ndarray]], ignore: int) -> float:
    """mIoU (%) of (GT, prediction) label-map pairs, counted per class over all images (see module docstring)."""
    tp: dict[int, int] = {}
    gt_n: dict[int, int] = {}
    pred_n: dict[int, int] = {}
    for gt, pred in pairs:
        valid = gt != ignore
        for c in np.unique(np.concatenate([gt[valid], pred[valid]])).tolist():
            g, p = (gt == c) & valid, (pred == c) & valid
            tp[c] = tp.get(c, 0) + int((g & p).sum())
            gt_n[c] = gt_n.get(c, 0) + int(g.sum())
            pred_n[c] = pred_n.get(c, 0) + int(p.sum())
    ious = [tp[c] / (gt_n[c] + pred_n[c] - tp[c]) for c in gt_n if gt_n[c] > 0]
    return 100 * float(np.mean(ious))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Tiny raw copies of the five benchmarks' sources, converted by the preparation scripts."""
    root = tmp_path_factory.mktemp("datasets")
    prepare_benchmarks(root, ade_val={"ADE_val_00000002": (ADE_SEM_2, ADE_INS_2)}, voc_label=VOC_LABEL)
    return root


@pytest.fixture
def root(prepared, monkeypatch) -> Path:
    """DETECTRON2_DATASETS -> the prepared root and the catalog re-registered there; restored afterwards."""
    default = os.getenv("DETECTRON2_DATASETS", "datasets")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(prepared))
    register_all(str(prepared), overwrite=True)
    yield prepared
    register_all(default, overwrite=True)


def table_rows(stdout: str) -> dict[str, dict[str, str]]:
    """Rows of the last pipe table printed, by benchmark name."""
    rows, header = {}, None
    for line in stdout.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "benchmark":
            header = cells
        elif header and cells[0] in NAMES:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


@pytest.mark.slow  # subprocess
def test_all_benchmarks_command_on_tiny_model(root, tmp_path):
    out = tmp_path / "bench"
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), PYTHONWARNINGS="ignore")
    # --weights omitted: MODEL.WEIGHTS of the tiny config is "" (random weights, no checkpoint)
    cmd = [
        sys.executable,
        str(REPO / "tools" / "evaluate_benchmarks.py"),
        "--config-file",
        str(TINY_CONFIG),
        "--output",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = table_rows(proc.stdout)
    assert list(rows) == NAMES, proc.stdout[-3000:]
    for name in NAMES:
        row = rows[name]
        assert row["dataset"] == BENCHMARKS[name] and row["status"] == "ok", row
        assert int(row["images"]) == IMAGES[name]
        assert 0.0 <= float(row["mIoU"]) <= 100.0, row
    # the panoptic evaluation ran on the prepared A-150
    assert 0.0 <= float(rows["A-150"]["PQ"]) <= 100.0

    saved = json.loads((out / "benchmarks.json").read_text())["benchmarks"]
    assert list(saved) == NAMES
    for name in NAMES:
        assert saved[name]["status"] == "ok" and saved[name]["images"] == IMAGES[name]
        assert f"{saved[name]['mIoU']:.2f}" == rows[name]["mIoU"]
        assert "IoU-" in " ".join(saved[name]["results"]["sem_seg"])
    with open(out / "benchmarks.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["benchmark"] for r in csv_rows] == NAMES
    for r in csv_rows:
        assert r["status"] == "ok" and r["dataset"] == BENCHMARKS[r["benchmark"]]
        assert float(r["mIoU"]) == pytest.approx(saved[r["benchmark"]]["mIoU"])


class CraftedModel(nn.Module):
    """Returns a chosen label map per (benchmark split, image) as one-hot ``sem_seg`` at the original size.

    For panoptic splits it also returns the ground-truth panoptic segmentation and the thing segments as
    instances (score 1), so the panoptic and instance evaluators the tiny config enables have exact inputs.
    """

    def __init__(self, predictions: dict[tuple[str, str], np.ndarray]) -> None:
        super().__init__()
        self.predictions, self.metadata = predictions, None
        self.records: dict[str, dict] = {}
        self.weight = nn.Parameter(torch.zeros(1))

    def set_metadata(self, metadata) -> None:
        self.metadata = metadata
        self.records = {r["file_name"]: r for r in DatasetCatalog.get(metadata.dataname) if "pan_seg_file_name" in r}

    def forward(self, batched_inputs):
        outs = []
        num_classes = len(self.metadata.stuff_classes)
        for x in batched_inputs:
            pred = self.predictions[(self.metadata.dataname, x["file_name"])]
            assert pred.shape == (x["height"], x["width"])
            out = {"sem_seg": F.one_hot(torch.as_tensor(pred), num_classes).permute(2, 0, 1).float()}
            if x["file_name"] in self.records:
                out.update(self._ground_truth_panoptic(self.records[x["file_name"]]))
            outs.append(out)
        return outs

    @staticmethod
    def _ground_truth_panoptic(record) -> dict:
        rgb = read(record["pan_seg_file_name"]).astype(np.int64)
        ids = torch.as_tensor(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], dtype=torch.int32)
        segments = [
            {"id": s["id"], "category_id": s["category_id"], "isthing": bool(s["isthing"])}
            for s in record["segments_info"]
        ]
        things = [s for s in segments if s["isthing"]]
        instances = Instances(tuple(ids.shape))
        masks = torch.stack([ids == s["id"] for s in things])
        instances.pred_masks, instances.pred_boxes = masks, BitMasks(masks).get_bounding_boxes()
        instances.scores = torch.ones(len(things))
        instances.pred_classes = torch.tensor([s["category_id"] for s in things])
        return {"panoptic_seg": (ids, segments), "instances": instances}


def crafted_ade150(gt: np.ndarray, seed: int) -> np.ndarray:
    """GT with ~40% of the pixels relabelled among its classes and one absent class; ignored pixels -> 3."""
    rng = np.random.RandomState(seed)
    pred = np.where(gt == 255, 3, gt)
    pool = np.union1d(np.unique(gt[gt != 255]), [20])
    flip = rng.rand(*gt.shape) < 0.4
    pred[flip] = rng.choice(pool, int(flip.sum()))
    return pred


def test_evaluate_benchmarks_miou_equals_hand_computation(root, tmp_path):
    # the same TEST flags as the command: semantic, panoptic and instance evaluation
    cfg = build_config(str(TINY_CONFIG), [])
    predictions, expected = {}, {}
    for name, (gt, pred, miou) in HAND.items():
        (record,) = DatasetCatalog.get(BENCHMARKS[name])
        # the scripts prepared the ground truth of the hand computation
        assert read(record["sem_seg_file_name"]).tolist() == gt.tolist()
        ignore = MetadataCatalog.get(BENCHMARKS[name]).ignore_label
        # the numpy reference agrees with the hand computation
        assert reference_miou([(gt, pred)], ignore) == pytest.approx(miou)
        predictions[(BENCHMARKS[name], record["file_name"])] = pred
        expected[name] = miou
    ade_pairs = []
    for seed, record in enumerate(DatasetCatalog.get(BENCHMARKS["A-150"])):
        gt = read(record["sem_seg_file_name"]).astype(np.int64)
        pred = crafted_ade150(gt, seed)
        predictions[(BENCHMARKS["A-150"], record["file_name"])] = pred
        ade_pairs.append((gt, pred))
    assert len(ade_pairs) == 2 and ade_pairs[1][0].tolist()[0] == [255, 255] + [0] * 6
    expected["A-150"] = reference_miou(ade_pairs, 255)
    assert 0 < expected["A-150"] < 100

    model = CraftedModel(predictions)
    report = evaluate_benchmarks(cfg, model, None, str(tmp_path / "bench"))
    assert list(report) == NAMES
    for name in NAMES:
        assert report[name]["status"] == "ok", report[name]["error"]
        assert report[name]["images"] == IMAGES[name]
        assert report[name]["mIoU"] == pytest.approx(expected[name], abs=1e-9), name
    # the A-150 panoptic and instance evaluators saw the exact ground truth
    assert report["A-150"]["PQ"] == pytest.approx(100.0)
    assert report["A-150"]["mask AP"] == pytest.approx(100.0)
    saved = json.loads((tmp_path / "bench" / "benchmarks.json").read_text())["benchmarks"]
    assert {n: saved[n]["mIoU"] for n in NAMES} == pytest.approx(expected)
