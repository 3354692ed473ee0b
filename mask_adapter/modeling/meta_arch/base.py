"""OpenVocabMaskFormer: the one forward template shared by every meta-architecture.

Shapes:
    B images;  Q proposals (generator queries, or masks given to the model);  N masks in a training set
    C classes of the current vocabulary (logits carry C + 1 columns, void last);  T synonyms (text rows)
    D CLIP embedding width;  C_raw trunk width;  H×W padded image;  h×w = H/32 × W/32 (CLIP grid)

detectron2 contract. ``forward(batched_inputs)`` takes a list of dicts with "image" (3, H_i, W_i) uint8 RGB
(0-255) and optionally "height"/"width" (output size), "instances" (training: gt_masks, gt_classes) and
"sem_seg". Training returns ``Dict[str, Tensor]`` of losses; inference returns one dict per image with
"sem_seg" (C, H, W) probabilities, "panoptic_seg" (ids (H, W), segments_info) and/or "instances", as enabled.

Subclasses override the named hooks, never ``forward``; every model's hooks take and return the same types:
    ``propose_masks(state, inputs) -> Proposals``   masks to classify (generator, ground truth, SAM ...)
    ``adapter_text(state) -> Tensor``               text rows of the adapter path (MAFT+: per-image CDT)
    ``classify_masks(state, proposals) -> Tensor``  (B, Q, C + 1) class logits (FC-CLIP / MAFT+: geometric ensemble)
    ``losses(state, proposals, inputs) -> Dict[str, Tensor]``   training losses
    ``postprocess(state, proposals, logits, inputs) -> List[Dict]``   Mask2Former post-processing
``ForwardState`` and ``Proposals`` are defined in ``state.py``. Data flows one way: the model hands its state, options
and embedding function to the helpers of ``training.py`` / ``inference.py``, which return results.
"""

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_backbone, build_sem_seg_head
from detectron2.structures import ImageList
from torch import Tensor, nn

from ...config.resolve import ArchDefaults, check_config, resolve_cdt_variant, resolve_dense_projection
from ..adapter.build import build_mask_adapter
from ..adapter.pooling import (
    classification_logits,
    embeddings_from_activation_maps,
    mask_pooling_embeddings,
    top_k_adapter_embeddings,
)
from ..backbone.clip import CLIPBackbone
from ..cdt import ContentDependentTransfer
from ..text import TextClassifier, category_overlap_mask
from .inference import mask2former_postprocess
from .options import InferenceOptions, MaskTrainingOptions
from .state import ForwardState, Proposals
from .training import mixed_mask_losses
from .vocabulary import Vocabulary

logger = logging.getLogger(__name__)

__all__ = ["OpenVocabMaskFormer", "ForwardState", "Proposals"]

OUT_VOCAB_CLASSIFIERS = ("adapter", "mask_pooling")


def vocabulary_of(dataset_names: Sequence[str]) -> Vocabulary | None:
    """The vocabulary of the first dataset in ``dataset_names`` (None if unset or without class names)."""
    if not dataset_names:
        return None
    metadata = MetadataCatalog.get(dataset_names[0])
    if not (getattr(metadata, "stuff_classes", None) or getattr(metadata, "thing_classes", None)):
        logger.warning("dataset %r has no class names registered; set a vocabulary before use", dataset_names[0])
        return None
    return Vocabulary.from_metadata(metadata)


def _pad_to_min(images: ImageList, min_side: int) -> ImageList:
    """Zero-pad the batch tensor to at least ``min_side`` on both sides (image sizes unchanged)."""
    h, w = images.tensor.shape[-2:]
    if h >= min_side and w >= min_side:
        return images
    tensor = F.pad(images.tensor, (0, max(0, min_side - w), 0, max(0, min_side - h)))
    return ImageList(tensor, images.image_sizes)


