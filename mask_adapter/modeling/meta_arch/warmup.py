"""Stage 1 (ground-truth warmup): the adapter classifies ground-truth masks (SPEC §5.1).

Training: WARMUP_NUM_MASKS GT slots per image -> cross-entropy. Inference is the paper's "oracle" study: one
binary mask per label present in the test-time ``sem_seg`` ground truth is classified by the adapter.
"""
from typing import Any, Dict, List

import torch
from detectron2.config import CfgNode
from detectron2.modeling import META_ARCH_REGISTRY
from torch import Tensor

from ..adapter.pooling import classification_logits
from .base import ForwardState, OpenVocabMaskFormer
from .inference import mask2former_postprocess
from .training import gt_mask_losses
from ...utils.registry import register_once

__all__ = ["MaskAdapterWarmup", "oracle_semantic_inference"]

# Binary masks are handed to the panoptic/instance post-processing as logits of ±ORACLE_LOGIT (sigmoid ≈ 0 / 1).
ORACLE_LOGIT = 20.0


def oracle_semantic_inference(probs: Tensor, masks: Tensor) -> Tensor:
    """Official oracle semantic map (MUST, only to match the official oracle numbers; the argmax is unchanged).

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

    @classmethod
    def build_generator(cls, cfg: CfgNode, backbone) -> None:
        return None

    def propose_masks(self, state: ForwardState, batched_inputs: List[Dict[str, Any]]) -> Dict[str, Any]:
        if self.training:
            return {}
        return {"oracle_masks": [self._oracle_masks(state, x, i) for i, x in enumerate(batched_inputs)]}

    def _oracle_masks(self, state: ForwardState, x: Dict[str, Any], index: int) -> Tensor:
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

    def classify_masks(self, state: ForwardState, outputs: Dict[str, Any]) -> List[Tensor]:
        """Per image (Q_i, C + 1) softmax probabilities (the oracle uses probabilities, see postprocess)."""
        probs = []
        for i, masks in enumerate(outputs["oracle_masks"]):
            sub = state.image(i)
            emb = self.mask_embeddings(sub, masks[None])
            logits = classification_logits(emb, sub.adapter_text, self.backbone.logit_scale, state.num_templates)
            probs.append(logits[0].softmax(-1))
        return probs

    def losses(self, state: ForwardState, outputs: Dict[str, Any], batched_inputs: List[Dict[str, Any]]):
        return gt_mask_losses(self, state, outputs, batched_inputs)

    def postprocess(
        self, state: ForwardState, outputs: Dict[str, Any], logits: List[Tensor], batched_inputs: List[Dict[str, Any]]
    ) -> List[Dict[str, Any]]:
        from ..postprocess import resize_to_original

        opts = self.inference_options
        results = []
        for i, (probs, masks, x) in enumerate(zip(logits, outputs["oracle_masks"], batched_inputs)):
            image_size = state.images.image_sizes[i]
            height, width = x.get("height", image_size[0]), x.get("width", image_size[1])
            r: Dict[str, Any] = {}
            if opts.semantic_on:
                sem = oracle_semantic_inference(probs, masks)
                r["sem_seg"] = resize_to_original(sem, image_size, height, width)
            if opts.panoptic_on or opts.instance_on:
                sub = state.image(i)
                mask_logits = (masks * 2 - 1)[None] * ORACLE_LOGIT
                other = mask2former_postprocess(self, sub, mask_logits, probs.log()[None], [x])[0]
                r.update({k: v for k, v in other.items() if k != "sem_seg"})
            results.append(r)
        return results


register_once(META_ARCH_REGISTRY, MaskAdapterWarmup)
