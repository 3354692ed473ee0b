"""The Python API: ``Segmenter.from_pretrained(name)`` and ``segmenter(image, vocabulary=..., task=...)``.

Example::

    from mask_adapter import Segmenter

    seg = Segmenter.from_pretrained("fcclip-l-ma")          # or "maftp-b-ma", "maftp-l-ma", "tiny", a checkpoint
    result = seg("photo.jpg", vocabulary="cat;dog,puppy;sky", task="panoptic")
    result.label_map          # (H, W) class id per pixel (void: result.void_label)
    result.segments           # [{"id", "category_id", "class_name", "score", "area", "bbox", "segmentation"}, ...]
    result.visualize()        # (H, W, 3) uint8 RGB overlay
    result.save("out/")       # photo_labels.png, photo_labels.json, photo_panoptic.png

Shapes: H×W the image the model segmented (the input, or its scaled copy when the longer side exceeds
``max_side``); C classes of the vocabulary.
"""

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata
from PIL import Image

from mask_adapter.api.config import build_cfg, is_random_tiny_model
from mask_adapter.api.images import DEFAULT_MAX_SIDE, read_image_rgb, to_rgb_uint8
from mask_adapter.api.predictor import (
    TASK_FLAGS,
    TASKS,
    VocabularyPredictor,
    draw_overlay,
    label_map,
    void_label,
)
from mask_adapter.checkpoint.hub import RELEASED_MODELS, resolve_weights
from mask_adapter.data.vocabulary import parse_inline_vocabulary, split_synonyms

__all__ = ["TINY_MODEL", "SegmentationResult", "Segmenter", "encode_rle"]

logger = logging.getLogger(__name__)

# The name of the random tiny test model (bundled config, no weights): fast, but its outputs are meaningless.
TINY_MODEL = "tiny"

ImageInput = str | os.PathLike | Image.Image | np.ndarray


