"""Dataset-scale inference: one model and vocabulary over many images, with standard result files.

    python tools/infer.py --input IN [IN ...] --output DIR [--weights NAME|PATH] [--config-file CFG]
        [--vocabulary "cat;dog,puppy;sky" | FILE] [--stuff "sky"] [--task semantic|panoptic|instance] [--resume]
        [--num-workers 2] [--num-processes N [--num-machines M --machine-rank R --dist-url URL]]
        [--save-activation-maps] [--quiet]

Inputs (any mix): a folder (its image files, sub-folders included, sorted), a glob, an image file, a text file
(``.txt``: one image path per line, relative to the file's folder; blank lines and ``#`` comments skipped) or a COCO
image JSON (``.json`` with an ``images`` list of ``{"id", "file_name"}``; files relative to ``--image-root``,
default the JSON's folder; its image ids are kept).

Per image (``<key>`` = the path under its input folder, ``/`` written as ``__``, else the file stem; repeated
keys get ``_2``, ``_3``...), each file written atomically:

    labels/<key>.png        class id per pixel (uint8; uint16 above 255 classes; void 255 / 65535)
    panoptic/<key>.png      COCO panoptic PNG (segment id = R + 256 G + 256^2 B, 0 = no segment)
    segments/<key>.json     the image's segments: class name, synonyms, score, area, box, COCO RLE (with
                            --match-synonyms also the synonym the segment matches best); written last, so its
                            presence marks the image as done
    failed/<key>.json       the error of an image that could not be read or segmented (removed once it succeeds)
    activation_maps/<key>.png   with --save-activation-maps: the adapter's activation maps per segment

For the run (rewritten at the end of every run from the per-image files, so they cover resumed runs too):

    run.json                the settings (model, config, task, vocabulary); --resume checks them
    manifest.json           done / failed / pending images
    images.json             COCO image list + categories (the ground-truth side ``pycocotools.COCO`` needs)
    instances_results.json  COCO instance results (``COCO("images.json").loadRes(...)`` reads it)
    panoptic.json           COCO panoptic JSON of ``panoptic/`` (panopticapi / detectron2 format)

Category ids in the COCO files are class index + 1; ``--stuff`` names the classes without instances (they are
merged per class in panoptic output and flagged ``isthing`` 0; COCO panoptic evaluation needs both kinds). A killed run continues with ``--resume``: images with a
segments file are skipped, the others (failed ones included) are run again. Bad images are named in the log and
in ``failed/``; the exit code is 0 when every image is done, 3 when some failed, 1 on bad input.

Speed: images are decoded and resized in ``--num-workers`` DataLoader worker processes while the model runs; the
vocabulary's text embeddings are built once. ``--num-processes`` (and ``--num-machines``) start detectron2's
``launch``: each process takes every N-th image of the sorted list, so the files equal those of a one-process run;
with several machines the output folder must be shared.
"""

import argparse
import glob
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mask_adapter.api.images import DEFAULT_MAX_SIDE, IMAGE_EXTENSIONS, ImageReadError, read_image_rgb
from mask_adapter.api.predictor import TASKS
from mask_adapter.utils.atomic import atomic_save_image, atomic_write_json, ensure_output_dir
from mask_adapter.utils.cli import add_debug_flag, add_memory_flag, apply_memory_flag, run_cli
from mask_adapter.utils.memory import keep_freed_memory

__all__ = [
    "EXIT_SOME_FAILED",
    "InferItem",
    "collect_inputs",
    "command_line",
    "finalize_run",
    "main",
    "panoptic_from_segments",
    "parse_args",
    "run_inference",
]

logger = logging.getLogger("mask_adapter.infer")

EXIT_SOME_FAILED = 3  # some images could not be read or segmented (they are listed in manifest.json)
_SUBDIRS = ("labels", "panoptic", "segments", "failed")


# ---------------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class InferItem:
    """One input image: its file, its output stem and its COCO image id."""

    path: str
    key: str
    image_id: int


def _read_text_list(path: str) -> list[tuple[str, str | None]]:
    base = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append((os.path.join(base, os.path.expanduser(line)), None))
    return out


