"""Helpers shared by the ``datasets/prepare_*.py`` scripts: the command line, the conversion loop, input checks,
label I/O, id maps and the per-dataset pieces several scripts share (VOC-style splits, Pascal-Context, ADE20K).

Every script is idempotent (existing outputs are skipped), shows tqdm progress, reads class definitions from the
package vocabularies and fails with one line naming the missing or unreadable input. A script is
``standard_main(__doc__, prepare, argv)`` around a ``prepare(root, ...)`` that lists (source, output) pairs for
:func:`convert_label_maps`.

Shapes: label maps (H, W); RGB images and panoptic PNGs (H, W, 3) uint8.
"""

import argparse
import glob
import json
import os
import shutil
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import numpy as np
from PIL import Image, UnidentifiedImageError

from .vocabulary import load_vocabulary_entries

__all__ = [
    "default_root",
    "base_parser",
    "standard_main",
    "convert_label_maps",
    "folder_pairs",
    "path_next_to",
    "require",
    "read_label",
    "read_rgb",
    "write_label",
    "copy_file",
    "progress",
    "id_lut",
    "apply_lut",
    "read_split_list",
    "read_pascal_context_label",
    "vocab_id_to_index",
    "check_ids",
    "TRAIN_VAL_FOLDERS",
    "voc_split_ids",
    "copy_voc_images",
    "prepare_pascal_context",
    "PASCAL_CONTEXT_HINT",
    "PASCAL_CONTEXT_OPTIONS",
    "ids_to_rgb",
    "rgb_to_ids",
    "mask_bbox",
    "write_coco_json",
    "ADE_HINT",
    "ade_catid_options",
    "read_ade_catid_mapping",
    "ade_instances",
    "ade_image_entry",
    "ade_split_images",
]

T = TypeVar("T")


def default_root() -> str:
    """The dataset root: ``$DETECTRON2_DATASETS`` or "datasets"."""
    return os.getenv("DETECTRON2_DATASETS", "datasets")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with ``--root`` (default ``$DETECTRON2_DATASETS`` or "datasets")."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        default=default_root(),
        help="dataset root (default: $DETECTRON2_DATASETS or 'datasets')",
    )
    return parser


# (flag, argparse.add_argument keyword arguments) of a script-specific command-line option.
Option = Tuple[str, Dict[str, Any]]


def standard_main(
    doc: str,
    prepare: Callable[..., Any],
    argv: Optional[Sequence[str]] = None,
    options: Sequence[Option] = (),
) -> int:
    """Command-line entry point of a preparation script: parse ``--root`` and ``options``, call ``prepare``.

    Args:
        doc: the script's docstring; its first line is the ``--help`` description.
        prepare: called with the parsed arguments as keywords (``root=...`` and one per option ``dest``).
        argv: arguments (default ``sys.argv[1:]``).
        options: extra (flag, add_argument kwargs) options; give a ``dest`` matching ``prepare``'s parameter name.

    Returns:
        0 (errors propagate as exceptions with one-line messages).
    """
    parser = base_parser(doc.strip().splitlines()[0])
    for flag, kwargs in options:
        parser.add_argument(flag, **kwargs)
    prepare(**vars(parser.parse_args(argv)))
    return 0


S = TypeVar("S")
Outputs = Union[str, Tuple[str, ...]]


def convert_label_maps(
    pairs: Iterable[Tuple[S, Outputs]],
    convert: Callable[[S], Any],
    desc: str,
    total: Optional[int] = None,
) -> int:
    """The conversion loop of the preparation scripts: write ``convert(source)`` for every output not there yet.

    Args:
        pairs: (source, output) pairs; the output is one path or a tuple of paths. A pair whose outputs all exist
            is skipped without calling ``convert`` (so re-running a script writes nothing). ``pairs`` may be a
            generator (it is consumed lazily, in order).
        convert: source -> the array to write (one output path) or a tuple of arrays (one per output path); it
            reads and checks its input (raising one-line errors). ``None`` skips the pair (nothing is written).
        desc: progress-bar label.
        total: number of pairs, for the progress bar when ``pairs`` has no length.

    Returns:
        The number of pairs written.
    """
    written = 0
    for source, outputs in progress(pairs, desc, total):
        paths = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        if all(os.path.exists(path) for path in paths):
            continue
        result = convert(source)
        if result is None:
            continue
        for path, array in zip(paths, (result,) if isinstance(outputs, str) else result):
            write_label(path, array)
        written += 1
    return written


