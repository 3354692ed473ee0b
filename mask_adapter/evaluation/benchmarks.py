"""Evaluate one model on the five open-vocabulary benchmarks and write one table (JSON + CSV).

Benchmarks (the five of the paper's tables): A-847 ``openvocab_ade20k_full_sem_seg_val``, A-150
``openvocab_ade20k_panoptic_val``,
PC-459 ``openvocab_pascal_ctx459_sem_seg_val``, PC-59 ``openvocab_pascal_ctx59_sem_seg_val``, PAS-20
``openvocab_pascal20_sem_seg_val``. A benchmark whose files are missing is reported with the expected path and
the preparation script; the others still run.

The table names its mIoU convention: ``mIoU`` averages the classes present in the ground truth (the convention of
the published numbers, detectron2 after 0.6), ``mIoU_d2v06`` the classes present in the ground truth or the
prediction (detectron2 0.6). They differ most on PC-459 and A-847, whose vocabularies are far larger than the
classes of the images (GETTING_STARTED.md, "Which mIoU").
"""

import csv
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from tabulate import tabulate

from ..utils.atomic import atomic_write, ensure_output_dir
from ..utils.env import environment_versions
from ..utils.progress import eval_progress
from .build import build_evaluator
from .guard import guard_evaluation
from .sem_seg import MIOU_CONVENTIONS

__all__ = ["BENCHMARKS", "evaluate_benchmarks", "format_benchmark_table"]

logger = logging.getLogger(__name__)

# Short name -> registered split, in the order of the paper's tables.
BENCHMARKS: "OrderedDict[str, str]" = OrderedDict(
    [
        ("A-847", "openvocab_ade20k_full_sem_seg_val"),
        ("A-150", "openvocab_ade20k_panoptic_val"),
        ("PC-459", "openvocab_pascal_ctx459_sem_seg_val"),
        ("PC-59", "openvocab_pascal_ctx59_sem_seg_val"),
        ("PAS-20", "openvocab_pascal20_sem_seg_val"),
    ]
)

_COLUMNS = ("benchmark", "dataset", "status", "images", "mIoU", "mIoU_d2v06", "PQ", "mask AP", "error")


def _resolve(benchmarks: Sequence[str] | None) -> "OrderedDict[str, str]":
    if not benchmarks:
        return OrderedDict(BENCHMARKS)
    out = OrderedDict()
    for b in benchmarks:
        if b in BENCHMARKS:
            out[b] = BENCHMARKS[b]
        elif b in BENCHMARKS.values() or b in DatasetCatalog.list():
            out[b] = b
        else:
            raise KeyError(f"Unknown benchmark {b!r}; use one of {', '.join(BENCHMARKS)} or a registered dataset name")
    return out


def _summary(results: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "mIoU": results.get("sem_seg", {}).get("mIoU"),
        "mIoU_d2v06": results.get("sem_seg", {}).get("mIoU_d2v06"),
        "PQ": results.get("panoptic_seg", {}).get("PQ"),
        "mask AP": results.get("segm", {}).get("AP"),
    }


