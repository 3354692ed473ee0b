"""Tiny raw copies of the benchmark sources in their original formats, for the datasets/prepare_*.py tests.

Each builder writes the files one preparation script reads under a dataset root (both splits, since the scripts
convert training and validation); the default contents are the ones tests/test_prepare_datasets.py asserts on.

- :func:`ade_inputs`: ADEChallengeData2016 (images, ``annotations`` 0..150, ``annotations_instance`` R/G PNGs);
- :func:`ade_full_inputs`: ADE20K_2021_17_01 (``index_ade20k.pkl``, images and ``*_seg.png``);
- :func:`pascal_context_inputs`: VOC2010 images with Pascal Context 459-label ``.mat`` / 16-bit PNG maps;
- :func:`voc_inputs`: VOC2012 images, palette ``SegmentationClass`` PNGs and ``ImageSets/Segmentation`` lists;
- :func:`prepare_benchmarks`: all of the above, then every script the five open-vocabulary benchmarks need.
"""

import importlib.util
import pickle
from pathlib import Path
from types import ModuleType
from typing import Optional

import numpy as np
import scipy.io
from PIL import Image

__all__ = [
    "REPO",
    "script",
    "save",
    "rgb_image",
    "read",
    "ade_inputs",
    "ade_full_inputs",
    "pascal_context_inputs",
    "voc_inputs",
    "prepare_benchmarks",
]

REPO = Path(__file__).resolve().parents[1]

# ADE20K_2021 object class values (R / 10 * 256 + G of *_seg.png): wall -> 847-class 0, adding machine -> 846.
ADE_FULL_WALL, ADE_FULL_ADDING_MACHINE = 2978, 3148


def script(name: str) -> ModuleType:
    """The module ``datasets/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, REPO / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save(path, array: np.ndarray, palette: bool = False) -> None:
    """Write ``array`` as an image (creating folders); ``palette`` makes a VOC-style palette PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if palette:  # VOC labels are palette PNGs; their pixel values are the palette indices
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    img.save(path)


def rgb_image(path, h: int, w: int) -> None:
    """A seeded random (h, w, 3) RGB image."""
    save(path, np.random.RandomState(0).randint(0, 255, (h, w, 3)).astype(np.uint8))


def read(path) -> np.ndarray:
    """An image file as an array."""
    return np.array(Image.open(path))


def ade_inputs(
    root: Path,
    split: str = "validation",
    stem: str = "ADE_val_00000001",
    sem: Optional[np.ndarray] = None,
    ins: Optional[np.ndarray] = None,
) -> Path:
    """One ADEChallengeData2016 image with its semantic (0 unlabeled, 1..150) and instance annotations.

    Default: an 8x10 map of wall (1) with a bed (8, instance class 1, instance 1) at [2:6, 2:6] and an unlabeled
    first row. Returns the ADEChallengeData2016 folder.
    """
    ade = root / "ADEChallengeData2016"
    if sem is None:
        sem = np.ones((8, 10), np.uint8)  # wall (ADE index 1)
        sem[2:6, 2:6] = 8  # bed (ADE index 8 -> class 7, a thing)
        sem[0, :] = 0  # unlabeled
    if ins is None:
        ins = np.zeros(sem.shape + (3,), np.uint8)
        ins[2:6, 2:6] = (1, 1, 0)  # instance class 1 (bed), instance id 1
    rgb_image(ade / "images" / split / f"{stem}.jpg", *sem.shape)
    save(ade / "annotations" / split / f"{stem}.png", sem)
    save(ade / "annotations_instance" / split / f"{stem}.png", ins)
    return ade