def folder_pairs(
    src_dir: str,
    out_dir: str,
    what: str,
    hint: str,
    empty_hint: Optional[str] = None,
    pattern: str = "*.png",
) -> List[Tuple[str, str]]:
    """(input, output) pairs that convert a folder file by file, keeping the file names.

    Args:
        src_dir: input folder, which must exist (``what``/``hint`` as :func:`require`).
        out_dir: output folder; ``<src_dir>/x.png`` pairs with ``<out_dir>/x.png``.
        empty_hint: when given, a folder without any ``pattern`` file raises one ``FileNotFoundError`` line ending
            in this hint.
        pattern: glob pattern of the inputs.

    Returns:
        The pairs, sorted by input file name.
    """
    files = sorted(glob.glob(os.path.join(require(src_dir, what, hint), pattern)))
    if not files and empty_hint is not None:
        raise FileNotFoundError(f"No {pattern} annotation in '{src_dir}'; {empty_hint}")
    return [(path, os.path.join(out_dir, os.path.basename(path))) for path in files]


def require(path: str, what: str, hint: str) -> str:
    """Return ``path`` if it exists, else raise one ``FileNotFoundError`` line naming it and how to get it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at '{path}'; {hint}")
    return path


def read_label(path: str) -> np.ndarray:
    """Label image as an array (palette PNGs give their indices); a corrupt file raises one ValueError line."""
    try:
        with Image.open(path) as img:
            return np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(
            f"Cannot read annotation image '{path}' ({type(e).__name__}: {e}); the file is corrupt or not an "
            "image: re-extract it from the original archive"
        ) from None


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image; a corrupt file raises one ValueError line."""
    arr = read_label(path)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return arr[:, :, :3]


def write_label(path: str, label: np.ndarray) -> None:
    """Write a label map: uint8 -> PNG, uint16 -> 16-bit PNG or TIFF (by extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(label).save(path)


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` unless ``dst`` exists."""
    if not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def progress(items: Iterable[T], desc: str, total: Optional[int] = None) -> Iterator[T]:
    """tqdm progress bar over ``items``."""
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, total=total, dynamic_ncols=True))


def vocab_id_to_index(key: str, offset: int = 0) -> Dict[int, int]:
    """{vocabulary line id + offset: class index} of a shipped vocabulary (invalid ids skipped)."""
    return {i + offset: k for k, (i, _) in enumerate(load_vocabulary_entries(key))}


def id_lut(mapping: Mapping[int, int], size: int, fill: int, dtype=np.uint8) -> np.ndarray:
    """Lookup table of ``size`` entries: lut[src] = mapping[src], ``fill`` elsewhere."""
    lut = np.full(size, fill, dtype=dtype)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def apply_lut(label: np.ndarray, lut: np.ndarray, path: str) -> np.ndarray:
    """``lut[label]``; values beyond the table raise one ValueError line naming the file."""
    if label.size and int(label.max()) >= len(lut):
        raise ValueError(
            f"Annotation '{path}' has label value {int(label.max())}, outside the expected range 0..{len(lut) - 1}; "
            "is it the right annotation type for this script?"
        )
    return lut[label]


def read_split_list(path: str) -> List[str]:
    """Image ids of a VOC-style split file (one id per line)."""
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def read_pascal_context_label(labels_dir: str, image_id: str) -> np.ndarray:
    """459-class Pascal-Context label map (0 = unlabeled, 1..459) of one image.

    Accepts the official ``trainval/<id>.mat`` files (key ``LabelMap``) or pre-extracted ``<id>.png`` label maps
    (16-bit or 8-bit) in the same label space.
    """
    mat, png = os.path.join(labels_dir, f"{image_id}.mat"), os.path.join(
        labels_dir, f"{image_id}.png"
    )
    if os.path.exists(mat):
        from scipy.io import loadmat

        try:
            return np.asarray(loadmat(mat)["LabelMap"], dtype=np.int64)
        except (ValueError, KeyError, OSError, TypeError) as e:
            raise ValueError(
                f"Cannot read Pascal-Context label map '{mat}' ({type(e).__name__}: {e}); "
                "re-extract trainval.tar.gz"
            ) from None
    if os.path.exists(png):
        return read_label(png).astype(np.int64)
    raise FileNotFoundError(
        f"Pascal-Context label map for image '{image_id}' not found ('{mat}' or '{png}'); extract trainval.tar.gz "
        "(or pass --labels with pre-extracted label maps)"
    )


