"""Stage 1 (ground-truth warmup): the adapter classifies ground-truth masks.

Training: WARMUP_NUM_MASKS GT slots per image -> cross-entropy. Inference is the paper's "oracle" study: one
binary mask per label present in the test-time ``sem_seg`` ground truth is classified by the adapter.

Shapes as in ``base.py``; at inference Q is the largest number of labels of an image in the batch (smaller sets are
padded with empty masks, ``num_masks`` tells the real ones), masks are at the padded size H×W.
"""

from typing import Any, ClassVar

import torch
from detectron2.config import CfgNode
from detectron2.modeling import META_ARCH_REGISTRY
from torch import Tensor

from ...config.resolve import ArchDefaults
from ...utils.registry import register_once
from ..adapter.pooling import classification_logits
from ..postprocess import resize_to_original
from .base import ForwardState, OpenVocabMaskFormer
from .inference import mask2former_postprocess
from .state import Proposals
from .training import gt_mask_losses

__all__ = ["MaskAdapterWarmup", "oracle_semantic_inference"]

# Binary masks are handed around as mask logits of ±ORACLE_LOGIT (sigmoid ≈ 0 / 1; the sign is the mask).
ORACLE_LOGIT = 20.0


def oracle_semantic_inference(probs: Tensor, masks: Tensor) -> Tensor:
    """Official oracle semantic map (kept only to match the official oracle numbers; the argmax is unchanged).

    The class probabilities go through a *second* softmax, void is dropped, and the *binary* masks (not sigmoid
    probabilities) weight them: Σ_q softmax(probs_q)[:C] · mask_q.

    Args:
        probs: (Q, C + 1) softmax probabilities of the adapter logits.
        masks: (Q, H, W) binary masks.

    Returns:
        (C, H, W).
    """
    return torch.einsum("qc,qhw->chw", probs.softmax(-1)[:, :-1], masks.to(probs.dtype))


class MaskAdapterWarmup(OpenVocabMaskFormer):
    """GT masks are the proposals; trains the adapter and the void embedding. No generator is built."""

    # The official stage-1 mapper ignored INPUT.COLOR_AUG_SSD (kept).
    auto_defaults: ClassVar[ArchDefaults] = ArchDefaults(color_aug_ssd=False)

    @classmethod
    def build_generator(cls, cfg: CfgNode, backbone: Any) -> None:
        return None

    def propose_masks(self, state: ForwardState, batched_inputs: list[dict[str, Any]]) -> Proposals:
        """Inference: ±ORACLE_LOGIT logits (B, Q, H, W) of the ground-truth masks; training: no proposals (Q = 0),
        the losses sample the ground truth themselves."""
        hp, wp = state.images.tensor.shape[-2:]
        if self.training:
            empty = torch.zeros(len(batched_inputs), 0, hp, wp, device=self.device)
            return {"pred_masks": empty, "num_masks": [0] * len(batched_inputs)}
        per_image = [self._oracle_masks(state, x) for x in batched_inputs]
        num = [m.shape[0] for m in per_image]
        binary = torch.zeros(len(per_image), max([0] + num), hp, wp, device=self.device)
        for i, m in enumerate(per_image):
            binary[i, : m.shape[0]] = m
        return {"pred_masks": (binary * 2 - 1) * ORACLE_LOGIT, "num_masks": num}

    def _oracle_masks(self, state: ForwardState, x: dict[str, Any]) -> Tensor:
        """(Q, Hpad, Wpad) one binary mask per label of the image's ``sem_seg`` (ignore labels skipped)."""
        if "sem_seg" not in x:
            raise ValueError(
                "the ground-truth-mask model evaluates with the ground truth: each test input needs 'sem_seg' "
                "(use a dataset with semantic annotations)"
            )
        sem = x["sem_seg"].to(self.device)
        ignore = {255, 65535}
        labels = [int(v) for v in torch.unique(sem).tolist() if int(v) not in ignore]
        hp, wp = state.images.tensor.shape[-2:]
        masks = torch.zeros(len(labels), hp, wp, device=self.device)
        for q, label in enumerate(labels):
            masks[q, : sem.shape[0], : sem.shape[1]] = (sem == label).float()
        return masks

    def classify_masks(self, state: ForwardState, outputs: Proposals) -> Tensor:
        """(B, Q, C + 1) adapter logits of the ground-truth masks; each image is classified alone on its own masks
        (padding slots get zero logits)."""
        pred_masks = outputs["pred_masks"]
        num_columns = len(state.synonyms_per_class) + 1  # C + 1
        logits = pred_masks.new_zeros(pred_masks.shape[0], pred_masks.shape[1], num_columns)
        for i, n in enumerate(outputs["num_masks"]):
            if n == 0:
                continue
            sub = state.image(i)
            masks = (pred_masks[i : i + 1, :n] > 0).to(pred_masks.dtype)
            emb = self.mask_embeddings(sub, masks)
            logits[i, :n] = classification_logits(
                emb, sub.adapter_text, self.backbone.logit_scale, state.synonyms_per_class
            )[0]
        return logits

    def losses(
        self, state: ForwardState, outputs: Proposals, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, Tensor]:
        """Stage-1 cross-entropy on sampled ground-truth masks."""
        return gt_mask_losses(
            state,
            batched_inputs,
            embed=self.mask_embeddings,
            logit_scale=self.backbone.logit_scale,
            options=self.training_options,
        )

    def postprocess(
        self, state: ForwardState, outputs: Proposals, logits: Tensor, batched_inputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Oracle semantic map (``oracle_semantic_inference``); panoptic / instance outputs as every model's."""
        opts = self.inference_options
        results = []
        for i, (n, x) in enumerate(zip(outputs["num_masks"], batched_inputs)):
            probs = logits[i, :n].softmax(-1)
            mask_logits = outputs["pred_masks"][i : i + 1, :n]
            image_size = state.images.image_sizes[i]
            height, width = x.get("height", image_size[0]), x.get("width", image_size[1])
            r: dict[str, Any] = {}
            if opts.semantic_on:
                sem = oracle_semantic_inference(probs, (mask_logits[0] > 0).to(probs.dtype))
                r["sem_seg"] = resize_to_original(sem, image_size, height, width)
            if opts.panoptic_on or opts.instance_on:
                other = mask2former_postprocess(state.image(i), mask_logits, probs.log()[None], [x], opts)[0]
                r.update({k: v for k, v in other.items() if k != "sem_seg"})
            results.append(r)
        return results


register_once(META_ARCH_REGISTRY, MaskAdapterWarmup)
