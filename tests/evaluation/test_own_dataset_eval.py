"""Your own dataset in one command: a folder of images + label PNGs + class file, or a COCO panoptic JSON, is
registered through the catalog (``register_user_datasets``, the ``--semseg`` / ``--coco-panoptic`` options of
``tools/evaluate_benchmarks.py``) and evaluated into the benchmark table. Data: the generated synthetic shapes set
(3 images); a model that returns the ground truth scores exactly 100 mIoU and 100 PQ."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from torch import nn

from mask_adapter.config import add_mask_adapter_config
from mask_adapter.data.catalog import register_user_datasets
from mask_adapter.data.synthetic import make_synthetic_dataset
from mask_adapter.evaluation import evaluate_benchmarks
from mask_adapter.evaluation.command import main
from tests import REPO

CLASSES = "0:square\n1:circle\n2:triangle\n3:sky\n4:grass\n"


@pytest.fixture
def data(tmp_path):
    paths = make_synthetic_dataset(str(tmp_path), n_train=0, n_val=3, size=(48, 64), seed=3)
    (tmp_path / "classes.txt").write_text(CLASSES)
    names = []
    yield paths["root"], tmp_path / "classes.txt", names
    for name in names:
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


def _panoptic_ids(path: str) -> torch.Tensor:
    pan = np.array(Image.open(path).convert("RGB")).astype(np.int64)
    return torch.as_tensor(pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2], dtype=torch.int32)


class OracleModel(nn.Module):
    """Returns each image's ground truth (semantic from the label PNG or the panoptic PNG; panoptic segments)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.records, self.num_classes = {}, 0

    def set_metadata(self, metadata):
        self.records = {r["file_name"]: r for r in DatasetCatalog.get(metadata.dataname)}
        self.num_classes = len(metadata.stuff_classes)

    def forward(self, batched_inputs):
        outs = []
        for x in batched_inputs:
            r = self.records[x["file_name"]]
            out = {}
            if "pan_seg_file_name" in r:
                ids = _panoptic_ids(r["pan_seg_file_name"])
                segments = [
                    {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]}
                    for s in r["segments_info"]
                ]
                out["panoptic_seg"] = (ids, segments)
                sem = torch.zeros(ids.shape, dtype=torch.long)
                for s in segments:
                    sem[ids == s["id"]] = s["category_id"]
            else:
                sem = torch.as_tensor(np.array(Image.open(r["sem_seg_file_name"])).astype(np.int64))
                sem[sem == 255] = 0
            out["sem_seg"] = F.one_hot(sem, self.num_classes).permute(2, 0, 1).float()
            outs.append(out)
        return outs


def _cfg():
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 32, 64
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = True
    return cfg


def test_perfect_predictions_score_100_on_own_semseg_and_panoptic_data(data, tmp_path):
    root, classes, names = data
    shutil.copytree(f"{root}/panoptic/val", f"{root}/panoptic_val")  # COCO's layout: x.json next to x/
    names += register_user_datasets(
        semseg=[("own_sem", f"{root}/images/val", f"{root}/semantic/val", str(classes))],
        panoptic=[("own_pan", f"{root}/images/val", f"{root}/panoptic_val.json")],  # PNG folder: JSON path - .json
    )
    assert names == ["own_sem", "own_pan"]
    pan_meta = MetadataCatalog.get("own_pan")
    assert pan_meta.stuff_classes == ["square", "circle", "triangle", "sky", "grass"]
    assert pan_meta.thing_classes == ["square", "circle", "triangle"]
    assert pan_meta.evaluator_type == "coco_panoptic_seg" and pan_meta.panoptic_root.endswith("panoptic_val")
    report = evaluate_benchmarks(_cfg(), OracleModel(), names, str(tmp_path / "out"))
    assert report["own_sem"]["status"] == "ok" and report["own_sem"]["images"] == 3
    assert report["own_sem"]["mIoU"] == pytest.approx(100.0)
    assert report["own_sem"]["PQ"] is None
    assert report["own_pan"]["status"] == "ok"
    assert report["own_pan"]["PQ"] == pytest.approx(100.0)
    assert report["own_pan"]["mIoU"] == pytest.approx(100.0)  # semantic labels derived from the panoptic PNGs
    rows = {r["benchmark"]: r for r in csv.DictReader((tmp_path / "out" / "benchmarks.csv").open())}
    assert float(rows["own_pan"]["PQ"]) == pytest.approx(100.0) and float(rows["own_sem"]["mIoU"]) == 100.0


def test_a_wrong_prediction_scores_below_100(data, tmp_path):
    root, classes, names = data
    names += register_user_datasets(
        semseg=[("own_sem_wrong", f"{root}/images/val", f"{root}/semantic/val", str(classes))]
    )

    class Shifted(OracleModel):
        def forward(self, batched_inputs):
            return [{"sem_seg": o["sem_seg"].roll(1, dims=0)} for o in super().forward(batched_inputs)]

    report = evaluate_benchmarks(_cfg(), Shifted(), names, None)
    assert report["own_sem_wrong"]["mIoU"] == pytest.approx(0.0)


def test_bad_panoptic_json_is_named(data, tmp_path):
    root, _, names = data
    info = json.loads((tmp_path / "synthetic_shapes" / "panoptic_val.json").read_text())
    info["categories"] = info["categories"][:-1]  # grass segments now have an unknown category
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(info))
    names += register_user_datasets(panoptic=[("own_bad", f"{root}/images/val", str(bad), f"{root}/panoptic/val")])
    with pytest.raises(ValueError, match="category 5, which is not in 'categories'"):
        DatasetCatalog.get("own_bad")
    with pytest.raises(
        FileNotFoundError, match="dataset 'own_missing': .*nowhere.json' does not exist; check the path"
    ):
        register_user_datasets(panoptic=[("own_missing", f"{root}/images/val", f"{root}/nowhere.json")])
    with pytest.raises(ValueError, match="--coco-panoptic takes NAME IMAGES PANOPTIC_JSON"):
        register_user_datasets(panoptic=[("x", "y")])


@pytest.mark.slow  # builds the tiny model and runs it on 3 images per dataset
def test_evaluate_command_on_own_data_with_the_tiny_model(data, tmp_path, capsys):
    root, classes, names = data
    names += ["cmd_sem", "cmd_pan"]
    out = tmp_path / "cmd"
    code = main(
        [
            "--config-file", str(REPO / "configs/tiny/fcclip_tiny.yaml"), "--output", str(out), "--quiet",
            "--semseg", "cmd_sem", f"{root}/images/val", f"{root}/semantic/val", str(classes),
            "--coco-panoptic", "cmd_pan", f"{root}/images/val", f"{root}/panoptic_val.json", f"{root}/panoptic/val",
            "MODEL.DEVICE", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    rows = {r["benchmark"]: r for r in csv.DictReader((out / "benchmarks.csv").open())}
    assert list(rows) == ["cmd_sem", "cmd_pan"]
    assert 0.0 <= float(rows["cmd_sem"]["mIoU"]) <= 100.0 and rows["cmd_sem"]["PQ"] == ""
    assert 0.0 <= float(rows["cmd_pan"]["PQ"]) <= 100.0 and rows["cmd_pan"]["mIoU"] != ""
