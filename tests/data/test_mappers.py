"""LSJ dataset mappers on the synthetic dataset: output shapes, dtypes, masks vs labels, registry errors."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, DatasetMapper
from PIL import Image

from mask_adapter.config import add_mask_adapter_config
from mask_adapter.data.catalog import register_all, register_custom_semseg
from mask_adapter.data.mappers import DATASET_MAPPER_REGISTRY, build_dataset_mapper
from mask_adapter.data.mappers.color_aug import ColorAugSSD, ColorAugSSDTransform
from mask_adapter.data.synthetic import make_synthetic_dataset

SIZE = 64


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("d2")
    make_synthetic_dataset(str(root), n_train=4, n_val=1, size=(48, 96), seed=1)
    register_all(str(root), overwrite=True)
    yield root
    register_all(None, overwrite=True)


def make_cfg(
    mapper="coco_panoptic_lsj",
    flip="horizontal",
    scales=(0.5, 2.0),
    dataset="synthetic_shapes_panoptic_train",
):
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.INPUT.DATASET_MAPPER_NAME = mapper
    cfg.INPUT.IMAGE_SIZE = SIZE
    cfg.INPUT.MIN_SCALE, cfg.INPUT.MAX_SCALE = scales
    cfg.INPUT.RANDOM_FLIP = flip
    cfg.INPUT.FORMAT = "RGB"
    cfg.DATASETS.TRAIN = (dataset,)
    return cfg


def check_common(out):
    image, inst = out["image"], out["instances"]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.uint8
    assert inst.image_size == (SIZE, SIZE)
    assert inst.gt_masks.dtype == torch.bool and inst.gt_masks.shape[1:] == (SIZE, SIZE)
    assert inst.gt_classes.dtype == torch.int64 and len(inst.gt_classes) == len(inst.gt_masks)
    assert out["sem_seg"].shape == (SIZE, SIZE) and out["sem_seg"].dtype == torch.int64
    assert set(out["sem_seg"].unique().tolist()) <= {0, 1, 2, 3, 4, 255}


@pytest.mark.parametrize("flip", ["horizontal", "none"])
@pytest.mark.parametrize("scales", [(0.3, 0.3), (2.0, 2.0), (0.5, 2.0)])
def test_coco_panoptic_lsj(synthetic, flip, scales):
    mapper = build_dataset_mapper(make_cfg(flip=flip, scales=scales), is_train=True)
    for record in DatasetCatalog.get("synthetic_shapes_panoptic_train"):
        out = mapper(record)
        check_common(out)  # LSJ output is IMAGE_SIZE x IMAGE_SIZE even with RANDOM_FLIP "none" (official: skipped)
        inst, sem = out["instances"], out["sem_seg"]
        assert "pan_seg_file_name" not in out and "segments_info" not in out
        for cls, mask in zip(inst.gt_classes.tolist(), inst.gt_masks):
            assert mask.any()  # segments cropped away entirely are dropped
            assert (sem[mask] == cls).all()
        if scales == (
            0.3,
            0.3,
        ):  # small image, padded: padding is ignore in sem_seg and void in masks
            assert (sem[-1, -1] == 255) and not inst.gt_masks[:, -1, -1].any()
            assert (out["image"][:, -1, -1] == 128).all()


def test_mask_former_semantic(synthetic):
    mapper = build_dataset_mapper(make_cfg("mask_former_semantic"), is_train=True)
    record = DatasetCatalog.get("synthetic_shapes_panoptic_train")[0]
    out = mapper(record)
    check_common(out)
    classes, masks, sem = out["instances"].gt_classes, out["instances"].gt_masks, out["sem_seg"]
    expected = sorted(c for c in sem.unique().tolist() if c != 255)
    assert classes.tolist() == expected  # one mask per class present, ignore skipped
    assert (masks.sum(0) <= 1).all()
    for cls, mask in zip(classes.tolist(), masks):
        assert torch.equal(mask, sem == cls)


def test_mask_former_semantic_with_65535_ignore(synthetic, tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "img" / "a.jpg")
    label = np.full((20, 30), 65535, np.uint16)
    label[5:15, 5:25] = 300
    Image.fromarray(label).save(tmp_path / "gt" / "a.tif")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"{i}:class {i}\n" for i in range(400)))
    register_custom_semseg(
        "mapper_test_tif",
        str(tmp_path / "img"),
        str(tmp_path / "gt"),
        str(vocab),
        ignore_label=65535,
        gt_ext="tif",
    )
    try:
        mapper = build_dataset_mapper(
            make_cfg("mask_former_semantic", scales=(0.5, 0.5), dataset="mapper_test_tif"),
            is_train=True,
        )
        out = mapper(DatasetCatalog.get("mapper_test_tif")[0])
        assert out["instances"].gt_classes.tolist() == [300]
        assert set(out["sem_seg"].unique().tolist()) == {
            300,
            65535,
        }  # padding uses the dataset's ignore label
    finally:
        DatasetCatalog.remove("mapper_test_tif")


def test_color_aug_ssd_and_stage1_flag(synthetic):
    cfg = make_cfg()
    cfg.INPUT.COLOR_AUG_SSD = True
    with_aug = build_dataset_mapper(cfg, is_train=True)
    without = build_dataset_mapper(cfg, is_train=True, ignore_color_aug=True)
    has_aug = lambda m: any(isinstance(a, ColorAugSSD) for a in m.augmentations.augs)  # noqa: E731
    assert has_aug(with_aug) and not has_aug(without)
    check_common(with_aug(DatasetCatalog.get("synthetic_shapes_panoptic_train")[0]))
    rgb = np.random.RandomState(0).randint(0, 255, (8, 8, 3)).astype(np.uint8)
    jittered = ColorAugSSDTransform("RGB").apply_image(rgb)
    assert jittered.shape == rgb.shape and jittered.dtype == np.uint8


def test_registry_and_errors(synthetic):
    assert {"coco_panoptic_lsj", "mask_former_semantic", "coco_combine_lsj"} <= {k for k, _ in DATASET_MAPPER_REGISTRY}
    with pytest.raises(ValueError, match="'coco_combine_lsj' is not supported"):
        build_dataset_mapper(make_cfg("coco_combine_lsj"), is_train=True)
    with pytest.raises(KeyError, match="Unknown INPUT.DATASET_MAPPER_NAME 'nope'.*mask_former_semantic"):
        build_dataset_mapper(make_cfg("nope"), is_train=True)
    assert isinstance(build_dataset_mapper(make_cfg("nope"), is_train=False), DatasetMapper)
    sem_only = {"file_name": DatasetCatalog.get("synthetic_shapes_panoptic_train")[0]["file_name"]}
    with pytest.raises(ValueError, match="needs panoptic records"):
        build_dataset_mapper(make_cfg(), is_train=True)(sem_only)
    with pytest.raises(ValueError, match="needs semantic records"):
        build_dataset_mapper(make_cfg("mask_former_semantic"), is_train=True)(sem_only)


def test_test_time_mapper_is_detectron2s(synthetic):
    cfg = make_cfg()
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 32, 64
    record = DatasetCatalog.get("synthetic_shapes_panoptic_val")[0]
    out = build_dataset_mapper(cfg, is_train=False)(record)
    assert out["image"].dtype == torch.uint8 and min(out["image"].shape[1:]) == 32
    assert "instances" not in out
