"""Upper-bound analysis: how well are *ground-truth* masks classified by mask cropping, mask pooling and the
Mask-Adapter? (the paper's GT-mask study, the "oracle" evaluation).

Command line of :mod:`mask_adapter.analysis`: builds the model from a config, classifies every ground-truth mask of
a registered semantic-segmentation dataset with the chosen classifiers (crop, pooling, adapter; see
:mod:`mask_adapter.analysis.classifiers`), logs the accuracy table and writes a CSV (and a bar chart). The library
names (``analyze``, ``AccuracyStats``, ``default_classifiers``, ...) are re-exported here.

Usage (``tools/analyze_gt_masks.py`` launches this module):
    python tools/analyze_gt_masks.py --config-file configs/.../fcclip_convnext_large_eval_ade20k.yaml \\
        --weights fcclip_convnext_large_maskadapter.pth --dataset openvocab_ade20k_sem_seg_val \\
        --train-vocabulary coco_panoptic --output out/gt_masks --plot
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from mask_adapter.analysis import (
    CLASSIFIER_NAMES,
    AccuracyStats,
    Classifier,
    analyze,
    default_classifiers,
    format_table,
    gt_masks,
    load_example,
    plot_accuracies,
    write_csv,
)
from mask_adapter.utils.cli import add_debug_flag, run_cli

logger = logging.getLogger("mask_adapter.tools.analyze_gt_masks")

__all__ = [
    "AccuracyStats",
    "Classifier",
    "analyze",
    "default_classifiers",
    "format_table",
    "gt_masks",
    "load_example",
    "command_line",
    "main",
    "plot_accuracies",
    "write_csv",
]


def _vocabulary_names(name: str) -> list[str]:
    """Class strings of a registered dataset, a shipped vocabulary key or an id:name,syn file."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from mask_adapter.data.vocabulary import VOCABULARY_KEYS, load_vocabulary
    from mask_adapter.modeling.meta_arch.vocabulary import Vocabulary

    if name in VOCABULARY_KEYS or os.path.isfile(name):
        return load_vocabulary(name)
    if name not in DatasetCatalog.list():
        from mask_adapter.data.catalog import register_all

        register_all()
    if name not in DatasetCatalog.list():
        raise ValueError(f"unknown vocabulary {name!r}: give a registered dataset, a vocabulary key or a file")
    return list(Vocabulary.from_metadata(MetadataCatalog.get(name)).class_names)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default=None, help="checkpoint (default: MODEL.WEIGHTS of the config)")
    p.add_argument("--dataset", required=True, help="registered semantic-segmentation dataset")
    p.add_argument(
        "--train-vocabulary",
        default=None,
        help="training vocabulary for the seen/unseen split: dataset name, vocabulary key or file",
    )
    p.add_argument(
        "--classifiers", default=",".join(CLASSIFIER_NAMES), help="comma-separated subset of crop,pooling,adapter"
    )
    p.add_argument("--max-images", type=int, default=0, help="analyse the first N images (0 = all)")
    p.add_argument("--output", default="output/gt_mask_analysis", help="folder for the CSV (and the plot)")
    p.add_argument("--plot", action="store_true", help="also save a bar chart PNG")
    add_debug_flag(p)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, AccuracyStats]:
    """Build the model, analyse the dataset, print the table, write CSV (and plot). Returns the statistics."""
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data import transforms as T
    from detectron2.modeling import build_model

    from mask_adapter import add_mask_adapter_config
    from mask_adapter.checkpoint import MaskAdapterCheckpointer

    args = get_parser().parse_args(argv)
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts))
    if args.weights is not None:
        cfg.MODEL.WEIGHTS = args.weights
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    names = _vocabulary_names(args.dataset)
    dicts = DatasetCatalog.get(args.dataset)
    if args.max_images > 0:
        dicts = dicts[: args.max_images]
    ignore = int(getattr(MetadataCatalog.get(args.dataset), "ignore_label", 255))
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        MaskAdapterCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("no weights (MODEL.WEIGHTS is empty): random model, the numbers are meaningless")
    model.set_vocabulary(names)
    classifiers = default_classifiers(model, [c.strip() for c in args.classifiers.split(",") if c.strip()])
    train = _vocabulary_names(args.train_vocabulary) if args.train_vocabulary else None
    transform = (
        T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        if cfg.INPUT.MIN_SIZE_TEST > 0
        else None
    )
    stats = analyze(
        model,
        dicts,
        classifiers,
        class_names=names,
        train_class_names=train,
        ignore_label=ignore,
        transform=transform,
        progress=True,
    )
    logger.info("GT-mask classification on %s (%d images):\n%s", args.dataset, len(dicts), format_table(stats))
    out = Path(args.output)
    csv_path = write_csv(stats, out / f"{args.dataset}_gt_mask_accuracy.csv")
    logger.info("wrote %s", csv_path)
    if args.plot:
        logger.info("wrote %s", plot_accuracies(stats, out / f"{args.dataset}_gt_mask_accuracy.png"))
    return stats


def command_line(argv: Sequence[str] | None = None) -> int:
    """The program: logging set up, bad input ends with one ``error:`` line; returns the exit code."""
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(command_line())
