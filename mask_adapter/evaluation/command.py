"""The evaluation command (``tools/evaluate_benchmarks.py``): the five benchmarks and the user's own datasets.

    python tools/evaluate_benchmarks.py --config-file CONFIG.yaml --weights MODEL.pth \\
        [--benchmarks A-847,A-150,PC-459,PC-59,PAS-20] [--output OUTPUT_DIR] \\
        [--semseg NAME IMAGES LABELS CLASSES]... [--coco-panoptic NAME IMAGES PANOPTIC_JSON PANOPTIC_DIR]... \\
        [KEY VALUE ...]

Prints one table (mIoU under both averaging conventions, plus PQ / mask AP when the TEST flags enable them) and
writes ``benchmarks.json`` (full results and library versions) and ``benchmarks.csv`` to the output folder.

Your own data, registered through the package catalog for this run (no code edit):

- ``--semseg NAME IMAGES LABELS CLASSES``: a folder of images, a folder of PNG label maps with the same file stems
  (value k = the k-th class of CLASSES, 255 = ignore) and a class file with one ``id:name,synonym,...`` line per
  class; evaluated with mIoU;
- ``--coco-panoptic NAME IMAGES PANOPTIC_JSON PANOPTIC_DIR``: a COCO panoptic JSON (panopticapi format; its
  categories are the vocabulary) with its PNG folder; evaluated with
  PQ and mIoU (semantic labels derived from the panoptic PNGs), so the semantic and panoptic TEST flags are set
  and the instance flag is cleared (there is no instances JSON; KEY VALUE overrides still win).

With such datasets and no ``--benchmarks``, only they are evaluated. A benchmark whose files are missing is
reported with the expected path and the preparation script; the rest still run, and the command then ends with one
"error:" line listing them (exit code 1). An image whose prediction or evaluation raises stops the run with its
file name, unless --skip-failed-images (TEST.SKIP_FAILED_IMAGES) skips it and lists it at the end.
"""

import argparse
from collections.abc import Sequence

from ..utils.cli import add_debug_flag, add_memory_flag, apply_memory_flag, run_cli
from .benchmarks import BENCHMARKS

__all__ = ["command_line", "main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Evaluate one checkpoint + config on the five open-vocabulary benchmarks or your own data."
    )
    parser.add_argument("--config-file", required=True, help="model config (YAML)")
    parser.add_argument("--weights", default="", help="checkpoint; default: MODEL.WEIGHTS of the config")
    parser.add_argument(
        "--benchmarks",
        default=None,
        help=f"comma-separated short names ({','.join(BENCHMARKS)}) or registered dataset names; default: all five, "
        "or only the --semseg / --coco-panoptic datasets when some are given",
    )
    parser.add_argument(
        "--semseg",
        nargs=4,
        action="append",
        default=[],
        metavar=("NAME", "IMAGES", "LABELS", "CLASSES"),
        help="evaluate your own semantic dataset: image folder, PNG label folder, class file (repeatable)",
    )
    parser.add_argument(
        "--coco-panoptic",
        nargs=4,
        action="append",
        default=[],
        metavar=("NAME", "IMAGES", "PANOPTIC_JSON", "PANOPTIC_DIR"),
        help="evaluate your own COCO panoptic dataset: images, panopticapi JSON, PNG folder (repeatable)",
    )
    parser.add_argument("--output", default="", help="output folder; default: OUTPUT_DIR/benchmarks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (log lines stay)")
    parser.add_argument(
        "--skip-failed-images",
        action="store_true",
        help="continue past images whose prediction or evaluation raises and list them at the end "
        "(TEST.SKIP_FAILED_IMAGES); default: stop, naming the file",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a checkpoint that contains pickled Python objects: this RUNS CODE FROM THE FILE, so use it only "
        "for files from a source you trust",
    )
    add_debug_flag(parser)
    add_memory_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Register the user's datasets, build the model, load the checkpoint, evaluate; 0 when every one ran."""
    from detectron2.modeling import build_model
    from detectron2.utils.logger import setup_logger

    from ..checkpoint import MaskAdapterCheckpointer
    from ..config import build_config
    from ..data.catalog import register_user_datasets
    from ..utils.progress import is_quiet, quiet_progress
    from .benchmarks import evaluate_benchmarks

    args = parse_args(argv)
    own = register_user_datasets(args.semseg, args.coco_panoptic)
    opts = []
    if args.coco_panoptic:  # PQ and mIoU (the model's panoptic output, both evaluators); no instances JSON here
        test = "MODEL.MASK_FORMER.TEST."
        opts += [test + "SEMANTIC_ON", "True", test + "PANOPTIC_ON", "True", test + "INSTANCE_ON", "False"]
    opts += list(args.opts) + (["MODEL.WEIGHTS", args.weights] if args.weights else [])
    opts += ["TEST.SKIP_FAILED_IMAGES", "True"] if args.skip_failed_images else []
    cfg = build_config(args.config_file, opts)
    output = args.output or f"{cfg.OUTPUT_DIR}/benchmarks"
    setup_logger(output=output, name="mask_adapter")
    setup_logger(output=output, name="detectron2")
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        MaskAdapterCheckpointer(model, allow_pickle=args.trust_pickle).load(cfg.MODEL.WEIGHTS)
    model.eval()
    if args.benchmarks is not None:
        names = [b for b in args.benchmarks.split(",") if b]
    else:
        names = own or list(BENCHMARKS)
    with quiet_progress(args.quiet or is_quiet()):
        report = evaluate_benchmarks(cfg, model, names, output)
    # evaluate_benchmarks logs the table (to stdout through the logger set up above) and writes JSON + CSV.
    not_run = {b: r for b, r in report.items() if r["status"] != "ok"}
    if not_run:
        raise ValueError(
            f"{len(not_run)} of {len(report)} benchmarks did not run: "
            + "; ".join(f"{b} {r['status']}: {r['error']}" for b, r in not_run.items())
        )
    return 0


def command_line(argv: Sequence[str] | None = None) -> int:
    """The program: logging to the console, bad input ends with one ``error:`` line; returns the exit code."""
    import logging

    logging.basicConfig(level=logging.INFO)
    apply_memory_flag(argv)
    return run_cli(main, argv)


if __name__ == "__main__":
    import sys

    sys.exit(command_line())
