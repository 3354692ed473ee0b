"""``tools/benchmark.py infer``: images per second of the batch command against a plain loop over the predictor.

On the same images (the bundled photo plus generated ones) and the same model, one after the other in one run:

- ``plain loop``: ``Segmenter`` called on each file in turn (decode, resize, model, label map and segments; nothing
  written);
- ``infer, W workers``: :func:`mask_adapter.apps.infer.run_inference` with W DataLoader workers decoding and
  resizing while the model runs, writing every per-image and run-level file.

The model is built and its vocabulary encoded once, before any timing; each row times the image loop only (plus,
for the batch command, its run-level files): the median of ``--repeats`` rounds, the modes interleaved in each.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["add_infer_parser", "run_infer_benchmark"]

VOCABULARY = "cat;dog,puppy;person;table;sky;grass"


def add_infer_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``infer`` mode to the subparsers of ``tools/benchmark.py``."""
    p = sub.add_parser("infer", help="batch inference (tools/infer.py): images/s with 1 and 2 workers vs a plain loop")
    p.add_argument("--weights", default="tiny", help="released model name, checkpoint, or tiny (default)")
    p.add_argument("--config-file", default=None)
    p.add_argument("--images", type=int, default=20, help="generated images besides the bundled photo")
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="generated image size")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DataLoader worker counts to time")
    p.add_argument("--task", default="semantic", choices=("semantic", "panoptic", "instance"))
    p.add_argument("--repeats", type=int, default=2, help="rounds over all modes (interleaved); the median is shown")
    p.add_argument("--quick", action="store_true", help="4 generated images, workers 1, one round")
    return p


def _make_images(folder: Path, n: int, size: tuple[int, int]) -> list[str]:
    from mask_adapter.api.images import bundled_image

    Image.fromarray(bundled_image()).save(folder / "voc_example.jpg", quality=95)
    rng = np.random.RandomState(0)
    h, w = size
    for i in range(n):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = rng.randint(0, 256, 3)
        y, x = rng.randint(0, h // 2), rng.randint(0, w // 2)
        img[y : y + h // 2, x : x + w // 2] = rng.randint(0, 256, 3)
        img = np.clip(img.astype(np.int16) + rng.randint(-20, 21, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"gen_{i:03d}.jpg", quality=90)
    return sorted(str(p) for p in folder.iterdir())


def run_infer_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time the plain loop and the batch command; prints a table and returns its rows."""
    from tabulate import tabulate

    from mask_adapter.api.segmenter import Segmenter
    from mask_adapter.apps.infer import parse_args as infer_args
    from mask_adapter.apps.infer import run_inference
    from mask_adapter.utils.progress import quiet_progress

    n = 4 if args.quick else args.images
    workers = [1] if args.quick else list(args.workers)
    repeats = 1 if args.quick else max(1, args.repeats)
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="infer_bench_") as tmp, quiet_progress(True):
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = _make_images(folder, n, tuple(args.size))
        seg = Segmenter.from_pretrained(args.weights, config_file=args.config_file, tasks=(args.task,))
        seg(paths[0], vocabulary=VOCABULARY, task=args.task)  # warm-up: text embeddings, first-call costs
        for r in range(repeats):  # modes interleaved, so a change in machine load hits all of them
            start = time.perf_counter()
            for p in paths:
                seg(p, vocabulary=VOCABULARY, task=args.task)
            times.setdefault(("plain loop (Segmenter)", 0), []).append(time.perf_counter() - start)
            for w in workers:
                out = Path(tmp) / f"out_{r}_{w}"
                argv = ["--input", str(folder), "--output", str(out), "--vocabulary", VOCABULARY]
                argv += ["--task", args.task, "--weights", args.weights, "--num-workers", str(w), "--quiet"]
                if args.config_file:
                    argv += ["--config-file", args.config_file]
                start = time.perf_counter()
                run_inference(infer_args(argv), segmenter=seg)
                times.setdefault(("tools/infer.py", w), []).append(time.perf_counter() - start)
    rows = [
        {"mode": mode, "workers": w, "images": len(paths), "seconds": statistics.median(t), "runs": len(t)}
        for (mode, w), t in times.items()
    ]
    for r in rows:
        r["images/s"] = r["images"] / r["seconds"]
    print(
        tabulate(
            [[r["mode"], r["workers"], r["images"], f"{r['seconds']:.1f}", f"{r['images/s']:.2f}"] for r in rows],
            headers=["mode", "decode workers", "images", "seconds", "images/s"],
            tablefmt="pipe",
        )
    )
    return rows