def _read_coco_images(path: str, image_root: str | None) -> list[tuple[str, int]]:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except ValueError as e:
        raise ValueError(f"cannot parse {path} as JSON ({e}); give a COCO image JSON with an 'images' list") from None
    images = info.get("images") if isinstance(info, dict) else None
    if not isinstance(images, list):
        raise ValueError(f"{path} has no 'images' list; give a COCO JSON with images of {{'id', 'file_name'}}")
    root = image_root or os.path.dirname(os.path.abspath(path))
    out = []
    for k, im in enumerate(images):
        if not isinstance(im, dict) or "file_name" not in im or "id" not in im:
            raise ValueError(f"{path}: images[{k}] needs 'id' and 'file_name'; fix the JSON")
        out.append((os.path.join(root, im["file_name"]), int(im["id"])))
    return out


def _folder_images(folder: str) -> list[str]:
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def collect_inputs(inputs: Sequence[str], image_root: str | None = None) -> list[InferItem]:
    """The run's images, in a fixed order, with unique output keys and COCO image ids.

    Args:
        inputs: folders, globs, image files, ``.txt`` lists or COCO image ``.json`` files (see the module doc).
        image_root: folder of the files named in COCO JSONs (default: each JSON's folder).

    Returns:
        The items; the same inputs always give the same list (it is what processes shard).

    Raises:
        FileNotFoundError: an input matches nothing, or no image at all.
    """
    entries: list[tuple[str, str, int | None]] = []  # (path, key base, COCO id)
    for spec in inputs:
        spec = os.path.expanduser(spec)
        if os.path.isdir(spec):
            found = _folder_images(spec)
            if not found:
                raise FileNotFoundError(f"input folder {spec} has no image files ({', '.join(IMAGE_EXTENSIONS)})")
            for p in found:
                rel = os.path.splitext(os.path.relpath(p, spec))[0]
                entries.append((p, rel.replace(os.sep, "__"), None))
        elif os.path.isfile(spec) and spec.lower().endswith(".txt"):
            listed = _read_text_list(spec)
            if not listed:
                raise FileNotFoundError(f"input list {spec} names no image; write one image path per line")
            entries.extend((p, Path(p).stem, None) for p, _ in listed)
        elif os.path.isfile(spec) and spec.lower().endswith(".json"):
            entries.extend((p, Path(p).stem, i) for p, i in _read_coco_images(spec, image_root))
        elif os.path.isfile(spec):
            entries.append((spec, Path(spec).stem, None))
        else:
            found = sorted(glob.glob(spec, recursive=True))
            if not found:
                raise FileNotFoundError(f"input {spec}: no such file, folder or matching pattern; check the path")
            entries.extend((p, Path(p).stem, None) for p in found if os.path.isfile(p))
    seen_paths: set[str] = set()
    unique = []
    for path, base, coco_id in entries:
        path = os.path.abspath(path)
        if path not in seen_paths:
            seen_paths.add(path)
            unique.append((path, base, coco_id))
    if not unique:
        raise FileNotFoundError(f"no image found in {list(inputs)}; give folders, globs, lists or COCO JSONs")
    used_ids = {i for _, _, i in unique if i is not None}
    if len(used_ids) != sum(1 for _, _, i in unique if i is not None):
        raise ValueError("the COCO image JSONs repeat an image id; give each image one id")
    taken: set[str] = set()
    items, next_id = [], 1
    for path, base, coco_id in unique:
        base = base or "image"
        key, n = base, 1
        while key in taken:
            n += 1
            key = f"{base}_{n}"
        taken.add(key)
        if coco_id is None:
            while next_id in used_ids:
                next_id += 1
            coco_id = next_id
            used_ids.add(coco_id)
        items.append(InferItem(path=path, key=key, image_id=coco_id))
    return items


# ---------------------------------------------------------------------------------------------------- decoding
class _Images(torch.utils.data.Dataset):
    """Decodes and resizes images (in DataLoader workers): (index, RGB, resized (3, h, w) tensor, error)."""

    def __init__(self, items: Sequence[InferItem], resize: Any, max_side: int) -> None:
        self.items, self.resize, self.max_side = list(items), resize, max_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, torch.Tensor | None, str | None]:
        path = self.items[i].path
        try:
            rgb = read_image_rgb(path, max_side=self.max_side)
            if min(rgb.shape[:2]) == 0:
                raise ImageReadError(f"image {path} has no pixels")
            resized = self.resize(rgb) if self.resize is not None else rgb
            tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
            return i, rgb, tensor, None
        except (ImageReadError, OSError) as e:
            return i, None, None, str(e) or type(e).__name__


def _first(batch: list[Any]) -> Any:
    return batch[0]


