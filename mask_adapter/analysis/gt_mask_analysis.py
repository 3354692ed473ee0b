"""Upper-bound analysis: how well are *ground-truth* masks classified? (the paper's GT-mask study, the
"oracle" evaluation of stage 1).

Every class present in an image's semantic ground truth gives one binary mask; each classifier (see
:mod:`mask_adapter.analysis.classifiers`) predicts one class per mask, and the mask-level accuracy is reported
overall, per class (mean class accuracy) and, when a training vocabulary is given, for the seen / unseen classes
(category overlap of synonyms, as in the geometric ensemble).

Shapes: image (H, W, 3) uint8 RGB; labels (H, W) int64 contiguous class ids; masks (N, H, W) bool, one per class
present; N-vectors of class ids; C vocabulary classes.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .classifiers import Classifier, default_classifiers

logger = logging.getLogger(__name__)

__all__ = ["AccuracyStats", "analyze", "gt_masks", "load_example"]


@dataclass
class AccuracyStats:
    """Mask-level classification counts of one classifier.

    Attributes:
        correct, total: (C,) correctly classified / all GT masks per class.
        seen: (C,) bool, classes of the training vocabulary; None when unknown.
    """

    correct: np.ndarray
    total: np.ndarray
    seen: np.ndarray | None = None

    @classmethod
    def empty(cls, num_classes: int, seen: np.ndarray | None = None) -> "AccuracyStats":
        """Zero counts for ``num_classes`` (C) classes, with the optional (C,) bool ``seen`` split."""
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
        """Number of GT masks counted."""
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

    def _subset(self, mask: np.ndarray | None) -> tuple[int, float]:
        if mask is None:
            return 0, float("nan")
        return int(self.total[mask].sum()), self._ratio(self.correct[mask].sum(), self.total[mask].sum())

    @property
    def seen_accuracy(self) -> float:
        """Accuracy over the masks of seen classes (nan without a training vocabulary)."""
        return self._subset(self.seen)[1]

    @property
    def unseen_accuracy(self) -> float:
        """Accuracy over the masks of unseen classes (nan without a training vocabulary)."""
        return self._subset(None if self.seen is None else ~self.seen)[1]

    def row(self) -> dict[str, Any]:
        """Summary as a flat dict (one CSV row).

        Returns:
            {"masks", "correct", "accuracy", "mean_class_accuracy", "seen_masks", "seen_accuracy", "unseen_masks",
            "unseen_accuracy"}; accuracies are fractions (nan when undefined).
        """
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


def load_example(d: Mapping[str, Any], transform: Any = None) -> tuple[np.ndarray, np.ndarray]:
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


def gt_masks(labels: np.ndarray, num_classes: int, ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
    """One binary mask per class present in ``labels`` (ascending class id); ignore / out-of-range values skipped.

    Args:
        labels: (H, W) class ids.
        num_classes: C; values outside [0, C) other than ``ignore_label`` are skipped with a warning.
        ignore_label: label value without class.

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


# ---------------------------------------------------------------------------------------------------- analysis
def _as_mapping(classifiers: Mapping[str, Classifier] | Iterable[Any]) -> dict[str, Classifier]:
    if isinstance(classifiers, Mapping):
        return dict(classifiers)
    out: dict[str, Classifier] = {}
    for c in classifiers:
        name, fn = c if isinstance(c, tuple) else (getattr(c, "name", None) or getattr(c, "__name__", repr(c)), c)
        if name in out:
            raise ValueError(f"two classifiers are named {name!r}; pass a dict name -> classifier")
        out[name] = fn
    return out


def analyze(
    model: Any,
    dataset_dicts: Sequence[Mapping[str, Any]],
    classifiers: Mapping[str, Classifier] | Iterable[Any] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    train_class_names: Sequence[str] | None = None,
    ignore_label: int = 255,
    transform: Any = None,
    progress: bool = False,
) -> dict[str, AccuracyStats]:
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
