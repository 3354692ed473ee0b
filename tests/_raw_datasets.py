"""Tiny raw copies of the benchmark sources in their original formats, for the datasets/prepare_*.py tests.

Each builder writes the files one preparation script reads under a dataset root (both splits, since the scripts
convert training and validation); the default contents are the ones tests/data/test_prepare_datasets.py asserts on.

- :func:`ade_inputs`: ADEChallengeData2016 (images, ``annotations`` 0..150, ``annotations_instance`` R/G PNGs);
  :func:`ade_covered_stuff`: maps of an image whose things cover stuff;
- :func:`ade_full_inputs`: ADE20K_2021_17_01 (``index_ade20k.pkl``, images and ``*_seg.png``);
- :func:`pascal_context_inputs`: VOC2010 images with Pascal Context 459-label ``.mat`` / 16-bit PNG maps;
- :func:`voc_inputs`: VOC2012 images, palette ``SegmentationClass`` PNGs and ``ImageSets/Segmentation`` lists;
- :func:`cityscapes_inputs`: leftImg8bit images with ``gtFine`` instance-id (16-bit) and label-id PNGs;
- :func:`mapillary_inputs`: Mapillary Vistas v1.2 images, panoptic PNGs + ``panoptic_2018.json`` and palette
  labels, in the layout of the v1.2 or of the v2.0 archive;
- :func:`prepare_benchmarks`: all of the above, then every script the five open-vocabulary benchmarks need.
"""

import importlib
import json
import pickle
from pathlib import Path
from types import ModuleType

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
    "ade_covered_stuff",
    "ade_full_inputs",
    "pascal_context_inputs",
    "voc_inputs",
    "cityscapes_inputs",
    "mapillary_inputs",
    "prepare_benchmarks",
]

REPO = Path(__file__).resolve().parents[1]

# ADE20K_2021 object class values (R / 10 * 256 + G of *_seg.png): wall -> 847-class 0, adding machine -> 846.
ADE_FULL_WALL, ADE_FULL_ADDING_MACHINE = 2978, 3148


def script(name: str) -> ModuleType:
    """The package module behind ``datasets/<name>.py`` (its ``main(argv)`` is the script's command line)."""
    return importlib.import_module(f"mask_adapter.data.prepare.commands.{name}")


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
    sem: np.ndarray | None = None,
    ins: np.ndarray | None = None,
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