# ---------------------------------------------------------------------------------------------------- outputs
def panoptic_from_segments(
    segments: Sequence[dict[str, Any]], size: tuple[int, int], thing_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, list]:
    """A COCO panoptic id map and segments_info from segments (COCO RLE masks, first = highest priority).

    Overlapping masks (instances) are resolved in favour of the earlier segment; a segment left without pixels is
    dropped. A segment's ``isthing`` is its own flag (panoptic output), else whether its class is in ``thing_ids``
    (None: every class). Returns ((H, W, 3) uint8 PNG colours, segments_info with id, category_id (class + 1),
    area, bbox, iscrowd 0, isthing).
    """
    things = None if thing_ids is None else set(thing_ids)
    from pycocotools import mask as mask_util

    ids = np.zeros(size, dtype=np.int64)
    for seg in reversed(segments):
        rle = dict(seg["segmentation"], counts=seg["segmentation"]["counts"].encode("ascii"))
        ids[mask_util.decode(rle).astype(bool)] = seg["id"]
    infos = []
    for seg in segments:
        mask = ids == seg["id"]
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        infos.append(
            {
                "id": int(seg["id"]),
                "category_id": int(seg["category_id"]) + 1,
                "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                "iscrowd": 0,
                "isthing": int(
                    bool(seg["isthing"]) if "isthing" in seg else (things is None or seg["category_id"] in things)
                ),
            }
        )
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)
    return rgb, infos


def _round_scores(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for s in segments:
        if s.get("score") is not None:
            s["score"] = round(float(s["score"]), 6)
    return segments


def _write_image(
    out: Path, item: InferItem, result: Any, maps_figure: np.ndarray | None, thing_ids: Sequence[int]
) -> None:
    """The image's files, each atomic; the segments JSON last (the done marker)."""
    h, w = result.label_map.shape
    segments = _round_scores([dict(s) for s in result.segments])
    pan_rgb, pan_info = panoptic_from_segments(segments, (h, w), thing_ids)
    atomic_save_image(str(out / "labels" / f"{item.key}.png"), Image.fromarray(result.label_map))
    atomic_save_image(str(out / "panoptic" / f"{item.key}.png"), Image.fromarray(pan_rgb))
    if maps_figure is not None:
        atomic_save_image(str(out / "activation_maps" / f"{item.key}.png"), Image.fromarray(maps_figure))
    record = {
        "file_name": item.path,
        "image_id": item.image_id,
        "height": int(h),
        "width": int(w),
        **{k: v for k, v in result.to_json().items() if k not in ("segments",)},
        "segments": segments,
        "panoptic_segments": pan_info,
    }
    atomic_write_json(str(out / "segments" / f"{item.key}.json"), record, indent=1, ensure_ascii=False)
    failed = out / "failed" / f"{item.key}.json"
    if failed.exists():
        failed.unlink()


def _write_failure(out: Path, item: InferItem, error: str) -> None:
    logger.error("image %s failed: %s (skipped)", item.path, error)
    atomic_write_json(str(out / "failed" / f"{item.key}.json"), {"file_name": item.path, "error": error}, indent=1)


# ---------------------------------------------------------------------------------------------------- the run
def _run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs the same: model, config, overrides, task, vocabulary (as given, and the file's content
    when it names a file), stuff classes, size limit."""
    vocabulary = args.vocabulary
    if vocabulary and os.path.isfile(vocabulary):
        with open(vocabulary, encoding="utf-8") as f:
            vocabulary = f"{vocabulary}\n{f.read()}"
    return {
        "weights": args.weights,
        "config_file": args.config_file,
        "opts": list(args.opts),
        "task": args.task,
        "vocabulary": vocabulary,
        "stuff": sorted(_stuff_names(args)),
        "max_side": args.max_side,
        "match_synonyms": bool(getattr(args, "match_synonyms", False)),
    }


def _check_output(out: Path, settings: dict[str, Any], resume: bool) -> None:
    """A fresh folder, or with --resume the folder of a run with the same settings."""
    run_file = out / "run.json"
    if run_file.exists():
        if not resume:
            raise ValueError(
                f"output folder {out} holds results of an earlier run; pass --resume to continue it or choose "
                "another folder"
            )
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous != settings:
            changed = sorted(k for k in settings if not previous or previous.get(k) != settings[k])
            raise ValueError(
                f"--resume: the run in {out} used other settings ({', '.join(changed) or 'run.json unreadable'}); "
                "resume with the same options or choose another folder"
            )


def _segment(segmenter: Any, rgb: np.ndarray, tensor: torch.Tensor, names: Sequence[str], task: str, stem: str):
    """The Segmenter's result for an image already decoded and resized (what ``segmenter(rgb)`` computes)."""
    from mask_adapter.api.predictor import label_map, void_label
    from mask_adapter.api.segmenter import SegmentationResult, _segments

    h, w = rgb.shape[:2]
    with torch.no_grad():
        outputs = segmenter.predictor.model([{"image": tensor, "height": h, "width": w}])[0]
    thr = segmenter.confidence_threshold
    labels = label_map(outputs, task, len(names), thr)
    return SegmentationResult(
        image=rgb,
        task=task,
        class_names=tuple(names),
        label_map=labels,
        segments=_segments(outputs, task, labels, names, thr),
        void_label=void_label(len(names)),
        name=stem,
        _outputs=outputs,
        _metadata=segmenter.predictor.metadata,
        _confidence_threshold=thr,
    )


def _build_segmenter(args: argparse.Namespace) -> Any:
    from mask_adapter.api.segmenter import Segmenter

    return Segmenter.from_pretrained(
        args.weights,
        config_file=args.config_file,
        device=args.device,
        tasks=(args.task,),
        opts=args.opts,
        trust_pickle=args.trust_pickle,
        max_side=args.max_side,
    )


def _stuff_names(args: argparse.Namespace) -> set[str]:
    return {n.strip() for n in (args.stuff or "").replace("|", ";").split(";") if n.strip()}


def _vocabulary(args: argparse.Namespace, segmenter: Any) -> tuple[list[str], list[int]]:
    """Class strings and thing ids: --vocabulary (every class a thing unless named in --stuff), else the model's
    default vocabulary."""
    from mask_adapter.api.vocabulary import user_classes
    from mask_adapter.data.vocabulary import split_synonyms

    ns = argparse.Namespace(vocabulary=args.vocabulary, vocabulary_file=None)
    names = user_classes(ns)
    if not names:
        names, things = segmenter._vocabulary(None)
    else:
        things = list(range(len(names)))
    stuff = _stuff_names(args)
    first = [split_synonyms(c)[0].strip() for c in names]
    _check_stuff(stuff, first)
    return list(names), [k for k in things if first[k] not in stuff]


def _check_stuff(stuff: set[str], first_names: Sequence[str]) -> None:
    unknown = sorted(stuff - set(first_names))
    if unknown:
        raise ValueError(f"--stuff names {', '.join(unknown)}, not classes of the vocabulary; use their first names")


def _loader(items: Sequence[InferItem], resize: Any, args: argparse.Namespace) -> Iterator[Any]:
    dataset = _Images(items, resize, args.max_side)
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_size=1,
            shuffle=False,
            num_workers=args.num_workers,
            collate_fn=_first,
            prefetch_factor=2 if args.num_workers > 0 else None,
        )
    )


