"""GT-mask upper-bound analysis (mask_adapter.apps.analyze_gt_masks, launched by tools/analyze_gt_masks.py): accuracy bookkeeping, CSV/plot, tiny-model run."""

import csv
import logging
import os
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from mask_adapter.apps import analyze_gt_masks as ana
from tests import REPO as REPO_PATH
from tests._builders import tiny_model as build_tiny_model

REPO = str(REPO_PATH)

TINY_CONFIG = os.path.join(REPO, "configs", "tiny", "fcclip_tiny.yaml")
CLASSES = ["cat,kitten", "dog", "person,people", "car"]
# Label maps of the tiny dataset: class 0 appears in every image (majority), 255 is ignored.
LABELS = [
    {0: (slice(0, 32), slice(0, 96)), 1: (slice(32, 64), slice(0, 48)), 255: (slice(32, 64), slice(48, 96))},
    {0: (slice(0, 64), slice(0, 40)), 2: (slice(0, 64), slice(40, 96))},
    {0: (slice(0, 20), slice(0, 96)), 3: (slice(20, 64), slice(0, 60)), 2: (slice(20, 64), slice(60, 96))},
]


def _label_map(spec):
    labels = np.full((64, 96), 255, np.uint8)
    for k, (ys, xs) in spec.items():
        labels[ys, xs] = k
    return labels


def _image_for(labels):
    """Image whose red channel encodes the label (label * 50), so a 'perfect' classifier can read it back."""
    img = np.random.RandomState(0).randint(0, 256, (64, 96, 3)).astype(np.uint8)
    img[..., 0] = np.where(labels == 255, 250, labels.astype(np.int64) * 50).astype(np.uint8)
    return img


@pytest.fixture()
def tiny_dataset(tmp_path):
    """Dataset dicts with files on disk (PNG images, PNG label maps)."""
    dicts = []
    for i, spec in enumerate(LABELS):
        labels = _label_map(spec)
        img_path, gt_path = tmp_path / f"img{i}.png", tmp_path / f"img{i}_gt.png"
        Image.fromarray(_image_for(labels)).save(img_path)
        Image.fromarray(labels).save(gt_path)
        dicts.append({"file_name": str(img_path), "sem_seg_file_name": str(gt_path)})
    return dicts


