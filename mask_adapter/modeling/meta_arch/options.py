"""Plain option records shared by the meta-architectures (built from a cfg in one place)."""

from dataclasses import dataclass

from detectron2.config import CfgNode

from ...config.resolve import ArchDefaults, resolve_cos_stop_grad, resolve_match_pred_threshold

__all__ = ["InferenceOptions", "MaskTrainingOptions"]


@dataclass(frozen=True)
class InferenceOptions:
    """Which outputs to produce and how (Mask2Former post-processing).

    ``postprocess_before_inference`` crops/resizes the mask logits to the original size *before* semantic
    inference. Kept from the official code, which turns it on whenever PANOPTIC_ON or INSTANCE_ON is set, which changes
    mIoU (see ``from_cfg``).
    """

    semantic_on: bool = True
    panoptic_on: bool = False
    instance_on: bool = False
    object_mask_threshold: float = 0.0
    overlap_threshold: float = 0.8
    postprocess_before_inference: bool = False
    detections_per_image: int = 100
    semantic_chunk: int = 0
    adapter_chunk: int = 0
    amp_dtype: str = "none"
    adapter_top_k: int = 0
    void_skip: str = "exact"

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> "InferenceOptions":
        """Options from a merged cfg."""
        t = cfg.MODEL.MASK_FORMER.TEST
        return cls(
            semantic_on=t.SEMANTIC_ON,
            panoptic_on=t.PANOPTIC_ON,
            instance_on=t.INSTANCE_ON,
            object_mask_threshold=t.OBJECT_MASK_THRESHOLD,
            overlap_threshold=t.OVERLAP_THRESHOLD,
            postprocess_before_inference=(t.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE or t.PANOPTIC_ON or t.INSTANCE_ON),
            detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
            semantic_chunk=t.SEMANTIC_CHUNK,
            adapter_chunk=cfg.MODEL.MASK_ADAPTER.INFERENCE_CHUNK,
            amp_dtype=str(cfg.MODEL.MASK_ADAPTER.AMP_DTYPE).lower(),
            adapter_top_k=cfg.MODEL.MASK_ADAPTER.ADAPTER_TOP_K,
            void_skip=str(cfg.MODEL.MASK_ADAPTER.VOID_SKIP).lower(),
        )


@dataclass(frozen=True)
class MaskTrainingOptions:
    """Mask sets, matcher and loss weights of the adapter's training (stages 1 and 2)."""

    class_weight: float = 2.0
    cos_weight: float = 5.0
    warmup_num_masks: int = 32
    num_gt_masks: int = 16
    num_pred_masks: int = 8
    iou_threshold: float = 0.7
    match_pred_threshold: float = 0.4
    cos_stop_grad: bool = True
    cos_skip_padding: bool = False
    seed: int = -1

    @classmethod
    def from_cfg(cls, cfg: CfgNode, defaults: ArchDefaults = ArchDefaults()) -> "MaskTrainingOptions":
        """Options from a merged cfg; ``defaults`` (the meta-architecture's ``auto_defaults``) resolve "auto"."""
        ma = cfg.MODEL.MASK_ADAPTER
        return cls(
            class_weight=cfg.MODEL.MASK_FORMER.CLASS_WEIGHT,
            cos_weight=ma.COS_WEIGHT,
            warmup_num_masks=ma.WARMUP_NUM_MASKS,
            num_gt_masks=ma.NUM_GT_MASKS,
            num_pred_masks=ma.NUM_PRED_MASKS,
            iou_threshold=ma.IOU_THRESHOLD,
            match_pred_threshold=resolve_match_pred_threshold(cfg, defaults),
            cos_stop_grad=resolve_cos_stop_grad(cfg, defaults),
            cos_skip_padding=ma.COS_LOSS_SKIP_PADDING,
            seed=cfg.SEED,
        )