def evaluate_benchmarks(
    cfg, model, benchmarks: Sequence[str] | None = None, output_dir: str | None = None
) -> dict[str, dict[str, Any]]:
    """Run inference and evaluation of ``model`` on each benchmark.

    Args:
        cfg: config (test resolution, DATALOADER.NUM_WORKERS, MODEL.MASK_FORMER.TEST.* evaluator flags).
        model: any detectron2 model (list of dataset dicts in, list of output dicts with "sem_seg" out). When it
            has ``set_metadata``, it is called with each benchmark's metadata so the vocabulary matches.
        benchmarks: short names ("A-150", ...) or registered dataset names; default all five.
        output_dir: folder for per-benchmark evaluator files and ``benchmarks.json`` / ``benchmarks.csv``.

    Returns:
        {benchmark: {"dataset", "status" ("ok" | "missing" | "failed"), "images", "mIoU" (classes present in the
        ground truth), "mIoU_d2v06" (classes in the ground truth or the prediction), "PQ", "mask AP",
        "error", "results" (the evaluators' full dict), "failed_images" (files skipped under
        TEST.SKIP_FAILED_IMAGES, each with its error)}}.

    A benchmark on which an image's prediction or evaluation raises stops there ("failed", the error names the
    file) unless TEST.SKIP_FAILED_IMAGES is set; the other benchmarks still run.
    """
    report: dict[str, dict[str, Any]] = OrderedDict()
    for short, name in _resolve(benchmarks).items():
        row: dict[str, Any] = {
            "dataset": name,
            "status": "ok",
            "images": 0,
            "mIoU": None,
            "mIoU_d2v06": None,
            "PQ": None,
            "mask AP": None,
            "error": "",
            "results": {},
            "failed_images": [],
        }
        try:
            records = DatasetCatalog.get(name)
        except FileNotFoundError as e:
            row.update(status="missing", error=str(e))
            logger.warning("Skipping %s: %s", short, e)
            report[short] = row
            continue
        try:
            if hasattr(model, "set_metadata"):
                model.set_metadata(MetadataCatalog.get(name))
            loader = build_detection_test_loader(cfg, name)
            evaluator = build_evaluator(cfg, name, os.path.join(output_dir, short) if output_dir else None)
            guarded_model, guarded = guard_evaluation(model, evaluator, cfg.TEST.SKIP_FAILED_IMAGES)
            results = inference_on_dataset(guarded_model, eval_progress(loader, short), guarded) or {}
            row["failed_images"] = [f"{file} ({why})" for file, why in guarded.failures]
        except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
            # includes ImageEvaluationError: this benchmark stops at the image, named in the error; the others run
            row.update(status="failed", error=f"{type(e).__name__}: {e}")
            logger.error("Benchmark %s failed: %s", short, row["error"])
            report[short] = row
            continue
        row.update(
            images=len(records),
            results=json.loads(json.dumps(results, default=float)),
            **_summary(results),
        )
        report[short] = row
    if comm.is_main_process():
        logger.info("Open-vocabulary benchmarks:\n%s", format_benchmark_table(report))
        if output_dir:
            write_benchmark_files(report, output_dir)
    return report


def format_benchmark_table(report: Mapping[str, Mapping[str, Any]]) -> str:
    """One text table (benchmark, dataset, status, images, mIoU, mIoU_d2v06, PQ, mask AP, error) and, under it,
    one line per mIoU column naming its convention."""
    rows = [[short] + [_fmt(r.get(c)) for c in _COLUMNS[1:]] for short, r in report.items()]
    table = tabulate(rows, headers=list(_COLUMNS), tablefmt="pipe", disable_numparse=True)
    return table + "\n" + "\n".join(f"{key}: {text}" for key, text in MIOU_CONVENTIONS.items())


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_benchmark_files(report: Mapping[str, Mapping[str, Any]], output_dir: str) -> dict[str, str]:
    """Write ``benchmarks.json`` (full results + library versions) and ``benchmarks.csv`` (the table)."""
    ensure_output_dir(output_dir)
    json_path, csv_path = os.path.join(output_dir, "benchmarks.json"), os.path.join(output_dir, "benchmarks.csv")
    with atomic_write(json_path, "w") as f:
        json.dump(
            {"versions": environment_versions(), "miou_conventions": MIOU_CONVENTIONS, "benchmarks": report},
            f,
            indent=2,
        )
    with atomic_write(csv_path, "w") as f:
        writer = csv.writer(f)
        writer.writerow(_COLUMNS)
        for short, r in report.items():
            writer.writerow([short] + ["" if r.get(c) is None else r.get(c) for c in _COLUMNS[1:]])
    return {"json": json_path, "csv": csv_path}