def check_ids(ids: Sequence[str], what: str, path: str) -> Sequence[str]:
    """Raise when a split list is empty."""
    if not ids:
        raise ValueError(f"{what} '{path}' lists no image")
    return ids


# (split list name, output folder) of the VOC-style and ADE20K train/val splits.
TRAIN_VAL_FOLDERS: Tuple[Tuple[str, str], ...] = (("train", "training"), ("val", "validation"))


def voc_split_ids(voc: str, list_dir: str, name: str, what: str, hint: str) -> List[str]:
    """Image ids of the VOC-style split list ``<voc>/ImageSets/<list_dir>/<name>.txt``.

    Args:
        voc: the VOC year folder, e.g. ``<root>/VOCdevkit/VOC2012``.
        list_dir: "Segmentation" (VOC2012) or "Main" (VOC2010 / Pascal-Context).
        name: split list name ("train", "val").
        what, hint: dataset name and download hint for the one-line errors.

    Returns:
        The ids; a missing list raises ``FileNotFoundError``, an empty one ``ValueError``.
    """
    list_file = require(
        os.path.join(voc, "ImageSets", list_dir, f"{name}.txt"), f"{what} split list", hint
    )
    return list(check_ids(read_split_list(list_file), f"{what} split list", list_file))


def copy_voc_images(
    voc: str, ids: Iterable[str], out_root: str, split: str, what: str, hint: str
) -> Iterator[str]:
    """Yield each image id after copying ``<voc>/JPEGImages/<id>.jpg`` to ``<out_root>/images/<split>/`` (if missing).

    Lazy: an image is copied when its id is consumed, so progress and errors follow the conversion loop.
    """
    for image_id in ids:
        copy_file(
            require(os.path.join(voc, "JPEGImages", image_id + ".jpg"), f"{what} image", hint),
            os.path.join(out_root, "images", split, image_id + ".jpg"),
        )
        yield image_id


PASCAL_CONTEXT_HINT = (
    "download VOCtrainval_03-May-2010.tar and the Pascal-Context trainval.tar.gz (datasets/README.md); "
    "extract VOCdevkit/ under the root and trainval/ into VOCdevkit/VOC2010/"
)
# Command-line option of the Pascal-Context scripts (``prepare(root, labels_dir)``).
PASCAL_CONTEXT_OPTIONS: Tuple[Option, ...] = (
    (
        "--labels",
        {
            "dest": "labels_dir",
            "metavar": "LABELS",
            "default": None,
            "help": "folder of <id>.mat / <id>.png 459-class label maps",
        },
    ),
)


def prepare_pascal_context(
    root: str, labels_dir: Optional[str], lut: np.ndarray, annotations: str, ext: str, desc: str
) -> int:
    """Copy the VOC2010 train/val images and write the Pascal-Context label maps mapped through ``lut``.

    Args:
        root: dataset root; reads ``VOCdevkit/VOC2010`` and writes ``pascal_ctx_d2/images/{training,validation}``.
        labels_dir: folder of the 459-class label maps (default ``VOCdevkit/VOC2010/trainval``).
        lut: table over the 459-class labels (0 unlabeled, 1..459) -> output label.
        annotations: output folder under ``pascal_ctx_d2``, e.g. "annotations_ctx59".
        ext: output extension, ".png" or ".tif".
        desc: progress label, e.g. "PC-59".

    Returns:
        The number of label files written.
    """
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    labels_dir = require(
        labels_dir or os.path.join(voc, "trainval"),
        "Pascal-Context label maps",
        PASCAL_CONTEXT_HINT,
    )
    out_root = os.path.join(root, "pascal_ctx_d2")

    def convert(image_id: str) -> np.ndarray:
        label = read_pascal_context_label(labels_dir, image_id)
        return apply_lut(label, lut, os.path.join(labels_dir, image_id))

    written = 0
    for name, split in TRAIN_VAL_FOLDERS:
        ids = voc_split_ids(voc, "Main", name, "VOC2010", PASCAL_CONTEXT_HINT)
        pairs = (
            (image_id, os.path.join(out_root, annotations, split, image_id + ext))
            for image_id in copy_voc_images(
                voc, ids, out_root, split, "VOC2010", PASCAL_CONTEXT_HINT
            )
        )
        written += convert_label_maps(pairs, convert, f"{desc} {split}", total=len(ids))
    return written


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) panoptic segment ids -> (H, W, 3) uint8 COCO panoptic PNG colours (id = R + 256 G + 256^2 B)."""
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) COCO panoptic PNG colours -> (H, W) int64 segment ids R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


def write_coco_json(
    path: str, images: List[Dict], annotations: List[Dict], categories: List[Dict]
) -> None:
    """Write a COCO-format JSON {"images", "annotations", "categories"}."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


