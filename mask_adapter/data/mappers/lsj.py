"""Large-scale-jitter (LSJ) training mappers: ``coco_panoptic_lsj`` and ``mask_former_semantic``.

Both share :class:`LSJDatasetMapper`: read the image (and the semantic map when the record has one), apply
[random flip] + ResizeScale(MIN_SCALE, MAX_SCALE, IMAGE_SIZE x IMAGE_SIZE) + FixedSizeCrop(IMAGE_SIZE)
[+ SSD colour jitter], and return, for an IMAGE_SIZE = S crop:

- "image": (3, S, S) uint8 tensor in ``INPUT.FORMAT`` channel order (padding = 128);
- "sem_seg": (S, S) int64 tensor when the record has ``sem_seg_file_name`` (padding = ignore label);
- "instances": ``Instances`` of size (S, S) with ``gt_classes`` (N,) int64, ``gt_masks`` (N, S, S) bool and
  ``gt_boxes``; subclasses differ only in :meth:`build_instances`.

Deliberate difference: resize and crop always run; the official stage-2 copy skipped them when
``INPUT.RANDOM_FLIP`` was "none" (no effect on the official configs). Kept from the official code: callers pass
``ignore_color_aug=True`` under the stage-1 ``MASK_Adapter`` model, whose official
mapper ignored ``INPUT.COLOR_AUG_SSD``, and ``mask_former_semantic`` is this LSJ version in every official
package, not Mask2Former's crop-based semantic mapper.
"""

import copy
import logging
from typing import Any

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances

from .color_aug import ColorAugSSD

__all__ = [
    "build_lsj_augmentations",
    "LSJDatasetMapper",
    "COCOPanopticLSJMapper",
    "MaskFormerSemanticMapper",
]

logger = logging.getLogger(__name__)


def build_lsj_augmentations(cfg, *, ignore_color_aug: bool = False, seg_pad_value: int = 255) -> list[Any]:
    """LSJ augmentations from ``cfg.INPUT``.

    Args:
        cfg: config with INPUT.RANDOM_FLIP, IMAGE_SIZE, MIN_SCALE, MAX_SCALE, COLOR_AUG_SSD, FORMAT.
        ignore_color_aug: drop the SSD colour jitter even when COLOR_AUG_SSD is set (stage 1, as officially).
        seg_pad_value: value padded into semantic maps (the dataset's ignore label).

    Returns:
        A list of detectron2 augmentations/transforms.
    """
    size = cfg.INPUT.IMAGE_SIZE
    augs: list[Any] = []
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    augs += [
        T.ResizeScale(
            min_scale=cfg.INPUT.MIN_SCALE,
            max_scale=cfg.INPUT.MAX_SCALE,
            target_height=size,
            target_width=size,
        ),
        T.FixedSizeCrop(crop_size=(size, size), seg_pad_value=seg_pad_value),
    ]
    if cfg.INPUT.COLOR_AUG_SSD and not ignore_color_aug:
        augs.append(ColorAugSSD(img_format=cfg.INPUT.FORMAT))
    return augs


def _with_seg_pad(transforms: T.TransformList, value: int) -> T.TransformList:
    """Copy of ``transforms`` whose padding writes ``value`` into segmentations (0 = void for panoptic PNGs)."""
    out = []
    for t in transforms.transforms:
        if isinstance(t, T.PadTransform):
            t = T.PadTransform(t.x0, t.y0, t.x1, t.y1, t.orig_w, t.orig_h, t.pad_value, seg_pad_value=value)
        out.append(t)
    return T.TransformList(out)


def _instances(image_size, classes: list[int], masks: list[np.ndarray]) -> Instances:
    inst = Instances(image_size)
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    if masks:
        bit = BitMasks(torch.stack([torch.from_numpy(np.ascontiguousarray(m)) for m in masks]))
        inst.gt_masks = bit.tensor
        inst.gt_boxes = bit.get_bounding_boxes()
    else:
        inst.gt_masks = torch.zeros((0, *image_size), dtype=torch.bool)
        inst.gt_boxes = Boxes(torch.zeros((0, 4)))
    return inst