class OpenVocabMaskFormer(nn.Module):
    """Base of all meta-architectures: CLIP features, text classifier, masks -> adapter -> logits.

    Args:
        backbone: frozen CLIP backbone.
        mask_adapter: the adapter (None only with ``out_vocab_classifier="mask_pooling"``).
        sem_seg_head: frozen mask generator, or None when masks come from elsewhere.
        train_vocabulary / test_vocabulary: what the model classifies while training / at inference.
        seen_vocabulary: the vocabulary the checkpoint was trained on (category-overlap mask).
        pixel_mean, pixel_std: RGB, 0-255.
        size_divisibility: pad images to a multiple of this.
        dense_projection: "pixelwise" or "maftp_scrambled" (see ``CLIPBackbone.dense_projection``).
        out_vocab_classifier: "adapter" or "mask_pooling".
        mask_threshold: proposals are binarised at sigmoid > this before the adapter.
        inference: post-processing options.
        training: mask-set, matcher and loss options.
        trainable: parameter-name prefixes left trainable; everything else is frozen (and kept in eval mode).
        text_cache_dir: on-disk text-embedding cache ("" = memory only).

    Class attribute ``auto_defaults``: what the "auto" config values mean for this meta-architecture.
    """

    auto_defaults: ClassVar[ArchDefaults] = ArchDefaults()

    @configurable
    def __init__(
        self,
        *,
        backbone: CLIPBackbone,
        mask_adapter: nn.Module | None,
        sem_seg_head: nn.Module | None,
        train_vocabulary: Vocabulary | None,
        test_vocabulary: Vocabulary | None,
        seen_vocabulary: Vocabulary | None = None,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int = 32,
        dense_projection: str = "pixelwise",
        out_vocab_classifier: str = "adapter",
        mask_threshold: float = 0.5,
        inference: InferenceOptions = InferenceOptions(),
        training: MaskTrainingOptions = MaskTrainingOptions(),
        trainable: Sequence[str] = ("mask_adapter.", "void_embedding."),
        text_cache_dir: str = "",
        cdt: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if out_vocab_classifier not in OUT_VOCAB_CLASSIFIERS:
            raise ValueError(
                f"out_vocab_classifier must be one of {OUT_VOCAB_CLASSIFIERS}, got {out_vocab_classifier!r} "
                "(MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER)"
            )
        if out_vocab_classifier == "adapter" and mask_adapter is None:
            raise ValueError("out_vocab_classifier='adapter' needs a mask_adapter")
        self.backbone = backbone
        if sem_seg_head is not None:
            self.sem_seg_head = sem_seg_head
        if mask_adapter is not None:
            self.mask_adapter = mask_adapter
        self.void_embedding = nn.Embedding(1, backbone.embed_dim)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.size_divisibility = size_divisibility
        self.dense_projection = dense_projection
        self.out_vocab_classifier = out_vocab_classifier
        self.mask_threshold = mask_threshold
        self.inference_options = inference
        self.training_options = training
        self.trainable_prefixes = tuple(trainable)
        self.train_vocabulary = train_vocabulary
        self.test_vocabulary = test_vocabulary
        self.seen_vocabulary = seen_vocabulary or train_vocabulary
        self.text_classifier = TextClassifier(
            tokenize=backbone.tokenize,
            encode_text=backbone.encode_text,
            model_id=lambda: f"{backbone.model_name}|{backbone.text_tower_fingerprint()}",
            cache_dir=text_cache_dir,
        )
        self._overlap_cache: dict[tuple[str, ...], Tensor] = {}
        if cdt is not None:
            self.cdt = cdt
        self.freeze()

    @classmethod
    def from_config(cls, cfg: CfgNode) -> dict[str, Any]:
        """Arguments shared by every meta-architecture; subclasses update the returned dict."""
        check_config(cfg)
        backbone = build_backbone(cfg)
        out_vocab = cfg.MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER
        uses_cdt = cls.uses_cdt(cfg)
        cdt = None
        if uses_cdt:
            d_model, nhead = cfg.MODEL.cdt_params
            variant = resolve_cdt_variant(cfg)
            setting = cfg.MODEL.MASK_ADAPTER.CDT_VARIANT
            logger.info("CDT variant: %s (MODEL.MASK_ADAPTER.CDT_VARIANT=%s)", variant, setting)
            cdt = ContentDependentTransfer(d_model=d_model, nhead=nhead, variant=variant)
        train_vocab = vocabulary_of(cfg.DATASETS.TRAIN)
        return {
            "backbone": backbone,
            "mask_adapter": build_mask_adapter(cfg, backbone.embed_dim) if out_vocab == "adapter" else None,
            "sem_seg_head": cls.build_generator(cfg, backbone),
            "train_vocabulary": train_vocab,
            "test_vocabulary": vocabulary_of(cfg.DATASETS.TEST),
            "seen_vocabulary": train_vocab,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "size_divisibility": cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY,
            "dense_projection": resolve_dense_projection(cfg, cls.auto_defaults),
            "out_vocab_classifier": out_vocab,
            "mask_threshold": cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD,
            "inference": InferenceOptions.from_cfg(cfg),
            "training": MaskTrainingOptions.from_cfg(cfg, cls.auto_defaults),
            "text_cache_dir": cfg.MODEL.MASK_ADAPTER.TEXT_CACHE_DIR,
            "cdt": cdt,
        }

    @classmethod
    def uses_cdt(cls, cfg: CfgNode) -> bool:
        """Whether the text rows of the adapter path go through MAFT+'s CDT (MAFT+ models, or TRAIN_MAFT)."""
        return bool(cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT)

    @classmethod
    def build_generator(cls, cfg: CfgNode, backbone: CLIPBackbone) -> nn.Module | None:
        """The frozen mask generator (``MODEL.SEM_SEG_HEAD.NAME``); None for models without one."""
        return build_sem_seg_head(cfg, backbone.output_shape())

    # ------------------------------------------------------------------ setup helpers
    def freeze(self) -> None:
        """Freeze every parameter whose name does not start with one of ``trainable_prefixes``."""
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(self.trainable_prefixes))

    def train(self, mode: bool = True) -> "OpenVocabMaskFormer":
        """Frozen sub-modules (no trainable parameter) stay in eval mode."""
        super().train(mode)
        for module in self.children():
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def set_vocabulary(self, class_names: Sequence[str], thing_ids: Sequence[int] = ()) -> None:
        """Classify against ``class_names`` ("name,synonym,...") at inference."""
        self.test_vocabulary = Vocabulary.from_names(list(class_names), frozenset(thing_ids))

    def set_metadata(self, metadata: Any) -> None:
        """Classify against the classes of a detectron2 metadata object at inference."""
        self.test_vocabulary = Vocabulary.from_metadata(metadata)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ------------------------------------------------------------------ forward template
    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """See the module docstring for the input/output contract."""
        with nullcontext() if self.training else torch.no_grad():  # inference: the adapter's no-grad fast path
            state = self.encode(batched_inputs)
            outputs = self.propose_masks(state, batched_inputs)
            if self.training:
                return self.losses(state, outputs, batched_inputs)
            logits = self.classify_masks(state, outputs)
            return self.postprocess(state, outputs, logits, batched_inputs)

    def inference_autocast(self):
        """Autocast context of MODEL.MASK_ADAPTER.AMP_DTYPE for the backbone and the adapter at inference."""
        amp = self.inference_options.amp_dtype
        if self.training or amp == "none":
            return nullcontext()
        return torch.autocast(self.device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])

    def encode(self, batched_inputs: list[dict[str, Any]], vocabulary: Vocabulary | None = None) -> ForwardState:
        """Images -> CLIP features, dense adapter input and text rows (the per-batch state the hooks read).

        Args:
            batched_inputs: as ``forward``.
            vocabulary: classify against this vocabulary (default: the current train/test vocabulary).
        """
        images = self.preprocess_image(batched_inputs)
        with self.inference_autocast():
            features = self.backbone(images.tensor)
        if self.inference_options.amp_dtype != "none" and not self.training:
            features = {k: v.float() if v.is_floating_point() else v for k, v in features.items()}
        vocabulary = vocabulary or self.current_vocabulary()
        text, synonyms_per_class = self.text_rows(vocabulary)
        clip_dense = features["clip_vis_dense"]
        state = ForwardState(
            images=images,
            features=features,
            clip_dense=clip_dense,
            dense=self.backbone.dense_projection(clip_dense, self.dense_projection),
            text=text,
            synonyms_per_class=synonyms_per_class,
            vocabulary=vocabulary,
        )
        state.adapter_text = self.adapter_text(state)
        return state

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        images = []
        for i, x in enumerate(batched_inputs):
            img = x["image"]
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(
                    f"image {i} has shape {tuple(img.shape)}; expected (3, H, W) RGB. Convert grayscale/RGBA "
                    "images to 3-channel RGB first"
                )
            images.append((img.to(self.device).float() - self.pixel_mean) / self.pixel_std)
        batch = ImageList.from_tensors(images, self.size_divisibility)
        if hasattr(self, "sem_seg_head"):
            # The generator's GroupNorms need more than one value per group: a batch padded to a single stride-32
            # cell (images <= 32 px) fails where a norm has as many groups as channels, so pad to two cells.
            batch = _pad_to_min(batch, 2 * max(self.size_divisibility, 32))
        return batch

    def current_vocabulary(self) -> Vocabulary:
        vocab = self.train_vocabulary if self.training else self.test_vocabulary
        if vocab is None:
            raise ValueError(
                "the model has no vocabulary: set DATASETS.TRAIN/TEST to registered datasets, or call "
                "model.set_vocabulary([...]) / model.set_metadata(metadata)"
            )
        return vocab

    def text_rows(self, vocabulary: Vocabulary) -> tuple[Tensor, list[int]]:
        """(T + 1, D) normalised text rows with the void embedding last, and synonyms per class."""
        emb, synonyms_per_class = self.text_classifier(list(vocabulary.class_names), self.device)
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return torch.cat([emb.to(void.dtype), void], dim=0), synonyms_per_class

    def seen_mask(self, vocabulary: Vocabulary) -> Tensor:
        """(C,) bool: classes of ``vocabulary`` that share a synonym with the seen (training) vocabulary."""
        key = vocabulary.class_names
        if key not in self._overlap_cache:
            seen = self.seen_vocabulary.class_names if self.seen_vocabulary else ()
            self._overlap_cache[key] = category_overlap_mask(key, seen)
        return self._overlap_cache[key].to(self.device)

    # ------------------------------------------------------------------ hooks
    def adapter_text(self, state: ForwardState) -> Tensor:
        """Text rows used to classify adapter embeddings: the shared rows, or per image through the CDT."""
        cdt = getattr(self, "cdt", None)
        if cdt is None:
            return state.text
        return cdt(state.dense, state.text)

    def propose_masks(self, state: ForwardState, batched_inputs: list[dict[str, Any]]) -> Proposals:
        """Run the frozen generator: {"pred_masks": (B, Q, H/4, W/4) logits, "pred_logits": (B, Q, C + 1)}."""
        with torch.no_grad():
            out = self.sem_seg_head(state.features, state.text, state.synonyms_per_class)
        return {"pred_masks": out["pred_masks"], "pred_logits": out["pred_logits"]}

    def mask_embeddings(self, state: ForwardState, masks: Tensor) -> Tensor:
        """(B, N, H', W') binary masks (adapter) or mask logits (mask pooling) -> (B, N, D) embeddings."""
        project = self.backbone.project_pooled
        if self.out_vocab_classifier == "mask_pooling":
            return mask_pooling_embeddings(masks, state.clip_dense, project)
        chunk = 0 if self.training else self.inference_options.adapter_chunk
        top_k = 0 if self.training else self.inference_options.adapter_top_k
        if top_k > 0:  # opt-in approximation (MODEL.MASK_ADAPTER.ADAPTER_TOP_K)
            return top_k_adapter_embeddings(
                masks,
                state.clip_dense,
                project,
                lambda m: self._adapter_embeddings(state, m, chunk),
                lambda e: classification_logits(
                    e, state.adapter_text, self.backbone.logit_scale, state.synonyms_per_class
                ),
                top_k,
            )
        return self._adapter_embeddings(state, masks, chunk)

    def _adapter_embeddings(self, state: ForwardState, masks: Tensor, chunk: int) -> Tensor:
        """(B, N, H', W') binary masks -> (B, N, D) adapter embeddings."""
        project = self.backbone.project_pooled
        with self.inference_autocast():
            maps = self.mask_adapter(state.dense, masks, chunk).to(state.clip_dense.dtype)
        return embeddings_from_activation_maps(maps, state.clip_dense, project, self.mask_adapter.num_output_maps)

    def out_vocab_logits(self, state: ForwardState, mask_logits: Tensor) -> Tensor:
        """(B, Q, h', w') mask logits -> (B, Q, C + 1) CLIP logits of the adapter (or mask pooling)."""
        if self.out_vocab_classifier == "adapter":
            masks = (mask_logits.sigmoid() > self.mask_threshold).to(mask_logits.dtype)
        else:
            masks = mask_logits
        emb = self.mask_embeddings(state, masks)
        return classification_logits(emb, state.adapter_text, self.backbone.logit_scale, state.synonyms_per_class)

    def classify_masks(self, state: ForwardState, outputs: Proposals) -> Tensor:
        """Final (B, Q, C + 1) class logits (every model); out-of-vocabulary logits only by default."""
        return self.out_vocab_logits(state, outputs["pred_masks"])

    def losses(
        self, state: ForwardState, outputs: Proposals, batched_inputs: list[dict[str, Any]]
    ) -> dict[str, Tensor]:
        """Stage-2 mixed-mask losses on the generator's masks."""
        return mixed_mask_losses(
            state,
            outputs["pred_masks"],
            batched_inputs,
            embed=self.mask_embeddings,
            logit_scale=self.backbone.logit_scale,
            options=self.training_options,
            mask_threshold=self.mask_threshold,
        )

    def postprocess(
        self, state: ForwardState, outputs: Proposals, logits: Tensor, batched_inputs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Mask2Former post-processing of (B, Q, C + 1) logits and the proposals (padding slots left out)."""
        return mask2former_postprocess(
            state, outputs["pred_masks"], logits, batched_inputs, self.inference_options, outputs.get("num_masks")
        )