def _model_names() -> str:
    return ", ".join([*RELEASED_MODELS, TINY_MODEL])


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO run-length encoding of a binary mask (pycocotools), with ``counts`` as a str (JSON-ready).

    Args:
        mask: (H, W) bool.

    Returns:
        ``{"size": [H, W], "counts": str}``; ``pycocotools.mask.decode`` restores the mask.
    """
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _bbox(mask: np.ndarray) -> list[int]:
    """[x, y, width, height] of the mask's pixels (COCO box; [0, 0, 0, 0] for an empty mask)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0, 0, 0, 0]
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """The segmentation of one image for one task.

    Attributes:
        image: (H, W, 3) uint8 RGB, the image the model segmented.
        task: "semantic", "panoptic" or "instance".
        class_names: the vocabulary, C class strings "name,synonym,..."; class id i is ``class_names[i]``.
        label_map: (H, W) class id per pixel (uint8 for up to 255 classes, else uint16); ``void_label`` where the
            task assigns no class (instance: the highest-scoring instance wins where instances overlap).
        segments: one dict per segment, JSON-ready:
            ``id`` (1, 2, ...), ``category_id`` (class id), ``class_name`` (the class's first name), ``synonyms``
            (all names of the class), ``score`` (semantic: the mean per-pixel score of the class over the segment;
            instance: the instance's score; panoptic: None, the panoptic output carries no score), ``area``
            (pixels), ``bbox`` ([x, y, width, height]), ``segmentation`` (COCO RLE ``{"size": [H, W], "counts":
            str}``; instance masks may overlap) and, for panoptic, ``isthing``. The model keeps no record of which
            synonym matched, so a segment names its class, not a synonym.
        void_label: the label-map value of pixels without a class (255, or 65535 above 255 classes).
        name: the stem of the saved files (the input file's stem, or "image").
    """

    image: np.ndarray
    task: str
    class_names: tuple[str, ...]
    label_map: np.ndarray
    segments: list[dict[str, Any]]
    void_label: int
    name: str = "image"
    _outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    _metadata: Metadata | None = field(default=None, repr=False)
    _confidence_threshold: float = field(default=0.5, repr=False)

    def visualize(self) -> np.ndarray:
        """The segmentation drawn over the image (detectron2's Visualizer, as the demo draws it).

        Returns:
            (H, W, 3) uint8 RGB.
        """
        return draw_overlay(self.image, self._outputs, self.task, self._metadata, self._confidence_threshold)

    def to_json(self) -> dict[str, Any]:
        """The label map's legend and the segments: task, void value, classes, synonyms, image size, segments."""
        return {
            "task": self.task,
            "void": self.void_label,
            "classes": {str(i): split_synonyms(c)[0].strip() for i, c in enumerate(self.class_names)},
            "synonyms": {str(i): [s.strip() for s in split_synonyms(c)] for i, c in enumerate(self.class_names)},
            "image_size": [int(self.label_map.shape[0]), int(self.label_map.shape[1])],
            "segments": self.segments,
        }

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write the label map, its JSON and the overlay into ``folder`` (created), each file atomically.

        Files (``<name>`` = :attr:`name`): ``<name>_labels.png`` (the label map), ``<name>_labels.json``
        (:meth:`to_json`) and ``<name>_<task>.png`` (:meth:`visualize`).

        Args:
            folder: the output folder.

        Returns:
            {"label_map": path, "json": path, "overlay": path}.
        """
        import json

        from mask_adapter.utils.atomic import atomic_save_image, atomic_write_text, ensure_output_dir

        out = Path(folder).expanduser()
        if out.exists() and not out.is_dir():
            raise ValueError(f"output folder {out} is an existing file; give a folder path (it is created if missing)")
        ensure_output_dir(str(out))
        paths = {
            "label_map": out / f"{self.name}_labels.png",
            "json": out / f"{self.name}_labels.json",
            "overlay": out / f"{self.name}_{self.task}.png",
        }
        atomic_save_image(str(paths["label_map"]), Image.fromarray(self.label_map))
        atomic_write_text(str(paths["json"]), json.dumps(self.to_json(), indent=1, ensure_ascii=False))
        atomic_save_image(str(paths["overlay"]), Image.fromarray(self.visualize()))
        return paths


def _segment(
    seg_id: int, class_id: int, mask: np.ndarray, score: float | None, class_names: Sequence[str]
) -> dict[str, Any]:
    names = [s.strip() for s in split_synonyms(class_names[class_id])]
    return {
        "id": seg_id,
        "category_id": class_id,
        "class_name": names[0],
        "synonyms": names,
        "score": None if score is None else float(score),
        "area": int(mask.sum()),
        "bbox": _bbox(mask),
        "segmentation": encode_rle(mask),
    }


def _segments(
    outputs: dict[str, Any], task: str, labels: np.ndarray, class_names: Sequence[str], threshold: float
) -> list[dict[str, Any]]:
    """The segments of a task output (see :class:`SegmentationResult`)."""
    segments: list[dict[str, Any]] = []
    if task == "semantic":
        scores = outputs["sem_seg"].detach().float().cpu().numpy()  # (C, H, W)
        for class_id in np.unique(labels).tolist():
            if class_id >= len(class_names):  # void
                continue
            mask = labels == class_id
            score = float(scores[class_id][mask].mean())
            segments.append(_segment(len(segments) + 1, class_id, mask, score, class_names))
    elif task == "panoptic":
        pan, infos = outputs["panoptic_seg"]
        pan = pan.detach().cpu().numpy()
        for info in infos:
            mask = pan == info["id"]
            if not mask.any():
                continue
            seg = _segment(len(segments) + 1, int(info["category_id"]), mask, info.get("score"), class_names)
            seg["isthing"] = bool(info.get("isthing", False))
            segments.append(seg)
    else:
        inst = outputs["instances"].to("cpu")
        order = torch.argsort(inst.scores, descending=True).tolist()
        for k in order:
            score = float(inst.scores[k])
            if score <= threshold:
                continue
            mask = inst.pred_masks[k].numpy().astype(bool)
            if not mask.any():
                continue
            segments.append(_segment(len(segments) + 1, int(inst.pred_classes[k]), mask, score, class_names))
    return segments


class Segmenter:
    """Open-vocabulary segmentation of single images with any vocabulary; build it with :meth:`from_pretrained`.

    Args:
        predictor: the model with its config (every task of ``tasks`` enabled in the config).
        name: what the model was loaded from (for messages).
        tasks: the tasks the config enables.
        confidence_threshold: instances scoring at most this are left out (instance task).
        max_side: images whose longer side exceeds it are scaled down to it first (with a warning).
    """

    def __init__(
        self,
        predictor: VocabularyPredictor,
        *,
        name: str = "",
        tasks: Sequence[str] = TASKS,
        confidence_threshold: float = 0.5,
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> None:
        self.predictor = predictor
        self.name = name
        self.tasks = tuple(tasks)
        self.confidence_threshold = confidence_threshold
        self.max_side = max_side
        self._default_vocabulary: tuple[list[str], list[int]] | None = None
        self._last: tuple[tuple[Any, ...], dict[str, Any]] | None = None  # (image and vocabulary, model outputs)

    @property
    def cfg(self) -> CfgNode:
        """The model's frozen config."""
        return self.predictor.cfg

    @property
    def class_names(self) -> tuple[str, ...]:
        """The vocabulary of the last call (class strings "name,synonym,...")."""
        return self.predictor.class_names

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        config_file: str | os.PathLike | None = None,
        device: str | None = None,
        *,
        tasks: Sequence[str] = TASKS,
        cache_dir: str | os.PathLike | None = None,
        opts: Sequence[str] = (),
        trust_pickle: bool = False,
        confidence_threshold: float = 0.5,
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> "Segmenter":
        """Build a model and load its weights.

        Args:
            name_or_path: a released model (``fcclip-l-ma``, ``maftp-b-ma``, ``maftp-l-ma``; downloaded once into
                the model-hub cache), ``"tiny"`` (the random tiny test model: no weights, meaningless outputs,
                seeded so every build is the same) or a checkpoint file / URL (then ``config_file`` is needed).
            config_file: the YAML config; default: the released model's packaged config, or the tiny config.
            device: "cpu", "cuda", "cuda:1", ...; default: the config's MODEL.DEVICE, or the CPU without a GPU.
            tasks: the tasks to enable (each call chooses one of them).
            cache_dir: model-hub cache for released models (default: $HF_HUB_CACHE, else $HF_HOME/hub, ...).
            opts: config overrides KEY VALUE ...
            trust_pickle: allow checkpoints holding pickled objects (this runs code from the file).
            confidence_threshold: instances scoring at most this are left out.
            max_side: longer image side above which inputs are scaled down.

        Returns:
            The segmenter.

        Raises:
            ValueError: an unknown model name or task, a checkpoint without ``config_file``, a bad device or
                config override (one-line messages naming the fix).
            FileNotFoundError: a missing config file.
        """
        name = os.fspath(name_or_path)
        bad = [t for t in tasks if t not in TASKS]
        if bad or not tasks:
            raise ValueError(f"unknown task {bad[0] if bad else None!r}; choose from {', '.join(TASKS)}")
        if name == TINY_MODEL:
            weights = ""
        elif name in RELEASED_MODELS:
            weights = name
        elif os.path.isfile(name) or name.startswith(("http://", "https://")):
            if config_file is None:
                raise ValueError(
                    f"checkpoint {name} needs its model config: pass config_file=<the YAML it was trained with> "
                    f"(or use a released model name: {', '.join(RELEASED_MODELS)})"
                )
            weights = name
        else:
            raise ValueError(
                f"unknown model {name!r}: not a released model name, {TINY_MODEL!r} or an existing checkpoint file; "
                f"choose one of {_model_names()} or give a checkpoint path"
            )
        opts = list(opts)
        if device is not None:
            if str(device).startswith("cuda") and not torch.cuda.is_available():
                raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
            opts += ["MODEL.DEVICE", str(device)]
        cfg = build_cfg(
            config_file=None if config_file is None else os.fspath(config_file),
            weights=weights,
            opts=opts,
            tasks=tasks,
        )
        weights_file = resolve_weights(weights, None if cache_dir is None else os.fspath(cache_dir)) if weights else ""
        cfg.defrost()
        cfg.MODEL.WEIGHTS = weights_file
        cfg.freeze()
        if is_random_tiny_model(cfg) and not weights_file:
            logger.warning(
                "the tiny RANDOM model (%s): its segmentation is meaningless", cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random weights (tiny model, layers without weights) are the same on every build
            predictor = VocabularyPredictor(cfg, allow_pickle=trust_pickle)
        return cls(predictor, name=name, tasks=tasks, confidence_threshold=confidence_threshold, max_side=max_side)

    # ------------------------------------------------------------------------------------------------ inputs
    def _image(self, image: ImageInput) -> tuple[np.ndarray, str]:
        """(H, W, 3) uint8 RGB (scaled to ``max_side``) and the stem of the saved files."""
        if isinstance(image, str | os.PathLike):
            path = os.fspath(image)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"image not found: {path}; give an existing image file")
            rgb = read_image_rgb(path, max_side=self.max_side)
            return rgb, Path(path).stem
        if isinstance(image, Image.Image):
            rgb = to_rgb_uint8(image)
        elif isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(
                    f"image array of shape {image.shape} and dtype {image.dtype}; give an (H, W, 3) uint8 RGB array"
                )
            rgb = np.ascontiguousarray(image)
        else:
            raise TypeError(
                f"image of type {type(image).__name__}; give a file path, a PIL image or an (H, W, 3) uint8 array"
            )
        if min(rgb.shape[:2]) == 0:
            raise ValueError(f"image of shape {rgb.shape} has no pixels; give a non-empty image")
        if max(rgb.shape[:2]) > self.max_side:
            h, w = rgb.shape[:2]
            scale = self.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            logger.warning("image of %dx%d scaled to %dx%d (max_side %d)", w, h, size[0], size[1], self.max_side)
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        return rgb, "image"

    def _vocabulary(self, vocabulary: str | Sequence[str] | None) -> tuple[list[str], list[int]]:
        if vocabulary is None:
            if self._default_vocabulary is None:
                from mask_adapter.api.vocabulary import default_vocabulary

                self._default_vocabulary = default_vocabulary(self.cfg)
            return self._default_vocabulary
        if isinstance(vocabulary, str):
            names = parse_inline_vocabulary(vocabulary)
        else:
            names = [str(c).strip() for c in vocabulary]
            if not names:
                raise ValueError("empty vocabulary; give classes like 'cat;dog,puppy;sky' or ['cat', 'dog,puppy']")
            parse_inline_vocabulary(";".join(names))  # the same checks: empty names, duplicates
        return names, list(range(len(names)))

    # ------------------------------------------------------------------------------------------------ call
    def __call__(
        self,
        image: ImageInput,
        vocabulary: str | Sequence[str] | None = None,
        task: str = "semantic",
    ) -> SegmentationResult:
        """Segment one image.

        Args:
            image: a file path, a PIL image or an (H, W, 3) uint8 RGB array.
            vocabulary: classes inline ("cat;dog,puppy;sky": ";" or "|" between classes, "," between synonyms, the
                first name is the label) or as a list of class strings; None: the model's default vocabulary
                (Pascal VOC's 20 classes for the tiny model). Every given class counts as a thing (instances).
            task: "semantic", "panoptic" or "instance".

        Returns:
            The result; its label map has the image's (H, W).

        Raises:
            ValueError: an unknown task, an empty or malformed vocabulary, an unusable image array.
            FileNotFoundError: a missing image file.
            mask_adapter.api.images.ImageReadError: a file that is not a readable image.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if task not in self.tasks:
            raise ValueError(
                f"task {task!r} is not enabled (MODEL.MASK_FORMER.TEST.{TASK_FLAGS[task]}); build the segmenter "
                f"with tasks including {task!r}"
            )
        names, things = self._vocabulary(vocabulary)
        rgb, stem = self._image(image)
        current = self.predictor.model.test_vocabulary
        if current is None or (tuple(current.class_names), set(current.thing_ids)) != (tuple(names), set(things)):
            self.predictor.set_vocabulary(names, things)
        key = (hashlib.sha1(rgb.tobytes()).hexdigest(), rgb.shape, tuple(names), tuple(things))
        if self._last is not None and self._last[0] == key:
            outputs = self._last[1]  # the same image and vocabulary: another task of the same forward pass
        else:
            self._last = None  # free the previous outputs first
            outputs = self.predictor(rgb)
            self._last = (key, outputs)
        labels = label_map(outputs, task, len(names), self.confidence_threshold)
        segments = _segments(outputs, task, labels, names, self.confidence_threshold)
        return SegmentationResult(
            image=rgb,
            task=task,
            class_names=tuple(names),
            label_map=labels,
            segments=segments,
            void_label=void_label(len(names)),
            name=stem,
            _outputs=outputs,
            _metadata=self.predictor.metadata,
            _confidence_threshold=self.confidence_threshold,
        )

    def __repr__(self) -> str:
        return f"Segmenter({self.name!r}, tasks={self.tasks}, device={self.cfg.MODEL.DEVICE!r})"