def ade_covered_stuff() -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance) maps (8x10) of an ADE20K image whose thing instances are painted over stuff.

    Semantic: row 0 unlabeled, wall (1) elsewhere, floor (4) at [5:8, 0:4]. Instances: a bed (instance class 1,
    id 1) at [4:8, 0:6], covering all of the floor and 12 wall pixels, and a window (instance class 2, id 2) at
    [1:3, 7:10] on wall labelled window (9) in the semantic map. Official segments (area and box measured before
    painting): wall 52 px [0, 1, 10, 7] (40 left visible), floor 12 px [0, 5, 4, 3] (none left), bed 24 px
    [0, 4, 6, 4], window 6 px [7, 1, 3, 2].
    """
    sem = np.ones((8, 10), np.uint8)
    sem[0] = 0
    sem[5:8, 0:4] = 4  # floor
    sem[1:3, 7:10] = 9  # windowpane (a thing class: no stuff segment)
    ins = np.zeros((8, 10, 3), np.uint8)
    ins[4:8, 0:6] = (1, 1, 0)  # bed
    ins[1:3, 7:10] = (2, 2, 0)  # window
    return sem, ins


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
    label = np.array([[0, 1, 2], [459, 85, 2]], np.uint16)  # unlabeled, accordion, aeroplane, wool, computer
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "trainval").mkdir(parents=True)
    for split, stem in (("train", "2008_000001"), ("val", "2008_000002")):
        rgb_image(voc / "JPEGImages" / f"{stem}.jpg", 2, 3)
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(stem + "\n")
    scipy.io.savemat(voc / "trainval" / "2008_000002.mat", {"LabelMap": label})
    save(voc / "trainval" / "2008_000001.png", label)  # a pre-extracted 16-bit label map
    return voc


def voc_inputs(root: Path, label: np.ndarray | None = None) -> Path:
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


def cityscapes_instance_ids() -> np.ndarray:
    """A 32x64 ``*_gtFine_instanceIds.png`` map (label id, or label id * 1000 + instance for thing instances).

    Rows 0-1 unlabeled (0), 2-7 sky (23), 8-15 building (11) with a caravan (29000, not evaluated) at [12:16, 0:4],
    16-29 road (7) with car instances 26000 at [18:26, 4:20] and 26001 at [18:26, 24:36] and a car crowd region
    (26, no instance) at [20:28, 40:50], 30-31 ego vehicle (1); a person (24000) at [10:30, 54:58] on top.
    """
    ids = np.zeros((32, 64), np.uint16)
    ids[2:8] = 23
    ids[8:16] = 11
    ids[12:16, 0:4] = 29000
    ids[16:30] = 7
    ids[18:26, 4:20] = 26000
    ids[18:26, 24:36] = 26001
    ids[20:28, 40:50] = 26
    ids[30:32] = 1
    ids[10:30, 54:58] = 24000
    return ids


def cityscapes_inputs(
    root: Path,
    split: str = "val",
    stem: str = "frankfurt_000000_000294",
    instance_ids: np.ndarray | None = None,
) -> Path:
    """One Cityscapes image ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` (city = the stem's first part)
    with its ``gtFine`` ``*_instanceIds.png`` (16-bit; default :func:`cityscapes_instance_ids`) and the
    ``*_labelIds.png`` derived from it. Returns the ``cityscapes`` folder.
    """
    cityscapes = root / "cityscapes"
    ids = cityscapes_instance_ids() if instance_ids is None else instance_ids
    city = stem.split("_")[0]
    rgb_image(cityscapes / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", *ids.shape)
    gt = cityscapes / "gtFine" / split / city
    save(gt / f"{stem}_gtFine_instanceIds.png", ids)
    labels = np.where(ids < 1000, ids, ids // 1000).astype(np.uint8)
    save(gt / f"{stem}_gtFine_labelIds.png", labels)
    return cityscapes


def mapillary_panoptic() -> tuple[np.ndarray, list[dict]]:
    """A 32x64 Mapillary Vistas v1.2 panoptic map: (H, W) segment ids and its segments_info.

    Rows 0-1 unlabeled (id 0), 2-9 sky (class 28, segment 1000000), 10-15 building (18, segment 3), 16-31 road (14,
    segment 70000) with cars (56) 5000 at [18:26, 4:20] and 5001 at [18:26, 30:40]; a person (20, segment 77) at
    [8:28, 50:54] on top.
    """
    ids = np.zeros((32, 64), np.int64)
    ids[2:10] = 1000000
    ids[10:16] = 3
    ids[16:32] = 70000
    ids[18:26, 4:20] = 5000
    ids[18:26, 30:40] = 5001
    ids[8:28, 50:54] = 77
    classes = {1000000: 28, 3: 18, 70000: 14, 5000: 56, 5001: 56, 77: 20}
    segments = []
    for seg_id, cat in classes.items():
        ys, xs = np.nonzero(ids == seg_id)
        box = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
        segments.append({"id": seg_id, "category_id": cat, "area": len(ys), "bbox": box, "iscrowd": 0})
    return ids, segments


def mapillary_inputs(root: Path, layout: str = "v1.2", keys: dict | None = None) -> Path:
    """Mapillary Vistas v1.2 splits with one image each (:func:`mapillary_panoptic`) in an archive's layout.

    Args:
        layout: "v1.2" (``<split>/{images,panoptic,labels}``, the v1.2 archive) or "v2.0" (``<split>/images`` and
            ``<split>/v1.2/{panoptic,labels}`` beside a ``v2.0/`` folder, the v2.0 archive).
        keys: {split folder: image key}; default "train_key_1" / "val_key_1".

    Labels are palette PNGs holding class id - 1 (65 = unlabeled). Returns the ``mapillary_vistas`` folder.
    """
    from mask_adapter.data.metadata import class_table
    from mask_adapter.data.prepare import ids_to_rgb

    classes = class_table("mapillary_vistas")
    categories = [
        {
            "id": c.dataset_id,
            "name": c.names.split(",")[0].title(),
            "supercategory": c.names.split(",")[0].replace(" ", "-"),
            "isthing": int(c.isthing),
            "color": list(c.color),
        }
        for c in classes
    ]
    palette = [v for c in classes for v in c.color] + [0, 0, 0]
    ids, segments = mapillary_panoptic()
    label = np.full(ids.shape, 65, np.uint8)
    for seg in segments:
        label[ids == seg["id"]] = seg["category_id"] - 1
    mv = root / "mapillary_vistas"
    keys = keys or {"training": "train_key_1", "validation": "val_key_1"}
    for split, key in keys.items():
        rgb_image(mv / split / "images" / f"{key}.jpg", *ids.shape)
        v12 = mv / split / ("v1.2" if layout == "v2.0" else "")
        save(v12 / "panoptic" / f"{key}.png", ids_to_rgb(ids))
        img = Image.fromarray(label)
        img.putpalette(palette)  # a palette PNG, like the originals
        (v12 / "labels").mkdir(parents=True, exist_ok=True)
        img.save(v12 / "labels" / f"{key}.png")
        info = {
            "images": [{"id": key, "file_name": f"{key}.jpg", "height": 32, "width": 64}],
            "annotations": [{"image_id": key, "file_name": f"{key}.png", "segments_info": segments}],
            "categories": categories,
        }
        (v12 / "panoptic" / "panoptic_2018.json").write_text(json.dumps(info))
        if layout == "v2.0":
            (mv / split / "v2.0" / "panoptic").mkdir(parents=True, exist_ok=True)
            (mv / split / "v2.0" / "panoptic" / "panoptic_2020.json").write_text("{}")
    return mv


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
    ade_val: dict | None = None,
    voc_label: np.ndarray | None = None,
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
