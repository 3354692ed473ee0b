"""Open-vocabulary predictor: build a model from a cfg, set a vocabulary, predict, draw.

Also the class-id label map written by ``demo.py --save-label-map``. Image reading lives in
``mask_adapter.api.images`` and the released models in ``mask_adapter.checkpoint.hub``; ``mask_adapter.Segmenter`` is the
higher-level entry point built on this class.

Shapes: H×W the input image; C classes of the vocabulary.
"""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from detectron2.data import transforms as T
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from detectron2.structures import Instances
from detectron2.utils.visualizer import ColorMode, Visualizer
from PIL import Image

import mask_adapter  # noqa: F401  (registers the package's components)
from mask_adapter.checkpoint.hub import resolve_weights
from mask_adapter.data.vocabulary import split_synonyms

__all__ = [
    "TASKS",
    "TASK_FLAGS",
    "VocabularyPredictor",
    "build_metadata",
    "draw_overlay",
    "label_map",
    "void_label",
]

logger = logging.getLogger(__name__)

TASKS = ("semantic", "panoptic", "instance")
_OUTPUT_KEY = {"semantic": "sem_seg", "panoptic": "panoptic_seg", "instance": "instances"}
TASK_FLAGS = {  # MODEL.MASK_FORMER.TEST key that enables each task
    "semantic": "SEMANTIC_ON",
    "panoptic": "PANOPTIC_ON",
    "instance": "INSTANCE_ON",
}


# ---------------------------------------------------------------------------------------------------- drawing
def _first_names(class_names: Sequence[str]) -> list[str]:
    return [split_synonyms(c)[0].strip() for c in class_names]


def _default_colors(n: int) -> list[tuple[int, int, int]]:
    """VOC's colour map (without its black background entry), then fixed pseudo-random colours."""
    import imgviz

    cmap = [tuple(int(v) for v in c) for c in imgviz.label_colormap()[1:]]
    if n > len(cmap):
        rng = np.random.RandomState(0)
        cmap += [tuple(int(v) for v in c) for c in rng.randint(32, 256, size=(n - len(cmap), 3))]
    return cmap[:n]


def build_metadata(
    class_names: Sequence[str], colors: Sequence[Sequence[int]] | None = None, name: str = "mask_adapter_demo"
) -> Metadata:
    """Visualizer metadata for a vocabulary: stuff_classes = thing_classes = the first synonym of each class.

    Both lists cover all classes because the model's category ids index the whole vocabulary, for things and
    stuff alike. The object is not registered in ``MetadataCatalog``.
    """
    names = _first_names(class_names)
    colors = [tuple(int(v) for v in c) for c in colors] if colors else _default_colors(len(names))
    if len(colors) != len(names):
        colors = _default_colors(len(names))
    return Metadata(name=name, stuff_classes=names, thing_classes=names, stuff_colors=colors, thing_colors=colors)


# Classes a label map can hold: ids 0..65534 in a 16-bit PNG, 65535 is void.
MAX_LABEL_MAP_CLASSES = 65535


def check_label_map_classes(num_classes: int) -> None:
    """Raises ValueError (one line) when ``num_classes`` ids do not fit a 16-bit label map."""
    if num_classes > MAX_LABEL_MAP_CLASSES:
        raise ValueError(
            f"the vocabulary has {num_classes} classes, but a label map (16-bit PNG) holds at most "
            f"{MAX_LABEL_MAP_CLASSES} (ids 0-65534, 65535 = void); use at most {MAX_LABEL_MAP_CLASSES} classes or "
            "leave out --save-label-map"
        )


def void_label(num_classes: int) -> int:
    """Label-map value of pixels without a class: 255 when ids fit in uint8 (C <= 255), else 65535.

    Raises:
        ValueError: more than ``MAX_LABEL_MAP_CLASSES`` classes (class 65535 would read as void, larger ids wrap).
    """
    check_label_map_classes(num_classes)
    return 255 if num_classes <= 255 else 65535


def _instances_above(instances: Instances, threshold: float) -> Instances:
    keep = instances.scores > threshold
    out = Instances(instances.image_size)
    out.pred_masks = instances.pred_masks[keep]
    out.scores = instances.scores[keep]
    out.pred_classes = instances.pred_classes[keep]
    return out  # no pred_boxes: the model's boxes are zeros, the Visualizer places labels on the masks