def run_inference(args: argparse.Namespace, segmenter: Any = None) -> None:
    """One process of a run: its share of the images (rank r of n takes items r, r + n, ...); then rank 0 writes
    the run-level files.

    Args:
        args: the parsed command line.
        segmenter: a ``Segmenter`` built with the same options (default: built here from ``args``).
    """
    from detectron2.utils import comm

    from mask_adapter.utils.progress import progress, set_quiet

    if comm.get_world_size() > 1:  # a process started by launch: its own logging, quiet and allocator setting
        if not args.release_freed_memory:
            keep_freed_memory()
        from detectron2.utils.logger import setup_logger

        setup_logger(name="mask_adapter", distributed_rank=comm.get_rank())
        set_quiet(args.quiet)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    items = collect_inputs(args.input, args.image_root)
    segmenter = segmenter if segmenter is not None else _build_segmenter(args)
    names, things = _vocabulary(args, segmenter)
    segmenter.predictor.set_vocabulary(names, things)  # text embeddings: once for the run
    rank, world = comm.get_rank(), comm.get_world_size()
    if comm.is_main_process():
        for sub in _SUBDIRS + (("activation_maps",) if args.save_activation_maps else ()):
            ensure_output_dir(str(out / sub))
        atomic_write_json(str(out / "run.json"), _run_settings(args), indent=1)
    comm.synchronize()
    mine = items[rank::world]
    todo = [it for it in mine if not (out / "segments" / f"{it.key}.json").exists()]
    if rank == 0:
        logger.info(
            "%d images (%d already done), %d processes, task %s, %d classes",
            len(items),
            len(items) - sum(1 for it in items if not (out / "segments" / f"{it.key}.json").exists()),
            world,
            args.task,
            len(names),
        )
    resize = segmenter.predictor.aug if segmenter.cfg.INPUT.MIN_SIZE_TEST > 0 else None
    batches = _loader(todo, _Resize(resize) if resize is not None else None, args)
    quiet = None if comm.is_main_process() else True
    for i, rgb, tensor, error in progress(batches, "infer", total=len(todo), unit="image", quiet=quiet):
        item = todo[i]
        if error is not None:
            _write_failure(out, item, error)
            continue
        try:
            result = _segment(segmenter, rgb, tensor, names, args.task, item.key)
            if args.match_synonyms:
                _add_synonyms(segmenter, rgb, result.segments)
            figure = _activation_figure(segmenter, rgb) if args.save_activation_maps else None
        except (ValueError, RuntimeError) as e:
            _write_failure(out, item, f"{type(e).__name__}: {e}")
            continue
        _write_image(out, item, result, figure, things)
    comm.synchronize()
    if comm.is_main_process():
        finalize_run(out, items, names, args.task, things)


