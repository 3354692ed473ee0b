#!/usr/bin/env python
"""Evaluate one checkpoint + config on the five open-vocabulary benchmarks with one command.

Usage:
    python tools/evaluate_benchmarks.py --config-file CONFIG.yaml --weights MODEL.pth \\
        [--benchmarks A-847,A-150,PC-459,PC-59,PAS-20] [--output OUTPUT_DIR] [KEY VALUE ...]

Prints one table (mIoU per benchmark, plus PQ / mask AP when the TEST flags enable them) and writes
``benchmarks.json`` (full results and library versions) and ``benchmarks.csv`` to the output folder. A benchmark
whose files are missing is reported with the expected path and the preparation script; the rest still run, and
the command then ends with one "error:" line listing them (exit code 1). An image whose prediction or evaluation
raises stops the run with its file name, unless --skip-failed-images (TEST.SKIP_FAILED_IMAGES) skips it and lists
it at the end. Bad input ends with one "error:" line (--debug: the traceback).
"""

import argparse
import logging
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import this checkout's package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

import mask_adapter.data  # noqa: F401  (registers the dataset catalog)
from mask_adapter.checkpoint import MaskAdapterCheckpointer
from mask_adapter.config import build_config
from mask_adapter.evaluation import BENCHMARKS, evaluate_benchmarks  # noqa: E402
from mask_adapter.utils.cli import add_debug_flag, run_cli  # noqa: E402
from mask_adapter.utils.progress import is_quiet, quiet_progress  # noqa: E402

__all__ = ["main", "evaluate_benchmarks"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="model config (YAML)")
    parser.add_argument("--weights", default="", help="checkpoint; default: MODEL.WEIGHTS of the config")
    parser.add_argument(
        "--benchmarks",
        default=",".join(BENCHMARKS),
        help=f"comma-separated short names ({','.join(BENCHMARKS)}) or registered dataset names",
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
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the model, load the checkpoint, evaluate; returns 0 when every requested benchmark ran."""
    args = parse_args(argv)
    opts = list(args.opts) + (["MODEL.WEIGHTS", args.weights] if args.weights else [])
    opts += ["TEST.SKIP_FAILED_IMAGES", "True"] if args.skip_failed_images else []
    cfg = build_config(args.config_file, opts)
    output = args.output or f"{cfg.OUTPUT_DIR}/benchmarks"
    setup_logger(output=output, name="mask_adapter")
    setup_logger(output=output, name="detectron2")
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        MaskAdapterCheckpointer(model, allow_pickle=args.trust_pickle).load(cfg.MODEL.WEIGHTS)
    model.eval()
    with quiet_progress(args.quiet or is_quiet()):
        report = evaluate_benchmarks(cfg, model, [b for b in args.benchmarks.split(",") if b], output)
    # evaluate_benchmarks logs the table (to stdout through the logger set up above) and writes JSON + CSV.
    not_run = {b: r for b, r in report.items() if r["status"] != "ok"}
    if not_run:
        raise ValueError(
            f"{len(not_run)} of {len(report)} benchmarks did not run: "
            + "; ".join(f"{b} {r['status']}: {r['error']}" for b, r in not_run.items())
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(run_cli(main))