def ade_full_inputs(root: Path, name: str = "ADE_val_00000001.jpg") -> Path:
    """One ADE20K_2021_17_01 image (6x7) listed in ``index_ade20k.pkl`` with its ``*_seg.png``.

    Rows: 0 = object class 5 (not among the 847 -> ignore), 1 = adding machine (-> 846), 2..5 = wall (-> 0).
    Returns the ADE20K_2021_17_01 folder.
    """
    ade = root / "ADE20K_2021_17_01"
    folder = "ADE20K_2021_17_01/images/ADE/validation/home/bedroom"
    rgb_image(root / folder / name, 6, 7)
    seg = np.zeros((6, 7, 3), np.uint8)
    seg[:, :] = (ADE_FULL_WALL // 256 * 10, ADE_FULL_WALL % 256, 0)  # wall -> class 0
    seg[0, :] = (0, 5, 0)  # object class 5, not one of the 847 -> ignore
    machine = ADE_FULL_ADDING_MACHINE
    # adding machine (R/10 floors the +3) -> 846
    seg[1, :] = (machine // 256 * 10 + 3, machine % 256, 7)
    save(root / folder / name.replace(".jpg", "_seg.png"), seg)
    ade.mkdir(parents=True, exist_ok=True)
    with open(ade / "index_ade20k.pkl", "wb") as f:
        pickle.dump({"folder": [folder], "filename": [name]}, f)
    return ade


def pascal_context_inputs(root: Path) -> Path:
    """VOC2010 train/val images (2x3) with one 459-label map each (val as ``.mat``, train as a 16-bit PNG).

    Labels: [[unlabeled, accordion, aeroplane], [wool, computer, aeroplane]]. Returns the VOC2010 folder.
    """
    voc = root / "VOCdevkit" / "VOC2010"
    label = np.array(
        [[0, 1, 2], [459, 85, 2]], np.uint16
    )  # unlabeled, accordion, aeroplane, wool, computer
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "trainval").mkdir(parents=True)
    for split, stem in (("train", "2008_000001"), ("val", "2008_000002")):
        rgb_image(voc / "JPEGImages" / f"{stem}.jpg", 2, 3)
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(stem + "\n")
    scipy.io.savemat(voc / "trainval" / "2008_000002.mat", {"LabelMap": label})
    save(voc / "trainval" / "2008_000001.png", label)  # a pre-extracted 16-bit label map
    return voc


def voc_inputs(root: Path, label: Optional[np.ndarray] = None) -> Path:
    """VOC2012 train (2007_000001) and val (2007_000002) images with palette label PNGs.

    Default label (5x5, both splits): the 255 border everywhere, background in [1:4, 1:4], person (15) at [2, 2].
    Returns the VOC2012 folder.
    """
    voc = root / "VOCdevkit" / "VOC2012"
    if label is None:
        label = np.full((5, 5), 255, np.uint8)  # the 255 object border
        label[1:4, 1:4] = 0
        label[2, 2] = 15  # person
    for split, stem in (("train", "2007_000001"), ("val", "2007_000002")):
        rgb_image(voc / "JPEGImages" / f"{stem}.jpg", *label.shape)
        save(voc / "SegmentationClass" / f"{stem}.png", label, palette=True)
        (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(stem + "\n")
    return voc


# The preparation scripts of the five benchmarks (A-150 needs the semantic, panoptic and instance outputs).
BENCHMARK_SCRIPTS = (
    "prepare_ade20k_full_sem_seg",
    "prepare_ade20k_sem_seg",
    "prepare_ade20k_pan_seg",
    "prepare_ade20k_ins_seg",
    "prepare_pascal_ctx_full_sem_seg",
    "prepare_pascal_ctx_sem_seg",
    "prepare_pascal_voc_sem_seg",
)


def prepare_benchmarks(
    root: Path,
    ade_val: Optional[dict] = None,
    voc_label: Optional[np.ndarray] = None,
) -> None:
    """Raw inputs of A-847, A-150, PC-459, PC-59 and PAS-20 under ``root``, then run their scripts' ``main``.

    Args:
        root: dataset root.
        ade_val: extra ADEChallengeData2016 validation images, {stem: (sem, ins)}, besides the default one.
        voc_label: the VOC label map of both splits (default: :func:`voc_inputs`'s).
    """
    ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    for stem, (sem, ins) in (ade_val or {}).items():
        ade_inputs(root, "validation", stem, sem, ins)
    ade_full_inputs(root)
    pascal_context_inputs(root)
    voc_inputs(root, voc_label)
    for name in BENCHMARK_SCRIPTS:
        if script(name).main(["--root", str(root)]) not in (0, None):
            raise RuntimeError(f"datasets/{name}.py failed on {root}")