def perfect(image, masks):
    """Reads the label back from the red channel (the most frequent value inside the mask)."""
    return np.array([np.bincount(image[m][:, 0] // 50).argmax() for m in masks])


def constant(image, masks):
    return np.zeros(len(masks), dtype=np.int64)


def _mask_counts():
    counts = np.zeros(len(CLASSES), int)
    for spec in LABELS:
        for k in spec:
            if k != 255:
                counts[k] += 1
    return counts


def test_perfect_and_constant_classifiers(tiny_dataset):
    stats = ana.analyze(None, tiny_dataset, {"perfect": perfect, "constant": constant}, class_names=CLASSES)
    counts = _mask_counts()
    assert stats["perfect"].num_masks == counts.sum() == 7
    assert stats["perfect"].accuracy == 1.0
    assert stats["perfect"].mean_class_accuracy == 1.0
    assert stats["constant"].accuracy == pytest.approx(counts.max() / counts.sum())  # majority share = 3/7
    assert stats["constant"].mean_class_accuracy == pytest.approx(1.0 / 4)  # 100 % on class 0, 0 % elsewhere
    np.testing.assert_array_equal(stats["constant"].total, counts)
    assert np.isnan(stats["constant"].seen_accuracy)  # no training vocabulary -> no split


def test_classifiers_as_sequence_and_seen_split(tiny_dataset):
    stats = ana.analyze(
        None, tiny_dataset, (perfect, ("zero", constant)), class_names=CLASSES, train_class_names=["kitten", "dog"]
    )  # synonym overlap: cat (via kitten) and dog seen
    assert set(stats) == {"perfect", "zero"}
    zero = stats["zero"].row()
    assert (zero["seen_masks"], zero["unseen_masks"]) == (4, 3)
    assert zero["seen_accuracy"] == pytest.approx(3 / 4)
    assert zero["unseen_accuracy"] == 0.0
    assert stats["perfect"].seen_accuracy == stats["perfect"].unseen_accuracy == 1.0


def test_csv_table_and_plot(tiny_dataset, tmp_path):
    stats = ana.analyze(
        None, tiny_dataset, {"perfect": perfect, "constant": constant}, class_names=CLASSES, train_class_names=["cat"]
    )
    path = ana.write_csv(stats, tmp_path / "out" / "acc.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["classifier"] for r in rows] == ["perfect", "constant"]
    assert float(rows[0]["accuracy"]) == 1.0
    assert float(rows[1]["accuracy"]) == pytest.approx(3 / 7)
    assert int(rows[1]["masks"]) == 7
    table = ana.format_table(stats)
    assert "perfect" in table and "100.0" in table and "42.9" in table
    png = ana.plot_accuracies(stats, tmp_path / "out" / "acc.png")
    assert Image.open(png).size[0] > 100


def test_gt_masks_ignore_and_out_of_range(caplog):
    labels = np.array([[0, 0, 255], [7, 2, 2]])
    with caplog.at_level(logging.WARNING, logger="mask_adapter.tools.analyze_gt_masks"):
        masks, classes = ana.gt_masks(labels, num_classes=4, ignore_label=255)
    assert classes.tolist() == [0, 2]
    assert masks.shape == (2, 2, 3) and masks.dtype == bool
    assert masks[1].sum() == 2
    assert "outside the 4-class vocabulary" in caplog.text


def test_bad_inputs(tiny_dataset):
    with pytest.raises(ValueError, match="no semantic ground truth"):
        ana.analyze(None, [{"file_name": tiny_dataset[0]["file_name"]}], {"c": constant}, class_names=CLASSES)
    with pytest.raises(ValueError, match="returned 1 predictions for 2 masks"):
        ana.analyze(None, tiny_dataset[:1], {"bad": lambda img, m: [0]}, class_names=CLASSES)
    with pytest.raises(ValueError, match="class_names"):
        ana.analyze(None, tiny_dataset, {"c": constant})


def test_in_memory_dicts_and_transform():
    from detectron2.data import transforms as T

    labels = _label_map(LABELS[2])
    d = {"image": _image_for(labels), "sem_seg": labels}
    stats = ana.analyze(
        None, [d], {"perfect": perfect}, class_names=CLASSES, transform=T.ResizeShortestEdge([32, 32], 1000)
    )
    assert stats["perfect"].num_masks == 3 and stats["perfect"].accuracy == 1.0


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_model("fcclip_tiny", seed=0, classes=CLASSES, thing_ids=())


def test_tiny_model_builtin_classifiers(tiny_model, tiny_dataset):
    stats = ana.analyze(tiny_model, tiny_dataset)
    assert list(stats) == ["crop", "pooling", "adapter"]
    for s in stats.values():
        assert s.num_masks == 7
        assert 0.0 <= s.accuracy <= 1.0


def test_builtin_classifier_outputs(tiny_model):
    image = np.random.RandomState(1).randint(0, 256, (64, 96, 3)).astype(np.uint8)
    masks = np.zeros((3, 64, 96), bool)
    masks[0, :32] = True
    masks[1, 32:, :10] = True
    masks[2, 5, 5] = True  # a one-pixel mask still gets a prediction
    classifiers = ana.default_classifiers(tiny_model)
    for name, fn in classifiers.items():
        pred = fn(image, masks)
        assert pred.shape == (3,), name
        assert ((pred >= 0) & (pred < len(CLASSES))).all(), name
    # the adapter classifier is the model's own adapter path on the same masks
    from mask_adapter.modeling.adapter.pooling import classification_logits

    shared = classifiers["adapter"].__self__
    state = shared.state(image)
    padded = shared._padded(state, masks)
    with torch.no_grad():
        emb = tiny_model.mask_embeddings(state, padded)
        expected = classification_logits(
            emb, state.adapter_text, tiny_model.backbone.logit_scale, state.synonyms_per_class
        )[0, :, :-1].argmax(-1)
    assert classifiers["adapter"](image, masks).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="unknown classifiers"):
        ana.default_classifiers(tiny_model, ["crop", "oracle"])


def test_cli_on_registered_dataset(tmp_path, caplog):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mask_adapter.data.catalog import register_custom_semseg

    images, gts = tmp_path / "images", tmp_path / "gt"
    images.mkdir()
    gts.mkdir()
    for i, spec in enumerate(LABELS):
        labels = _label_map(spec)
        Image.fromarray(_image_for(labels)).save(images / f"{i}.jpg")
        Image.fromarray(labels).save(gts / f"{i}.png")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"{i}:{c}\n" for i, c in enumerate(CLASSES)), encoding="utf-8")
    name = f"gt_mask_analysis_test_{uuid.uuid4().hex[:8]}"
    register_custom_semseg(name, str(images), str(gts), str(vocab))
    try:
        out = tmp_path / "out"
        with caplog.at_level(logging.INFO, logger="mask_adapter.tools.analyze_gt_masks"):
            stats = ana.main(
                [
                    "--config-file",
                    TINY_CONFIG,
                    "--dataset",
                    name,
                    "--output",
                    str(out),
                    "--plot",
                    "--classifiers",
                    "pooling,adapter",
                    "--train-vocabulary",
                    "pascal_voc_21",
                ]
            )
        assert list(stats) == ["pooling", "adapter"]
        assert stats["adapter"].num_masks == 7
        assert stats["adapter"].seen is not None  # cat, dog, person, car are VOC classes
        assert stats["adapter"].seen.all()
        assert (out / f"{name}_gt_mask_accuracy.csv").is_file()
        assert (out / f"{name}_gt_mask_accuracy.png").is_file()
        assert "mean class acc" in caplog.text
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