def label_map(outputs: dict[str, Any], task: str, num_classes: int, confidence_threshold: float = 0.5) -> np.ndarray:
    """(H, W) class id per pixel; ``void_label(num_classes)`` where the task assigns no class.

    semantic: argmax of the class scores (void where every score is 0, e.g. pixels outside all SAM masks);
    panoptic: the segment's category; instance: the class of the highest-scoring instance above the threshold.
    Returns uint8 for up to 255 classes, else uint16.
    """
    dtype = np.uint8 if num_classes <= 255 else np.uint16
    void = void_label(num_classes)
    if task == "semantic":
        sem = outputs["sem_seg"].detach().float().cpu()
        labels = sem.argmax(0).numpy().astype(dtype)
        labels[(sem.max(0).values <= 0).numpy()] = void
        return labels
    if task == "panoptic":
        pan, segments = outputs["panoptic_seg"]
        pan = pan.detach().cpu().numpy()
        labels = np.full(pan.shape, void, dtype=dtype)
        for s in segments:
            labels[pan == s["id"]] = s["category_id"]
        return labels
    if task == "instance":
        inst = _instances_above(outputs["instances"].to("cpu"), confidence_threshold)
        labels = np.full(tuple(inst.image_size), void, dtype=dtype)
        order = torch.argsort(inst.scores)  # ascending: the highest score is painted last
        for k in order.tolist():
            labels[inst.pred_masks[k].numpy()] = int(inst.pred_classes[k])
        return labels
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def draw_overlay(
    image: np.ndarray, outputs: dict[str, Any], task: str, metadata: Metadata, confidence_threshold: float = 0.5
) -> np.ndarray:
    """Draw the ``task`` output of a model over its input image with detectron2's Visualizer.

    Args:
        image: (H, W, 3) uint8 RGB, the image the model saw (at its original size).
        outputs: the model's output dict for it.
        task: "semantic", "panoptic" or "instance".
        metadata: the vocabulary's drawing metadata (:func:`build_metadata`).
        confidence_threshold: instances with a lower score are not drawn.

    Returns:
        (H, W, 3) uint8 RGB overlay.
    """
    vis = Visualizer(image, metadata, instance_mode=ColorMode.IMAGE)
    # The Visualizer jitters the colours of things with numpy's global generator: seed it for the drawing, so the
    # same output is drawn the same way every time, and give the caller's generator state back afterwards.
    rng_state = np.random.get_state()
    np.random.seed(0)
    try:
        if task == "semantic":
            labels = label_map(outputs, "semantic", len(metadata.stuff_classes))
            drawn = vis.draw_sem_seg(labels, alpha=0.5)
        elif task == "panoptic":
            pan, segments = outputs["panoptic_seg"]
            drawn = vis.draw_panoptic_seg(pan.to("cpu"), segments, alpha=0.5)
        else:
            instances = _instances_above(outputs["instances"].to("cpu"), confidence_threshold)
            drawn = vis.draw_instance_predictions(instances)
    finally:
        np.random.set_state(rng_state)
    out = drawn.get_image()
    if out.shape[:2] != image.shape[:2]:  # the Visualizer keeps the size at scale 1; guard against rounding
        out = np.asarray(Image.fromarray(out).resize((image.shape[1], image.shape[0]), Image.BILINEAR))
    return out


