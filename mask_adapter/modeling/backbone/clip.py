"""Frozen open_clip ConvNeXt CLIP as a detectron2 backbone.

Shapes:
    B images;  H×W padded image;  h×w = H/32 × W/32
    C_raw  channels of the last trunk stage (1536 ConvNeXt-L, 1024 ConvNeXt-B)
    D      CLIP embedding width (768 L, 640 B)

Outputs of ``forward`` (all computed under no-grad, the model always in eval mode):
    ``stem`` (B, C0, H/4, W/4); ``res2``..``res5`` trunk stages 0-3 (strides 4, 8, 16, 32);
    ``clip_vis_dense`` = ``trunk.norm_pre(res5)`` (B, C_raw, h, w), the unprojected dense feature.
"""

import hashlib
import logging
import os

import open_clip
import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
from detectron2.utils import comm
from torch import Tensor

from ...utils.registry import register_once
from .tiny_clip import ensure_model_config_registered

logger = logging.getLogger(__name__)

__all__ = ["CLIPBackbone", "build_clip_model", "dense_projection", "project_pooled", "DENSE_PROJECTIONS"]

DENSE_PROJECTIONS = ("pixelwise", "maftp_scrambled")


def build_clip_model(model_name: str, pretrained: str) -> torch.nn.Module:
    """Create an open_clip ConvNeXt CLIP model.

    Args:
        model_name: open_clip model name (e.g. ``convnext_large_d_320``).
        pretrained: an open_clip pretrained tag (downloaded by open_clip), a local weights file, or "" for
            random weights.
    """
    ensure_model_config_registered(model_name)
    if open_clip.get_model_config(model_name) is None:
        raise ValueError(
            f"unknown CLIP model {model_name!r} (MODEL.FC_CLIP.CLIP_MODEL_NAME); "
            "use an open_clip ConvNeXt model such as convnext_large_d_320 or convnext_base_w_320"
        )
    vision_cfg = open_clip.get_model_config(model_name).get("vision_cfg", {})
    if "convnext" not in str(vision_cfg.get("timm_model_name", "")):
        raise ValueError(
            f"CLIP model {model_name!r} is not a ConvNeXt CLIP; only open_clip ConvNeXt models "
            "(timm convnext trunk) are supported as MODEL.FC_CLIP.CLIP_MODEL_NAME"
        )
    looks_like_path = os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))
    if looks_like_path and not os.path.isfile(pretrained):
        raise FileNotFoundError(
            f"CLIP weights file not found: {pretrained} (MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS); "
            "download it or give an open_clip pretrained tag"
        )
    tag: str | None = pretrained or None
    if tag is not None and not looks_like_path and comm.get_world_size() > 1:
        # Local rank 0 downloads first so other ranks read the cache.
        if comm.get_local_rank() == 0:
            open_clip.create_model(model_name, pretrained=tag)
        comm.synchronize()
    return open_clip.create_model(model_name, pretrained=tag)


def project_pooled(trunk_head: torch.nn.Module, head: torch.nn.Module, pooled: Tensor) -> Tensor:
    """Pooled trunk vectors (M, C_raw) -> (M, D) through the frozen CLIP heads.

    Args:
        trunk_head: timm ``visual.trunk.head`` (NormMlpClassifierHead: pool, LayerNorm2d, flatten, identity fc).
        head: open_clip ``visual.head`` (the projection to the embedding width).
        pooled: (M, C_raw).

    Returns:
        (M, D).
    """
    return head(trunk_head(pooled[:, :, None, None]))


def dense_projection(trunk_head: torch.nn.Module, head: torch.nn.Module, clip_dense: Tensor, variant: str) -> Tensor:
    """Project the dense trunk feature to the embedding width, per position.

    Args:
        trunk_head, head: as :func:`project_pooled`.
        clip_dense: (B, C_raw, h, w).
        variant: ``pixelwise`` (FC-CLIP) or ``maftp_scrambled`` (MAFT+ compatibility, see below).

    Returns:
        (B, D, h, w).
    """
    b, c, h, w = clip_dense.shape
    if variant == "pixelwise":
        x = trunk_head.norm(clip_dense).permute(0, 2, 3, 1)
        return head(trunk_head.drop(x)).permute(0, 3, 1, 2)
    if variant == "maftp_scrambled":
        # Kept for checkpoint compatibility: MAFT+ reshapes the contiguous NCHW map to (B·h·w, C_raw) WITHOUT
        # permuting, so "pixel" rows mix channels and positions. Its frozen CDT and the MAFT+ adapters were
        # trained on exactly this; see hustvl/MaskAdapter:maft/maft_plus.py (visual_prediction_forward_convnext).
        rows = clip_dense.contiguous().reshape(b * h * w, c)
        x = project_pooled(trunk_head, head, rows)
        return x.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    raise ValueError(f"unknown dense projection {variant!r}; choose one of {DENSE_PROJECTIONS}")


