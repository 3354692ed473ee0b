"""Training-free path (experimental): masks of an automatic SAM / SAM2 mask generator are the proposals.

This path exists only in the authors' online demo, not in the official implementation. The generator masks of
FC-CLIP / MAFT+ are replaced by the masks of an automatic mask
generator; the same frozen CLIP and trained Mask-Adapter classify them. Out-of-vocabulary logits only: no
geometric ensemble and no void class (its column is set to -inf). Overlapping masks are resolved per pixel by
the Mask2Former post-processing: semantic = per-pixel sum of class probabilities × mask; panoptic = each pixel
goes to the mask with the highest score. There are no reported numbers for this path, and SAM masks are often
finer than semantic categories (parts, sub-regions).

Shapes:
    B images;  Q masks (per batch: the largest per-image count, smaller images padded with empty masks)
    C classes (the logits carry C + 1 columns, the void column is -inf)
    H×W the padded image;  H_i×W_i image i before padding (the size the mask generator sees)

Mask generators follow segment_anything's ``SamAutomaticMaskGenerator`` interface: ``generate(image)`` with an
(H_i, W_i, 3) uint8 RGB array returns a list of dicts, each with "segmentation" (H_i, W_i) bool and optionally
"area", "predicted_iou", "stability_score", ... Any object with that method can be injected.

The mask source is MODEL.SAM.SOURCE (``mask_adapter.modeling.mask_generators``): "sam" (package ``segment-anything``,
MODEL.SAM.MODEL_TYPE "vit_b" / "vit_l" / "vit_h", MODEL.SAM.CHECKPOINT; demo ``--masks sam --sam-checkpoint``) or
"sam2" (package ``sam2``, MODEL.SAM2.CONFIG e.g. "sam2.1_hiera_l", MODEL.SAM2.CHECKPOINT; demo ``--masks sam2
--sam2-config --sam2-checkpoint``). The generator settings MODEL.SAM.POINTS_PER_SIDE / PRED_IOU_THRESH /
STABILITY_SCORE_THRESH / MIN_MASK_REGION_AREA apply to both. No weights are bundled.
"""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ...config.resolve import resolve_cdt_variant, resolve_dense_projection
from ...utils.registry import register_once
from ..mask_generators import MaskGenerator, build_sam_mask_generator, mask_generator_from_cfg, mask_source
from .base import ForwardState, OpenVocabMaskFormer
from .inference import mask2former_postprocess
from .state import Proposals

logger = logging.getLogger(__name__)

__all__ = [
    "SAMMaskAdapter",
    "MaskGenerator",
    "build_sam_mask_generator",
    "masks_from_records",
    "to_sam_config",
    "SAM_MASK_LOGIT",
]

# Binary SAM masks are handed to the adapter and the post-processing as logits of ±SAM_MASK_LOGIT.
SAM_MASK_LOGIT = 20.0


def masks_from_records(records: Sequence[dict[str, Any]], height: int, width: int) -> Tensor:
    """Stack a mask generator's output into binary masks, largest first, empty masks dropped.

    Args:
        records: list of dicts with "segmentation" (height, width) bool arrays (SAM's "binary_mask" mode).
        height, width: the size of the image given to the generator.

    Returns:
        (Q, height, width) bool, sorted by decreasing area.
    """
    masks = []
    for i, r in enumerate(records):
        if "segmentation" not in r:
            raise ValueError(
                f"mask generator output {i} has no 'segmentation' (keys {sorted(r)}); use the generator's "
                "output_mode='binary_mask'"
            )
        seg = torch.as_tensor(np.asarray(r["segmentation"]), dtype=torch.bool)
        if tuple(seg.shape) != (height, width):
            raise ValueError(
                f"mask generator output {i} has size {tuple(seg.shape)}, but the image is {(height, width)}"
            )
        if seg.any():
            masks.append(seg)
    if not masks:
        return torch.zeros(0, height, width, dtype=torch.bool)
    stacked = torch.stack(masks)
    order = torch.argsort(stacked.flatten(1).sum(1), descending=True, stable=True)
    return stacked[order]