ADE_HINT = "download ADEChallengeData2016.zip and annotations_instance.tar (datasets/README.md)"


def path_next_to(file: str, name: str) -> str:
    """Absolute path of ``name`` in the folder of ``file`` (a script's ``__file__``)."""
    return os.path.join(os.path.dirname(os.path.abspath(file)), name)


def ade_catid_options(default: str) -> Tuple[Option, ...]:
    """The ``--catid-mapping`` option of the ADE20K instance/panoptic scripts (``prepare(root, catid_mapping)``)."""
    return (("--catid-mapping", {"default": default, "help": "ade20k_instance_catid_mapping.txt"}),)


def read_ade_catid_mapping(path: str) -> Dict[int, int]:
    """ADE20K ``ade20k_instance_catid_mapping.txt``: {instance class (1..100): 0-based ADE-150 class}.

    The file has a header line, then "instance_id  sceneparse150_id  full_ade20k_id" rows (an instance id may
    appear on several rows with the same ADE-150 id).
    """
    require(
        path,
        "ADE20K instance category mapping",
        "pass --catid-mapping (datasets/ade20k_instance_catid_mapping.txt)",
    )
    mapping: Dict[int, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f):
            parts = line.split()
            if lineno == 0 or not parts:
                continue
            if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
                raise ValueError(
                    f"{path}:{lineno + 1}: expected 'instance_id sceneparse150_id ...', got {line!r}"
                )
            mapping[int(parts[0])] = int(parts[1]) - 1
    return mapping


def ade_instances(ins_rgb: np.ndarray, mapping: Mapping[int, int], path: str) -> List[tuple]:
    """Instances of an ADE ``annotations_instance`` PNG (R = instance class 1..100, G = instance id, 0 = none).

    Returns:
        [(0-based ADE-150 class, (H, W) bool mask)] in instance-id order.
    """
    classes, ids = ins_rgb[:, :, 0].astype(np.int64), ins_rgb[:, :, 1]
    out = []
    for inst in np.unique(ids):
        if inst == 0:
            continue
        mask = ids == inst
        cats = np.unique(classes[mask])
        if len(cats) != 1 or int(cats[0]) not in mapping:
            raise ValueError(
                f"Instance {inst} of '{path}' has instance classes {cats.tolist()}; expected one class "
                "listed in ade20k_instance_catid_mapping.txt"
            )
        out.append((mapping[int(cats[0])], mask))
    return out


def ade_image_entry(stem: str, shape: Sequence[int]) -> Dict[str, Any]:
    """COCO "images" entry of the ADE20K image ``<stem>.jpg`` (string id ``stem``) of shape (H, W, ...)."""
    return {"id": stem, "file_name": stem + ".jpg", "height": int(shape[0]), "width": int(shape[1])}


def ade_split_images(
    ade: str, split: str, desc: str, annotations: Sequence[Tuple[str, str]]
) -> Iterator[Tuple[str, List[str]]]:
    """ADE20K images of one split with their annotation PNGs, with progress.

    Args:
        ade: the ``ADEChallengeData2016`` folder.
        split: "training" or "validation".
        desc: progress label.
        annotations: (folder, what) of each annotation kind, e.g. ("annotations_instance", "ADE20K instance
            annotation"); ``<ade>/<folder>/<split>`` and every image's ``<stem>.png`` in it must exist.

    Returns:
        (stem, [annotation path per kind]) for each ``images/<split>/*.jpg``, in file-name order.
    """
    image_dir = require(os.path.join(ade, "images", split), "ADE20K images", ADE_HINT)
    dirs = [
        (require(os.path.join(ade, folder, split), what + "s", ADE_HINT), what)
        for folder, what in annotations
    ]
    for path in progress(sorted(glob.glob(os.path.join(image_dir, "*.jpg"))), desc):
        stem = os.path.splitext(os.path.basename(path))[0]
        yield stem, [require(os.path.join(d, stem + ".png"), what, ADE_HINT) for d, what in dirs]


def mask_bbox(mask: np.ndarray) -> List[int]:
    """[x, y, w, h] box of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]