def _add_synonyms(segmenter: Any, rgb: np.ndarray, segments: list[dict[str, Any]]) -> None:
    """Set each segment's ``synonym``: the name of its class its mask matches best (see analysis.synonyms)."""
    from pycocotools import mask as mask_util

    from mask_adapter.analysis.synonyms import winning_synonyms

    if not segments:
        return
    masks = np.stack(
        [
            mask_util.decode(dict(s["segmentation"], counts=s["segmentation"]["counts"].encode("ascii"))).astype(bool)
            for s in segments
        ]
    )
    predictor = segmenter.predictor
    resize = _Resize(predictor.aug) if segmenter.cfg.INPUT.MIN_SIZE_TEST > 0 else None
    won = winning_synonyms(predictor.model, rgb, masks, [s["category_id"] for s in segments], resize=resize)
    for s, synonym in zip(segments, won):
        s["synonym"] = synonym


class _Resize:
    """Picklable callable: the model's test-time resize (detectron2 ``ResizeShortestEdge``) of an RGB array."""

    def __init__(self, aug: Any) -> None:
        self.aug = aug

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.aug.get_transform(rgb).apply_image(rgb)


def _activation_figure(segmenter: Any, rgb: np.ndarray) -> np.ndarray:
    from mask_adapter.analysis.activation_maps import compute_activation_maps, render_activation_figure

    predictor = segmenter.predictor
    resize = _Resize(predictor.aug) if segmenter.cfg.INPUT.MIN_SIZE_TEST > 0 else None
    return render_activation_figure(compute_activation_maps(predictor.model, rgb, resize=resize))


def finalize_run(
    out: Path, items: Sequence[InferItem], names: Sequence[str], task: str, thing_ids: Sequence[int]
) -> dict[str, Any]:
    """Write manifest.json, images.json, instances_results.json and panoptic.json from the per-image files.

    Returns:
        The manifest: {"images", "done", "failed" [{"file_name", "error"}], "pending"}.
    """
    from mask_adapter.data.vocabulary import split_synonyms

    categories = [
        {"id": k + 1, "name": split_synonyms(c)[0].strip(), "synonyms": [s.strip() for s in split_synonyms(c)]}
        for k, c in enumerate(names)
    ]
    images, results, annotations, done, failed, pending = [], [], [], [], [], []
    for item in items:
        seg_file = out / "segments" / f"{item.key}.json"
        if seg_file.exists():
            record = json.loads(seg_file.read_text(encoding="utf-8"))
            done.append(item.path)
            images.append(
                {"id": item.image_id, "file_name": item.path, "height": record["height"], "width": record["width"]}
            )
            for s in record["segments"]:
                results.append(
                    {
                        "image_id": item.image_id,
                        "category_id": s["category_id"] + 1,
                        "segmentation": s["segmentation"],
                        "bbox": s["bbox"],
                        "score": 1.0 if s.get("score") is None else s["score"],
                    }
                )
            annotations.append(
                {
                    "image_id": item.image_id,
                    "file_name": f"{item.key}.png",
                    "segments_info": record["panoptic_segments"],
                }
            )
        elif (out / "failed" / f"{item.key}.json").exists():
            failed.append(json.loads((out / "failed" / f"{item.key}.json").read_text(encoding="utf-8")))
        else:
            pending.append(item.path)
    things = set(thing_ids)
    pan_categories = [dict(c, isthing=int(c["id"] - 1 in things), supercategory="") for c in categories]
    atomic_write_json(str(out / "images.json"), {"images": images, "categories": categories, "annotations": []})
    atomic_write_json(str(out / "instances_results.json"), results)
    atomic_write_json(
        str(out / "panoptic.json"), {"images": images, "annotations": annotations, "categories": pan_categories}
    )
    manifest = {"task": task, "images": len(items), "done": done, "failed": failed, "pending": pending}
    atomic_write_json(str(out / "manifest.json"), manifest, indent=1)
    logger.info(
        "%d of %d images done, %d failed%s; results in %s",
        len(done),
        len(items),
        len(failed),
        f", {len(pending)} pending" if pending else "",
        out,
    )
    for f in failed:
        logger.warning("failed: %s: %s", f["file_name"], f["error"])
    return manifest


