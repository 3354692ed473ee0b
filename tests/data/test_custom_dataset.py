"""A user's own folder (images + PNG label maps + vocabulary file) trains and evaluates through train_net.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask_adapter.apps.make_custom_example import make_custom_example
from mask_adapter.apps.train import cli
from tests import REPO


def test_example_folder_layout(tmp_path):
    out = make_custom_example(str(tmp_path / "my_data"))
    labels = np.array(Image.open(Path(out) / "labels" / "voc_example.png"))
    image = Image.open(Path(out) / "images" / "voc_example.jpg")
    assert labels.shape == (image.height, image.width)
    assert set(np.unique(labels)) <= {0, 5, 9, 11, 15, 255}
    lines = (Path(out) / "classes.txt").read_text().splitlines()
    assert len(lines) == 21 and lines[15] == "15:person"


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        make_custom_example(str(f))


def test_train_and_evaluate_on_own_folder(tmp_path):
    data = make_custom_example(str(tmp_path / "my_data"))
    out = tmp_path / "run"
    results = cli(
        [
            "--config-file", str(REPO / "configs/tiny/warmup_tiny.yaml"),
            "--register-semseg", "user_folder_example", f"{data}/images", f"{data}/labels", f"{data}/classes.txt",
            "DATASETS.TRAIN", "('user_folder_example',)",
            "DATASETS.TEST", "('user_folder_example',)",
            "INPUT.DATASET_MAPPER_NAME", "mask_former_semantic",
            "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "1", "SEED", "0",
            "OUTPUT_DIR", str(out),
        ]
    )  # fmt: skip
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get("user_folder_example")
    assert len(meta.stuff_classes) == 21 and meta.stuff_classes[15] == "person"
    assert (out / "model_final.pth").is_file()
    assert 0.0 <= results["sem_seg"]["mIoU"] <= 100.0
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any(np.isfinite(m.get("total_loss", np.nan)) for m in metrics)