# ---------------------------------------------------------------------------------------------------- predictor
class VocabularyPredictor:
    """Run a Mask-Adapter model on single RGB images with a vocabulary chosen at run time.

    Args:
        cfg: merged config (cloned; not modified). MODEL.DEVICE falls back to "cpu" without a GPU. MODEL.WEIGHTS
            may be a file, a released short name (``mask_adapter.checkpoint.RELEASED_MODELS``) or "" (random weights).
        class_names: class strings "name,synonym,..."; None keeps the vocabulary of DATASETS.TEST.
        thing_ids: contiguous ids of the countable classes (instances; panoptic thing segments).
        colors: one RGB colour per class for drawing (default: a fixed colour map).
        mask_generator: for the SAM path (META_ARCHITECTURE "SAMMaskAdapter"): an object with ``generate``,
            used instead of building SAM from MODEL.SAM.*.
        allow_pickle: load checkpoints holding arbitrary pickled objects (only for files you trust).
    """

    def __init__(
        self,
        cfg: CfgNode,
        *,
        class_names: Sequence[str] | None = None,
        thing_ids: Sequence[int] = (),
        colors: Sequence[Sequence[int]] | None = None,
        mask_generator: Any = None,
        allow_pickle: bool = False,
    ) -> None:
        cfg = cfg.clone()
        cfg.defrost()
        if cfg.MODEL.DEVICE != "cpu" and not torch.cuda.is_available():
            logger.info("no GPU available: running on the CPU (MODEL.DEVICE %s -> cpu)", cfg.MODEL.DEVICE)
            cfg.MODEL.DEVICE = "cpu"
        cfg.freeze()
        self.cfg = cfg
        if mask_generator is not None:
            arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
            self.model = arch(cfg, mask_generator=mask_generator).to(torch.device(cfg.MODEL.DEVICE))
        else:
            self.model = build_model(cfg)
        self.model.eval()
        weights = resolve_weights(cfg.MODEL.WEIGHTS)
        if weights:
            from mask_adapter.checkpoint import MaskAdapterCheckpointer

            MaskAdapterCheckpointer(self.model, allow_pickle=allow_pickle).load(weights)
        else:
            logger.warning("no weights given (MODEL.WEIGHTS is empty): the model has random weights")
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.metadata: Metadata | None = None
        if class_names is not None:
            self.set_vocabulary(class_names, thing_ids, colors)
        else:
            vocab = self.model.test_vocabulary
            if vocab is not None:
                self.metadata = build_metadata(vocab.class_names, colors)

    @property
    def class_names(self) -> tuple[str, ...]:
        vocab = self.model.test_vocabulary
        return tuple(vocab.class_names) if vocab is not None else ()

    def set_vocabulary(
        self,
        class_names: Sequence[str],
        thing_ids: Sequence[int] = (),
        colors: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """Classify against ``class_names`` ("name,synonym,...") from now on."""
        if not class_names:
            raise ValueError("empty vocabulary: give at least one class name")
        self.model.set_vocabulary(list(class_names), thing_ids)
        self.metadata = build_metadata(class_names, colors)

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        """Predict on one image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            The model's output dict at the input size: "sem_seg" (C, H, W) scores, "panoptic_seg" (ids (H, W),
            segments_info), "instances", as enabled by MODEL.MASK_FORMER.TEST.*_ON.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}; "
                "convert it with mask_adapter.api.images.to_rgb_uint8 first"
            )
        height, width = image.shape[:2]
        resized = self.resize(image) if self.cfg.INPUT.MIN_SIZE_TEST > 0 else image
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        with torch.no_grad():
            return self.model([{"image": tensor, "height": height, "width": width}])[0]

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The test-time resize (shorter side MIN_SIZE_TEST, longer side at most MAX_SIZE_TEST), keeping every side
        at least 1 pixel: a very narrow image (e.g. 1x50000) would otherwise get a side of 0 pixels."""
        transform = self.aug.get_transform(image)
        if transform.new_h < 1 or transform.new_w < 1:
            transform = T.ResizeTransform(
                transform.h, transform.w, max(1, transform.new_h), max(1, transform.new_w), transform.interp
            )
        return transform.apply_image(image)

    def label_map(self, outputs: dict[str, Any], task: str, confidence_threshold: float = 0.5) -> np.ndarray:
        """See :func:`label_map`."""
        self._check_task(outputs, task)
        return label_map(outputs, task, len(self.class_names), confidence_threshold)

    def visualize(
        self, image: np.ndarray, outputs: dict[str, Any], task: str, confidence_threshold: float = 0.5
    ) -> np.ndarray:
        """Draw the ``task`` output over the image with detectron2's Visualizer.

        Args:
            image: (H, W, 3) uint8 RGB, the image given to ``__call__``.
            outputs: its result.
            task: "semantic", "panoptic" or "instance".
            confidence_threshold: instances with a lower score are not drawn.

        Returns:
            (H, W, 3) uint8 RGB overlay.
        """
        self._check_task(outputs, task)
        return draw_overlay(image, outputs, task, self.metadata, confidence_threshold)

    def _check_task(self, outputs: dict[str, Any], task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if _OUTPUT_KEY[task] not in outputs:
            raise ValueError(f"the model produced no {task} output; enable MODEL.MASK_FORMER.TEST.{TASK_FLAGS[task]}")