class CLIPBackbone(Backbone):
    """Frozen open_clip ConvNeXt CLIP; also owns the text tower and the frozen projection heads.

    The open_clip model lives at ``self.clip_model`` so checkpoint keys are ``backbone.clip_model.*``.

    Args:
        model_name: open_clip model name.
        pretrained: tag, local file, or "" (random).
    """

    @configurable
    def __init__(self, *, model_name: str, pretrained: str = "") -> None:
        super().__init__()
        self.model_name = model_name
        self.pretrained = pretrained
        self.clip_model = build_clip_model(model_name, pretrained)
        visual = self.clip_model.visual
        trunk = getattr(visual, "trunk", None)
        if trunk is None or not hasattr(trunk, "stages") or not hasattr(trunk, "feature_info"):
            raise ValueError(f"CLIP model {model_name!r} has no timm ConvNeXt trunk; only ConvNeXt CLIP is supported")
        for p in self.clip_model.parameters():
            p.requires_grad_(False)
        self.clip_model.eval()
        stage_chs = [int(info["num_chs"]) for info in trunk.feature_info]
        strides = [int(info["reduction"]) for info in trunk.feature_info]
        stem_chs = [m for m in trunk.stem.modules() if isinstance(m, torch.nn.Conv2d)][0].out_channels
        self._out_features = ["stem", "res2", "res3", "res4", "res5", "clip_vis_dense"]
        self._out_feature_channels = {"stem": stem_chs, "clip_vis_dense": stage_chs[-1]}
        self._out_feature_strides = {"stem": strides[0], "clip_vis_dense": strides[-1]}
        for i, (c, s) in enumerate(zip(stage_chs, strides)):
            self._out_feature_channels[f"res{i + 2}"] = c
            self._out_feature_strides[f"res{i + 2}"] = s
        self.embed_dim = int(self.clip_model.text_projection.shape[-1])
        self.dim_latent = self.embed_dim
        self.clip_dense_channels = stage_chs[-1]
        self._tokenizer = open_clip.get_tokenizer(model_name)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: ShapeSpec | None = None) -> dict:
        return {
            "model_name": cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME,
            "pretrained": cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS,
        }

    def train(self, mode: bool = True) -> "CLIPBackbone":
        """The CLIP model stays in eval mode whatever ``mode`` is (it is frozen)."""
        super().train(mode)
        self.clip_model.eval()
        return self

    @property
    def size_divisibility(self) -> int:
        return -1

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
            for n in self._out_features
        }

    @torch.no_grad()
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: (B, 3, H, W) normalised image -> feature dict (see module docstring)."""
        self.clip_model.eval()
        trunk = self.clip_model.visual.trunk
        out: dict[str, Tensor] = {}
        x = trunk.stem(x)
        out["stem"] = x
        for i, stage in enumerate(trunk.stages):
            x = stage(x)
            out[f"res{i + 2}"] = x
        out["clip_vis_dense"] = trunk.norm_pre(x)
        return out

    # -- projections through the frozen CLIP heads (gradients flow through them to the adapter) ----------
    def project_pooled(self, pooled: Tensor) -> Tensor:
        """Pooled trunk vectors (M, C_raw) -> (M, D) via ``trunk.head`` and ``visual.head``."""
        visual = self.clip_model.visual
        return project_pooled(visual.trunk.head, visual.head, pooled)

    def dense_projection(self, clip_dense: Tensor, variant: str) -> Tensor:
        """Project the dense trunk feature (B, C_raw, h, w) to the embedding width per position: (B, D, h, w).

        ``variant`` is ``pixelwise`` (FC-CLIP) or ``maftp_scrambled`` (MAFT+ compatibility); see
        :func:`dense_projection`.
        """
        visual = self.clip_model.visual
        return dense_projection(visual.trunk.head, visual.head, clip_dense, variant)

    # -- text tower --------------------------------------------------------------------------------------
    def tokenize(self, texts) -> Tensor:
        return self._tokenizer(texts)

    @torch.no_grad()
    def encode_text(self, tokens: Tensor) -> Tensor:
        """(n, L) token ids -> (n, D) unnormalised text embeddings (EOT token through ``text_projection``)."""
        m = self.clip_model
        m.eval()
        device = m.token_embedding.weight.device
        causal = getattr(m, "attn_mask", None) is not None and getattr(m.transformer, "batch_first", False)
        if getattr(m, "text_pool_type", "argmax") != "argmax" or not causal:
            return m.encode_text(tokens.to(device), normalize=False)
        # The text tower is causal and pools the EOT token (the largest id of each row), which only attends to
        # positions up to its own: dropping every position after the longest prompt's EOT is exact. Prompts use
        # ~10-20 of the 77 positions, so this cuts the text-tower work several times (vocabulary encoding on CPU).
        eot = tokens.argmax(dim=-1)
        n = int(eot.max()) + 1  # on the tokenizer's (CPU) tensor: no device sync
        tokens, eot = tokens[:, :n].to(device), eot.to(device)
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:n].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        proj = m.text_projection
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    def text_tower_fingerprint(self) -> str:
        """Identifies the *current* text-tower weights (also after loading MODEL.WEIGHTS, e.g. MAFT+'s fine-tuned
        CLIP): a hash of ``text_projection``, ``ln_final`` and ``positional_embedding``, a few MB at most."""
        h = hashlib.sha256()
        m = self.clip_model
        for t in (m.text_projection, m.ln_final.weight, m.ln_final.bias, m.positional_embedding):
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def logit_scale(self) -> Tensor:
        return self.clip_model.logit_scale


register_once(BACKBONE_REGISTRY, CLIPBackbone)