# ---------------------------------------------------------------------------------------------------- command
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(
        description="Segment many images with one model and vocabulary; per-image files and COCO result files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", nargs="+", required=True, help="folders, globs, image files, .txt lists, COCO JSONs")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--weights", default="tiny", help="released model name, checkpoint file, or 'tiny' (default)")
    p.add_argument("--config-file", default=None, help="model config (needed for a checkpoint file)")
    p.add_argument("--vocabulary", default=None, help="'cat;dog,puppy;sky' or a file of 'id:name,...' lines")
    p.add_argument(
        "--stuff",
        default=None,
        help="classes without instances, ';'-separated first names (default: every class is a thing)",
    )
    p.add_argument("--task", default="semantic", choices=TASKS, help="which output to write (default semantic)")
    p.add_argument("--resume", action="store_true", help="continue a run in --output (skips images already done)")
    p.add_argument("--image-root", default=None, help="folder of the files named in COCO JSON inputs")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers decoding images (default 2)")
    p.add_argument("--num-processes", type=int, default=1, help="processes per machine (detectron2 launch)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto", help="rendezvous of the processes (auto: a free local port)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the config's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch's default)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="scale down longer sides above this")
    p.add_argument("--save-activation-maps", action="store_true", help="also write activation_maps/<key>.png")
    p.add_argument(
        "--match-synonyms",
        action="store_true",
        help="add to each segment the synonym of its class its mask matches best (one more model pass per image)",
    )
    p.add_argument("--trust-pickle", action="store_true", help="allow checkpoints with pickled objects (runs code)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    add_debug_flag(p)
    add_memory_flag(p)
    args = p.parse_args(argv)
    if args.num_workers < 0 or args.num_processes < 1 or args.num_machines < 1:
        raise ValueError("--num-workers must be >= 0, --num-processes and --num-machines >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) an inference run; returns 0 when every image is done, ``EXIT_SOME_FAILED`` otherwise."""
    from detectron2.engine import launch

    from mask_adapter.utils.progress import quiet_progress

    args = parse_args(argv)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is an existing file; give a folder (created if missing)")
    items = collect_inputs(args.input, args.image_root)  # bad inputs fail here, before any model is built
    ensure_output_dir(str(out))
    _check_output(out, _run_settings(args), args.resume)  # before any process starts
    if args.vocabulary and args.stuff:  # also before: a bad --stuff must not stop launched processes one by one
        from mask_adapter.api.vocabulary import user_classes
        from mask_adapter.data.vocabulary import split_synonyms

        names = user_classes(argparse.Namespace(vocabulary=args.vocabulary, vocabulary_file=None))
        _check_stuff(_stuff_names(args), [split_synonyms(c)[0].strip() for c in names])
    with quiet_progress(args.quiet):
        if args.num_processes * args.num_machines > 1:
            launch(
                run_inference,
                args.num_processes,
                num_machines=args.num_machines,
                machine_rank=args.machine_rank,
                dist_url=args.dist_url,
                args=(args,),
            )
        else:
            run_inference(args)
    if args.machine_rank != 0:
        return 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if manifest["failed"] or manifest["pending"] or len(manifest["done"]) != len(items):
        return EXIT_SOME_FAILED
    return 0


def command_line(argv: Sequence[str] | None = None) -> int:
    """The program: logging to the console, bad input ends with one ``error:`` line; returns the exit code."""
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    apply_memory_flag(argv)
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(command_line())
