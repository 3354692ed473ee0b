"""FC-CLIP and MAFT+ with the Mask-Adapter: generator masks, adapter logits, geometric ensemble."""

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.utils.logger import log_every_n_seconds
from torch import Tensor

from ...config.resolve import ArchDefaults
from ...utils.registry import register_once
from .base import ForwardState, OpenVocabMaskFormer
from .inference import SkippedQueries, geometric_ensemble, mask2former_postprocess
from .state import Proposals
from .void_skip import skippable_queries, void_probability

logger = logging.getLogger(__name__)

__all__ = ["FCCLIP", "MAFTPlus"]


class FCCLIP(OpenVocabMaskFormer):
    """FC-CLIP generator + Mask-Adapter: in-vocabulary logits from the decoder, out-of-vocabulary logits from the
    adapter on the binarised predicted masks, fused by the geometric ensemble; void from the generator.

    At inference with MODEL.MASK_ADAPTER.VOID_SKIP "exact" (default) the adapter runs only for queries an output can
    use: queries with void probability > 0.5 are skipped for panoptic inference (identical output), the semantic
    output runs the adapter for the skipped queries its argmax needs (identical argmax), and with instance
    inference on every query runs (see ``void_skip.py``). ``last_void_skip`` holds the counts of the last forward
    (queries, run, skipped, second_pass); the log reports running totals. "none" runs every query.

    Args:
        ensemble_alpha / ensemble_beta: out-of-vocabulary weights for seen / unseen classes (α, β). Negative values
            (as in original MAFT+ configs) use the out-of-vocabulary logits alone.
        (others: see ``OpenVocabMaskFormer``)
    """

    @configurable
    def __init__(self, *, ensemble_alpha: float, ensemble_beta: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ensemble_alpha = ensemble_alpha
        self.ensemble_beta = ensemble_beta
        self.last_void_skip: dict[str, int] = {}
        self._void_skip_totals = {"queries": 0, "run": 0, "skipped": 0, "second_pass": 0}

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        args = super().from_config(cfg)
        args["ensemble_alpha"] = cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA
        args["ensemble_beta"] = cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA
        args["trainable"] = cls.trainable_parameters()
        return args

    @classmethod
    def trainable_parameters(cls) -> Sequence[str]:
        """FC-CLIP trains the adapter and the void embedding (the official code freezes only the generator)."""
        return ("mask_adapter.", "void_embedding.")

    def void_skip_plan(self, outputs: Proposals) -> Tensor | None:
        """(B, Q) bool: queries whose adapter is skipped at first; None when every query runs."""
        opts = self.inference_options
        if (
            self.training
            or opts.void_skip != "exact"
            or opts.instance_on
            or opts.adapter_top_k > 0
            or self.out_vocab_classifier != "adapter"
            or self.ensemble_alpha < 0
            or self.ensemble_beta < 0
            or "pred_logits" not in outputs
            or "num_masks" in outputs
        ):
            return None
        return skippable_queries(outputs["pred_logits"])

    def _ensemble(self, state: ForwardState, in_logits: Tensor, out_logits: Tensor) -> Tensor:
        if self.ensemble_alpha < 0 or self.ensemble_beta < 0:
            return out_logits
        return geometric_ensemble(
            in_logits, out_logits, self.seen_mask(state.vocabulary), self.ensemble_alpha, self.ensemble_beta
        )

    def classify_masks(self, state: ForwardState, outputs: Proposals) -> Tensor:
        skipped = self.void_skip_plan(outputs)
        if skipped is None or not bool(skipped.any()):  # nothing to skip: the plain computation, no gather
            return self._ensemble(state, outputs["pred_logits"], self.out_vocab_logits(state, outputs["pred_masks"]))
        in_logits, masks = outputs["pred_logits"], outputs["pred_masks"]
        runs = [(~row).nonzero().flatten() for row in skipped]
        width = max(int(r.numel()) for r in runs)
        out_logits = in_logits.clone()  # stand-in of skipped queries: the generator's class distribution
        if width > 0:
            # One batched adapter call; short rows repeat their first query (deduplicated by the adapter).
            index = torch.stack(
                [torch.cat([r, r[:1].expand(width - r.numel())]) if r.numel() else r.new_zeros(width) for r in runs]
            )
            chosen = torch.gather(masks, 1, index[..., None, None].expand(-1, -1, *masks.shape[-2:]))
            logits = self.out_vocab_logits(state, chosen)
            for b, r in enumerate(runs):
                out_logits[b, r] = logits[b, : r.numel()].to(out_logits.dtype)
        num_run = sum(int(r.numel()) for r in runs)
        self.last_void_skip = {
            "queries": skipped.numel(),
            "run": num_run,
            "skipped": skipped.numel() - num_run,
            "second_pass": 0,
        }
        return self._ensemble(state, in_logits, out_logits)

    def postprocess(
        self, state: ForwardState, outputs: Proposals, logits: Tensor, batched_inputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        skipped = self.void_skip_plan(outputs)
        if skipped is None or not bool(skipped.any()):
            total = logits.shape[0] * logits.shape[1]
            self.last_void_skip = {"queries": total, "run": total, "skipped": 0, "second_pass": 0}
            results = super().postprocess(state, outputs, logits, batched_inputs)
        else:
            in_logits, masks = outputs["pred_logits"], outputs["pred_masks"]

            def complete(b: int, idx: Tensor) -> Tensor:
                self.last_void_skip["second_pass"] += int(idx.numel())
                out = self.out_vocab_logits(state.image(b), masks[b : b + 1, idx])
                return self._ensemble(state, in_logits[b : b + 1, idx], out)[0]

            plan = SkippedQueries(void_probability(in_logits), skipped, complete)
            results = mask2former_postprocess(state, masks, logits, batched_inputs, self.inference_options, None, plan)
        if skipped is not None:
            for key, value in self.last_void_skip.items():
                self._void_skip_totals[key] += value
            t = self._void_skip_totals
            log_every_n_seconds(
                logging.INFO,
                f"adapter on void queries (VOID_SKIP exact), totals: {t['queries']} queries, {t['run']} run, "
                f"{t['skipped']} skipped, {t['second_pass']} of them run for the semantic argmax",
                n=60,
            )
        return results


class MAFTPlus(FCCLIP):
    """MAFT+ generator + Mask-Adapter. Differences from FCCLIP are configuration: the adapter's text rows go
    through the frozen CDT per image, the dense input is the ``maftp_scrambled`` projection, IoU binarisation at 0.5,
    no stop-gradient in the cosine loss, seed 123 when SEED is negative (as the official script), and only the
    adapter trains (void and CDT frozen)."""

    auto_defaults: ClassVar[ArchDefaults] = ArchDefaults(
        dense_projection="maftp_scrambled", match_pred_threshold=0.5, cos_stop_grad=False, seed=123
    )

    @classmethod
    def uses_cdt(cls, cfg: CfgNode) -> bool:
        return True

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        args = super().from_config(cfg)
        variant = args["cdt"].variant
        if variant == "semantic" and args["backbone"].embed_dim == 768:
            logger.warning(
                "MAFT+ (ConvNeXt-L) runs with the 'semantic' CDT variant because TEST.PANOPTIC_ON is False; the "
                "released MAFTP-L+MA weights were evaluated with the 'panoptic' variant. Set "
                "MODEL.MASK_ADAPTER.CDT_VARIANT panoptic to reproduce the reported numbers."
            )
        return args

    @classmethod
    def trainable_parameters(cls) -> Sequence[str]:
        return ("mask_adapter.",)


register_once(META_ARCH_REGISTRY, FCCLIP)
register_once(META_ARCH_REGISTRY, MAFTPlus)