class LSJDatasetMapper:
    """Base LSJ mapper: image (+ semantic map) augmentation; subclasses implement :meth:`build_instances`."""

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: list[Any],
        image_format: str,
        ignore_label: int = 255,
    ) -> None:
        """
        Args:
            is_train: training mode (targets are built); otherwise only the image is augmented.
            augmentations: see :func:`build_lsj_augmentations`.
            image_format: INPUT.FORMAT ("RGB"/"BGR").
            ignore_label: ignore value of the semantic maps (also their padding value).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.ignore_label = ignore_label
        logger.info("[%s] augmentations: %s", type(self).__name__, augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, *, ignore_color_aug: bool = False) -> dict[str, Any]:
        ignore_label = 255
        if cfg.DATASETS.TRAIN:
            ignore_label = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).get("ignore_label", 255)
        return {
            "is_train": is_train,
            "augmentations": build_lsj_augmentations(
                cfg, ignore_color_aug=ignore_color_aug, seg_pad_value=ignore_label
            ),
            "image_format": cfg.INPUT.FORMAT,
            "ignore_label": ignore_label,
        }

    def build_instances(
        self,
        dataset_dict: dict[str, Any],
        transforms: T.TransformList,
        image_size,
        sem_seg: np.ndarray | None,
    ) -> Instances:
        """Ground-truth masks of one augmented image (overridden by subclasses)."""
        raise NotImplementedError

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        """Map one dataset dict (detectron2 standard format) to the model input described in the module doc."""
        d = copy.deepcopy(dataset_dict)
        image = utils.read_image(d["file_name"], format=self.image_format)
        utils.check_image_size(d, image)
        sem_seg = None
        if "sem_seg_file_name" in d:
            sem_seg = utils.read_image(d.pop("sem_seg_file_name"))
            # 8-bit maps stay uint8 so they are resized by PIL exactly like the panoptic PNG (torch's "nearest"
            # picks different pixels); 16-bit maps (65535 ignore) go through torch as float64.
            if sem_seg.dtype != np.uint8 or self.ignore_label > 255:
                sem_seg = sem_seg.astype("double")
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            d["sem_seg"] = torch.as_tensor(sem_seg.astype("long"))
        if not self.is_train:
            for key in ("annotations", "pan_seg_file_name", "segments_info"):
                d.pop(key, None)
            return d
        d["instances"] = self.build_instances(d, transforms, image.shape[:2], sem_seg)
        d.pop("annotations", None)
        return d


class COCOPanopticLSJMapper(LSJDatasetMapper):
    """``coco_panoptic_lsj``: one GT mask per non-crowd segment of the panoptic PNG (contiguous class ids).

    Segments that the crop removed entirely are dropped (the official mapper kept them as empty masks, which
    carry no target pixels and would take GT slots of the adapter).
    """

    def build_instances(self, dataset_dict, transforms, image_size, sem_seg) -> Instances:
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"coco_panoptic_lsj needs panoptic records (pan_seg_file_name); {dataset_dict['file_name']} has "
                "none; use a *_panoptic_* training set or INPUT.DATASET_MAPPER_NAME 'mask_former_semantic'"
            )
        pan = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        pan = _with_seg_pad(transforms, 0).apply_segmentation(pan).astype(np.int64)
        pan_ids = pan[:, :, 0] + 256 * pan[:, :, 1] + 256 * 256 * pan[:, :, 2]
        classes, masks = [], []
        for seg in dataset_dict.pop("segments_info"):
            mask = pan_ids == seg["id"]
            if not seg.get("iscrowd", 0) and mask.any():
                classes.append(seg["category_id"])
                masks.append(mask)
        return _instances(image_size, classes, masks)


class MaskFormerSemanticMapper(LSJDatasetMapper):
    """``mask_former_semantic`` (LSJ version): one GT mask per class present in the semantic map, ignore skipped."""

    def build_instances(self, dataset_dict, transforms, image_size, sem_seg) -> Instances:
        if sem_seg is None:
            raise ValueError(
                f"mask_former_semantic needs semantic records (sem_seg_file_name); {dataset_dict['file_name']} "
                "has none; use a *_sem_seg_* or *_panoptic_with_sem_seg training set"
            )
        labels = sem_seg.astype(np.int64)
        classes = [int(c) for c in np.unique(labels) if c != self.ignore_label]
        return _instances(image_size, classes, [labels == c for c in classes])