def to_sam_config(
    cfg: CfgNode, checkpoint: str | None = None, *, source: str | None = None, model: str | None = None
) -> CfgNode:
    """A copy of an FC-CLIP / MAFT+ / stage-1 config that runs the SAM path with the same CLIP and adapter.

    The dense projection and the use of MAFT+'s CDT are pinned to what the original meta-architecture used
    (a MAFT+ adapter was trained on the ``maftp_scrambled`` input and CDT-transferred text rows), expressed with
    the MAFT keys stage 1 uses (MODEL.MASK_ADAPTER.TRAIN_MAFT, DENSE_PROJECTION). The CDT variant is pinned too,
    so that turning on PANOPTIC_ON later does not change it.

    Args:
        cfg: a merged config (not frozen or frozen; it is not modified).
        checkpoint: weights of the mask source (MODEL.SAM.CHECKPOINT / MODEL.SAM2.CHECKPOINT), or None to keep the
            config's value.
        source: mask source, "sam" or "sam2" (MODEL.SAM.SOURCE); None keeps the config's.
        model: the source's model (MODEL.SAM.MODEL_TYPE / MODEL.SAM2.CONFIG); None keeps the config's.

    Returns:
        The new config with MODEL.META_ARCHITECTURE "SAMMaskAdapter".
    """
    name = cfg.MODEL.META_ARCHITECTURE
    arch = META_ARCH_REGISTRY.get(name) if name in META_ARCH_REGISTRY else OpenVocabMaskFormer
    if not issubclass(arch, OpenVocabMaskFormer):
        arch = OpenVocabMaskFormer
    out = cfg.clone()
    out.defrost()
    maft = bool(arch.uses_cdt(cfg))
    out.MODEL.MASK_ADAPTER.DENSE_PROJECTION = resolve_dense_projection(cfg, arch.auto_defaults)
    out.MODEL.MASK_ADAPTER.CDT_VARIANT = resolve_cdt_variant(cfg)
    out.MODEL.MASK_ADAPTER.TRAIN_MAFT = maft
    out.MODEL.META_ARCHITECTURE = "SAMMaskAdapter"
    if source is not None:
        out.MODEL.SAM.SOURCE = source
    mask_source(out.MODEL.SAM.SOURCE).configure(out, model=model, checkpoint=checkpoint)
    return out


