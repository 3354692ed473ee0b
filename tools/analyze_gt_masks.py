#!/usr/bin/env python
"""Upper-bound analysis: how well are *ground-truth* masks classified by mask cropping, mask pooling and the
Mask-Adapter? (the paper's GT-mask study; SPEC §5.1 "oracle").

Every class present in an image's semantic ground truth gives one binary mask; each classifier predicts one class
per mask, and the mask-level accuracy is reported overall, per class (mean class accuracy) and, when a training
vocabulary is given, for the seen / unseen classes (category overlap of synonyms, as in the geometric ensemble).

Classifiers built from a model:
    crop     CLIP on the masked crop: the mask's bounding box, black outside the mask, resized to the CLIP input
             size, encoded by the CLIP visual tower + projection.
    pooling  mask pooling of the dense CLIP feature (``mask_pooling_embeddings``), FC-CLIP's out-of-vocabulary path.
    adapter  the Mask-Adapter (``model.mask_adapter``) on the binary masks.
Any callable ``(image (H, W, 3) uint8 RGB, masks (N, H, W) bool) -> (N,) class ids`` can be analysed too.

Usage:
    python tools/analyze_gt_masks.py --config-file configs/.../fcclip_convnext_large_eval_ade20k.yaml \\
        --weights fcclip_convnext_large_maskadapter.pth --dataset openvocab_ade20k_sem_seg_val \\
        --train-vocabulary coco_panoptic --output out/gt_masks --plot
"""

import argparse
import csv
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger("mask_adapter.tools.analyze_gt_masks")

__all__ = [
    "AccuracyStats",
    "Classifier",
    "analyze",
    "default_classifiers",
    "format_table",
    "gt_masks",
    "load_example",
    "main",
    "plot_accuracies",
    "write_csv",
]

# (image (H, W, 3) uint8 RGB, masks (N, H, W) bool) -> (N,) predicted class ids.
Classifier = Callable[[np.ndarray, np.ndarray], Any]
CLASSIFIER_NAMES = ("crop", "pooling", "adapter")


@dataclass
class AccuracyStats:
    """Mask-level classification counts of one classifier.

    Attributes:
        correct, total: (C,) correctly classified / all GT masks per class.
        seen: (C,) bool, classes of the training vocabulary; None when unknown.
    """

    correct: np.ndarray
    total: np.ndarray
    seen: Optional[np.ndarray] = None

    @classmethod
    def empty(cls, num_classes: int, seen: Optional[np.ndarray] = None) -> "AccuracyStats":
        return cls(np.zeros(num_classes, np.int64), np.zeros(num_classes, np.int64), seen)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add masks with GT labels ``gt`` (N,) and predictions ``pred`` (N,)."""
        np.add.at(self.total, gt, 1)
        np.add.at(self.correct, gt[pred == gt], 1)

    @staticmethod
    def _ratio(correct: int, total: int) -> float:
        return float(correct) / total if total else float("nan")

    @property
    def num_masks(self) -> int:
        return int(self.total.sum())

    @property
    def accuracy(self) -> float:
        """Correct masks / masks (nan without masks)."""
        return self._ratio(self.correct.sum(), self.total.sum())

    @property
    def mean_class_accuracy(self) -> float:
        """Mean over the classes that have masks of their accuracy."""
        present = self.total > 0
        return float((self.correct[present] / self.total[present]).mean()) if present.any() else float("nan")

    def _subset(self, mask: Optional[np.ndarray]) -> Tuple[int, float]:
        if mask is None:
            return 0, float("nan")
        return int(self.total[mask].sum()), self._ratio(self.correct[mask].sum(), self.total[mask].sum())

    @property
    def seen_accuracy(self) -> float:
        return self._subset(self.seen)[1]

    @property
    def unseen_accuracy(self) -> float:
        return self._subset(None if self.seen is None else ~self.seen)[1]

    def row(self) -> Dict[str, Any]:
        """Summary as a flat dict (one CSV row)."""
        seen_n, seen_acc = self._subset(self.seen)
        unseen_n, unseen_acc = self._subset(None if self.seen is None else ~self.seen)
        return {
            "masks": self.num_masks,
            "correct": int(self.correct.sum()),
            "accuracy": self.accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "seen_masks": seen_n,
            "seen_accuracy": seen_acc,
            "unseen_masks": unseen_n,
            "unseen_accuracy": unseen_acc,
        }


# ---------------------------------------------------------------------------------------------------- data
def _read_rgb(path: str) -> np.ndarray:
    from detectron2.data.detection_utils import read_image

    return np.ascontiguousarray(read_image(path, format="RGB"))


def _read_labels(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img).astype(np.int64)


def load_example(d: Mapping[str, Any], transform: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """Image and semantic labels of one dataset dict.

    Args:
        d: a detectron2 dataset dict with "file_name" and "sem_seg_file_name", or in-memory "image" (H, W, 3)
            uint8 RGB and "sem_seg" (H, W) arrays.
        transform: optional detectron2 Augmentation (e.g. the test-time ResizeShortestEdge), applied to both.

    Returns:
        image (H, W, 3) uint8 RGB, labels (H, W) int64.
    """
    image = np.asarray(d["image"]) if "image" in d else _read_rgb(d["file_name"])
    if "sem_seg" in d:
        labels = np.asarray(d["sem_seg"]).astype(np.int64)
    elif "sem_seg_file_name" in d:
        labels = _read_labels(d["sem_seg_file_name"])
    else:
        raise ValueError(
            f"dataset dict {d.get('file_name', '?')} has no semantic ground truth ('sem_seg_file_name' or "
            "'sem_seg'); use a semantic-segmentation split"
        )
    if labels.shape != image.shape[:2]:
        raise ValueError(f"{d.get('file_name', '?')}: labels {labels.shape} and image {image.shape[:2]} differ in size")
    if transform is not None:
        t = transform.get_transform(image)
        image = t.apply_image(image)
        # float32 holds every label exactly (< 2^24); nearest-neighbour resizing keeps the values
        labels = np.asarray(t.apply_segmentation(labels.astype(np.float32))).round().astype(np.int64)
    return image, labels


def gt_masks(labels: np.ndarray, num_classes: int, ignore_label: int) -> Tuple[np.ndarray, np.ndarray]:
    """One binary mask per class present in ``labels`` (ascending class id); ignore / out-of-range values skipped.

    Returns:
        masks (N, H, W) bool, classes (N,) int64.
    """
    values = [int(v) for v in np.unique(labels) if int(v) != ignore_label]
    bad = [v for v in values if v < 0 or v >= num_classes]
    if bad:
        logger.warning("labels %s are outside the %d-class vocabulary and were skipped", bad[:5], num_classes)
    classes = np.array([v for v in values if 0 <= v < num_classes], dtype=np.int64)
    masks = labels[None] == classes[:, None, None] if len(classes) else np.zeros((0,) + labels.shape, bool)
    return masks, classes


# ---------------------------------------------------------------------------------------------------- classifiers
class _ModelClassifiers:
    """Shared state of the built-in classifiers: text rows once, dense CLIP features once per image."""

    def __init__(self, model: Any) -> None:
        self.model = model
        vocab = model.test_vocabulary
        if vocab is None:
            raise ValueError("the model has no vocabulary: call model.set_vocabulary([...]) first")
        with torch.no_grad():
            self.text, self.num_templates = model.text_rows(vocab)
        self.vocabulary = vocab
        self._image: Optional[np.ndarray] = None
        self._state: Any = None

    def state(self, image: np.ndarray):
        """ForwardState of ``image`` (features, dense maps, adapter text rows), cached for the last image."""
        if self._image is image:
            return self._state
        from mask_adapter.modeling.meta_arch.base import ForwardState

        model = self.model
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        images = model.preprocess_image([{"image": tensor}])
        features = model.backbone(images.tensor)
        clip_dense = features["clip_vis_dense"]
        state = ForwardState(
            images=images,
            features=features,
            clip_dense=clip_dense,
            dense=model.backbone.dense_projection(clip_dense, model.dense_projection),
            text=self.text,
            num_templates=self.num_templates,
            vocabulary=self.vocabulary,
        )
        state.adapter_text = model.adapter_text(state)
        self._image, self._state = image, state
        return state

    def _padded(self, state, masks: np.ndarray) -> torch.Tensor:
        hp, wp = state.images.tensor.shape[-2:]
        m = torch.zeros(1, masks.shape[0], hp, wp, device=self.model.device)
        m[0, :, : masks.shape[1], : masks.shape[2]] = torch.as_tensor(masks, device=self.model.device).float()
        return m

    def _predict(self, emb: torch.Tensor, text: torch.Tensor) -> np.ndarray:
        from mask_adapter.modeling.adapter.pooling import classification_logits

        logits = classification_logits(emb, text, self.model.backbone.logit_scale, self.num_templates)
        return logits[..., :-1].argmax(-1).reshape(-1).cpu().numpy()

    @torch.no_grad()
    def adapter(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        from mask_adapter.modeling.adapter.pooling import embeddings_from_activation_maps

        state = self.state(image)
        adapter = self.model.mask_adapter
        maps = adapter(state.dense, self._padded(state, masks), self.model.inference_options.adapter_chunk)
        emb = embeddings_from_activation_maps(
            maps, state.clip_dense, self.model.backbone.project_pooled, adapter.num_output_maps
        )
        return self._predict(emb, state.adapter_text)

    @torch.no_grad()
    def pooling(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        from mask_adapter.modeling.adapter.pooling import mask_pooling_embeddings

        state = self.state(image)
        logits = (self._padded(state, masks) * 2.0 - 1.0) * 20.0  # binary mask as ±20 logits (pooled where > 0)
        emb = mask_pooling_embeddings(logits, state.clip_dense, self.model.backbone.project_pooled)
        return self._predict(emb, state.text)

    @torch.no_grad()
    def crop(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        model = self.model
        visual = model.backbone.clip_model.visual
        size = getattr(visual, "image_size", 224)
        size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        crops = []
        for m in masks:
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            crop = image[y0:y1, x0:x1] * m[y0:y1, x0:x1, None]
            t = torch.as_tensor(np.ascontiguousarray(crop.transpose(2, 0, 1)), device=model.device).float()
            crops.append(F.interpolate(t[None], size=size, mode="bicubic", align_corners=False)[0])
        x = (torch.stack(crops).clamp(0, 255) - model.pixel_mean) / model.pixel_std
        emb = model.backbone.clip_model.encode_image(x)
        return self._predict(emb, self.text)


def default_classifiers(model: Any, names: Sequence[str] = CLASSIFIER_NAMES) -> Dict[str, Classifier]:
    """The built-in classifiers of ``model`` (its current test vocabulary), by name ("crop", "pooling", "adapter").

    The adapter classifier needs a model with a Mask-Adapter; it is left out (with a warning) otherwise.
    """
    unknown = [n for n in names if n not in CLASSIFIER_NAMES]
    if unknown:
        raise ValueError(f"unknown classifiers {unknown}; choose from {', '.join(CLASSIFIER_NAMES)}")
    shared = _ModelClassifiers(model)
    out: Dict[str, Classifier] = {}
    for n in names:
        if n == "adapter" and getattr(model, "mask_adapter", None) is None:
            logger.warning("the model has no Mask-Adapter (OUT_VOCAB_CLASSIFIER mask_pooling): 'adapter' skipped")
            continue
        out[n] = getattr(shared, n)
    return out


# ---------------------------------------------------------------------------------------------------- analysis
def _as_mapping(classifiers: Union[Mapping[str, Classifier], Iterable[Any]]) -> Dict[str, Classifier]:
    if isinstance(classifiers, Mapping):
        return dict(classifiers)
    out: Dict[str, Classifier] = {}
    for c in classifiers:
        name, fn = c if isinstance(c, tuple) else (getattr(c, "name", None) or getattr(c, "__name__", repr(c)), c)
        if name in out:
            raise ValueError(f"two classifiers are named {name!r}; pass a dict name -> classifier")
        out[name] = fn
    return out


def analyze(
    model: Any,
    dataset_dicts: Sequence[Mapping[str, Any]],
    classifiers: Union[Mapping[str, Classifier], Iterable[Any], None] = None,
    *,
    class_names: Optional[Sequence[str]] = None,
    train_class_names: Optional[Sequence[str]] = None,
    ignore_label: int = 255,
    transform: Any = None,
    progress: bool = False,
) -> Dict[str, AccuracyStats]:
    """Classify every ground-truth mask of ``dataset_dicts`` with each classifier.

    Args:
        model: a Mask-Adapter model (eval mode, vocabulary set); only used for the default classifiers and the
            default class names. May be None when both are given.
        dataset_dicts: dicts accepted by :func:`load_example`; labels are contiguous class ids.
        classifiers: {name: classifier}, or a sequence of classifiers / (name, classifier) pairs; each is called
            once per image with the masks of :func:`gt_masks` (ascending class id). Default: all built-in ones.
        class_names: the vocabulary (default: the model's test vocabulary); C = its length.
        train_class_names: training vocabulary; enables the seen / unseen split (``category_overlap_mask``).
        ignore_label: label value without class.
        transform: optional detectron2 Augmentation applied to image and labels.
        progress: show a tqdm bar.

    Returns:
        {classifier name: AccuracyStats}.
    """
    from mask_adapter.modeling.text import category_overlap_mask

    if class_names is None:
        if model is None or getattr(model, "test_vocabulary", None) is None:
            raise ValueError("give class_names, or a model whose vocabulary is set (model.set_vocabulary)")
        class_names = model.test_vocabulary.class_names
    num_classes = len(class_names)
    if num_classes == 0:
        raise ValueError("empty vocabulary: class_names has no class")
    if classifiers is None:
        if model is None:
            raise ValueError("give classifiers, or a model to build the default ones from")
        classifiers = default_classifiers(model)
    named = _as_mapping(classifiers)
    seen = None
    if train_class_names is not None:
        seen = category_overlap_mask(list(class_names), list(train_class_names)).numpy()
    stats = {name: AccuracyStats.empty(num_classes, seen) for name in named}
    from tqdm import tqdm

    for d in tqdm(dataset_dicts, desc="GT masks", unit="image", disable=not progress):
        image, labels = load_example(d, transform)
        masks, gt = gt_masks(labels, num_classes, ignore_label)
        if len(gt) == 0:
            continue
        for name, fn in named.items():
            pred = np.asarray(fn(image, masks)).reshape(-1).astype(np.int64)
            if pred.shape[0] != len(gt):
                raise ValueError(f"classifier {name!r} returned {pred.shape[0]} predictions for {len(gt)} masks")
            stats[name].update(gt, pred)
    return stats


# ---------------------------------------------------------------------------------------------------- reporting
_COLUMNS = ("masks", "accuracy", "mean_class_accuracy", "seen_accuracy", "unseen_accuracy")


def _pct(v: float) -> str:
    return "-" if v != v else f"{100.0 * v:.1f}"


def format_table(stats: Mapping[str, AccuracyStats]) -> str:
    """Plain-text table: masks, accuracy, mean class accuracy, seen / unseen accuracy (percent)."""
    header = ["classifier", "masks", "acc %", "mean class acc %", "seen acc %", "unseen acc %"]
    rows = [
        [
            name,
            str(s.num_masks),
            _pct(s.accuracy),
            _pct(s.mean_class_accuracy),
            _pct(s.seen_accuracy),
            _pct(s.unseen_accuracy),
        ]
        for name, s in stats.items()
    ]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])


def write_csv(stats: Mapping[str, AccuracyStats], path: Union[str, Path]) -> Path:
    """One row per classifier with the fields of :meth:`AccuracyStats.row`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = None
        for name, s in stats.items():
            row = {"classifier": name, **s.row()}
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    return path


def plot_accuracies(stats: Mapping[str, AccuracyStats], path: Union[str, Path]) -> Path:
    """Bar chart (PNG) of overall / seen / unseen accuracy per classifier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("overall", "accuracy")]
    if any(s.seen is not None for s in stats.values()):
        groups += [("seen", "seen_accuracy"), ("unseen", "unseen_accuracy")]
    names = list(stats)
    x = np.arange(len(names))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(names), 3.5))
    for k, (label, attr) in enumerate(groups):
        values = [100.0 * np.nan_to_num(getattr(stats[n], attr)) for n in names]
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylabel("GT-mask accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------- CLI
def _vocabulary_names(name: str) -> List[str]:
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
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, AccuracyStats]:
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


if __name__ == "__main__":
    from detectron2.utils.logger import setup_logger

    setup_logger(name="mask_adapter")
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