class SAMMaskAdapter(OpenVocabMaskFormer):
    """Automatic SAM / SAM2 masks classified by the Mask-Adapter (inference only: built in eval mode, and
    ``train(True)`` raises; no generator is built).

    Checkpoints of FCCLIP / MAFT_Plus load into it (``sem_seg_head.*`` is reported as unused). With
    MODEL.MASK_ADAPTER.TRAIN_MAFT (set by :func:`to_sam_config` for MAFT+ configs) the adapter's text rows go
    through the CDT, as in MAFT+.

    Args:
        mask_generator: object with ``generate(image) -> list of {"segmentation": ...}``; from a cfg it is built
            for MODEL.SAM.SOURCE unless given (``SAMMaskAdapter(cfg, mask_generator=...)``). It is not a
            sub-module: its weights are not part of this model's state dict, and it runs on its own device.
        (others: see ``OpenVocabMaskFormer``)
    """

    @configurable
    def __init__(self, *, mask_generator: MaskGenerator, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(getattr(mask_generator, "generate", None)):
            raise TypeError(
                f"mask_generator must have a generate(image) method (like SamAutomaticMaskGenerator), got "
                f"{type(mask_generator).__name__}"
            )
        self.mask_generator = mask_generator
        self.eval()

    def train(self, mode: bool = True) -> "SAMMaskAdapter":
        """Only eval mode exists: the SAM path is training-free."""
        if mode:
            raise ValueError(
                "SAMMaskAdapter is training-free (inference only); train the adapter with FCCLIP / MAFT_Plus / "
                "MASK_Adapter and load those weights here"
            )
        return super().train(False)

    @classmethod
    def from_config(cls, cfg: CfgNode, mask_generator: MaskGenerator | None = None) -> dict[str, Any]:
        args = super().from_config(cfg)
        if mask_generator is None:
            mask_generator = mask_generator_from_cfg(cfg)
        args["mask_generator"] = mask_generator
        args["trainable"] = ()
        return args

    @classmethod
    def build_generator(cls, cfg: CfgNode, backbone) -> None:
        return None

    def propose_masks(self, state: ForwardState, batched_inputs: list[dict[str, Any]]) -> Proposals:
        """Run the mask generator on each (resized, unpadded) image.

        Returns:
            {"pred_masks": (B, Q, H/4, W/4) ±SAM_MASK_LOGIT logits (a pixel is on where over half of its 4×4
            cell is covered; a mask that would vanish keeps every cell it touches), "sam_masks": (B, Q, H, W) bool at full resolution, "num_masks": masks per image}.
        """
        hp, wp = state.images.tensor.shape[-2:]
        per_image = []
        for x, (h, w) in zip(batched_inputs, state.images.image_sizes):
            image = x["image"][:, :h, :w].permute(1, 2, 0).to("cpu", torch.uint8).numpy()
            with torch.no_grad():
                records = self.mask_generator.generate(np.ascontiguousarray(image))
            per_image.append(masks_from_records(records, h, w))
        num = [m.shape[0] for m in per_image]
        q = max([1] + num)  # one empty slot keeps the shapes valid when nothing was found
        full = torch.zeros(len(per_image), q, hp, wp, dtype=torch.bool, device=self.device)
        for i, m in enumerate(per_image):
            full[i, : m.shape[0], : m.shape[1], : m.shape[2]] = m.to(self.device)
        frac = F.interpolate(full.float(), size=(hp // 4, wp // 4), mode="area")
        coarse = frac > 0.5
        vanished = ~coarse.flatten(2).any(-1)  # masks thinner than a 4×4 cell keep every touched cell
        coarse[vanished] = frac[vanished] > 0
        return {"pred_masks": self._as_logits(coarse), "sam_masks": full, "num_masks": num}

    @staticmethod
    def _as_logits(masks: Tensor) -> Tensor:
        return (masks.float() * 2.0 - 1.0) * SAM_MASK_LOGIT

    def classify_masks(self, state: ForwardState, outputs: Proposals) -> Tensor:
        """Adapter (or mask-pooling) logits of the SAM masks, (B, Q, C + 1), void column -inf (no void class)."""
        logits = self.out_vocab_logits(state, outputs["pred_masks"])
        logits[..., -1] = float("-inf")
        return logits

    def postprocess(
        self, state: ForwardState, outputs: Proposals, logits: Tensor, batched_inputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Mask2Former post-processing per image on its own full-resolution SAM masks (±SAM_MASK_LOGIT logits).

        Padding slots are left out. Pixels covered by no mask get zero semantic scores for every class and no
        panoptic segment; an image without masks gets all-zero scores and no segments or instances.
        """
        results = []
        for i, (x, n) in enumerate(zip(batched_inputs, outputs["num_masks"])):
            image_size = state.images.image_sizes[i]
            if n == 0:
                results.append(self._empty_result(x, image_size, logits.shape[-1] - 1))
                continue
            sub = state.image(i)
            masks = self._as_logits(outputs["sam_masks"][i : i + 1, :n])
            results.extend(mask2former_postprocess(sub, masks, logits[i : i + 1, :n], [x], self.inference_options))
        return results

    def _empty_result(self, x: dict[str, Any], image_size: Sequence[int], num_classes: int) -> dict[str, Any]:
        """Outputs of an image on which the mask generator found nothing (same keys as with masks)."""
        opts = self.inference_options
        height, width = x.get("height", image_size[0]), x.get("width", image_size[1])
        r: dict[str, Any] = {}
        if opts.semantic_on:
            r["sem_seg"] = torch.zeros(num_classes, height, width, device=self.device)
        if opts.panoptic_on:
            r["panoptic_seg"] = (torch.zeros(height, width, dtype=torch.int32, device=self.device), [])
        if opts.instance_on:
            inst = Instances((height, width))
            inst.pred_masks = torch.zeros(0, height, width, dtype=torch.bool, device=self.device)
            inst.pred_boxes = Boxes(torch.zeros(0, 4, device=self.device))
            inst.scores = torch.zeros(0, device=self.device)
            inst.pred_classes = torch.zeros(0, dtype=torch.long, device=self.device)
            r["instances"] = inst
        return r

    def losses(
        self, state: ForwardState, outputs: Proposals, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, Tensor]:
        raise ValueError("SAMMaskAdapter is training-free (inference only)")


register_once(META_ARCH_REGISTRY, SAMMaskAdapter)
