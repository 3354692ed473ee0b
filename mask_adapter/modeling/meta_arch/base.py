"""OpenVocabMaskFormer: the one forward template shared by every meta-architecture.

Shapes:
    B images;  Q proposals (generator queries, or masks given to the model);  N masks in a training set
    C classes of the current vocabulary (logits carry C + 1 columns, void last);  T synonyms (text rows)
    D CLIP embedding width;  C_raw trunk width;  H×W padded image;  h×w = H/32 × W/32 (CLIP grid)

detectron2 contract. ``forward(batched_inputs)`` takes a list of dicts with "image" (3, H_i, W_i) uint8 RGB
(0-255) and optionally "height"/"width" (output size), "instances" (training: gt_masks, gt_classes) and
"sem_seg". Training returns ``Dict[str, Tensor]`` of losses; inference returns one dict per image with
"sem_seg" (C, H, W) probabilities, "panoptic_seg" (ids (H, W), segments_info) and/or "instances", as enabled.

Subclasses override the named hooks, never ``forward``:
    ``propose_masks``   masks to classify (generator, ground truth, SAM ...)
    ``adapter_text``    text rows used on the adapter path (MAFT+: per-image CDT)
    ``classify_masks``  final class logits per proposal (FC-CLIP / MAFT+: geometric ensemble)
    ``losses``          training losses
    ``postprocess``     Mask2Former post-processing
"""
import logging
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_backbone, build_sem_seg_head
from detectron2.structures import BitMasks, ImageList
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from ..adapter.build import build_mask_adapter
from ..cdt import ContentDependentTransfer
from ..adapter.pooling import (
    classification_logits,
    embeddings_from_activation_maps,
    mask_pooling_embeddings,
    top_k_adapter_embeddings,
)
from ..backbone.clip import CLIPBackbone
from ..text import TextClassifier, category_overlap_mask
from .options import InferenceOptions, MaskTrainingOptions
from .vocabulary import Vocabulary

logger = logging.getLogger(__name__)

__all__ = ["OpenVocabMaskFormer", "ForwardState"]

OUT_VOCAB_CLASSIFIERS = ("adapter", "mask_pooling")


@dataclass
class ForwardState:
    """Everything computed once per batch and read by the hooks."""

    images: ImageList
    features: Dict[str, Tensor]
    clip_dense: Tensor  # (B, C_raw, h, w) unprojected trunk feature
    dense: Tensor  # (B, D, h, w) adapter input
    text: Tensor  # (T + 1, D) text rows, void last
    num_templates: List[int]
    vocabulary: Vocabulary
    adapter_text: Optional[Tensor] = None  # (T + 1, D) or (B, T + 1, D)

    def image(self, index: int) -> "ForwardState":
        """The state of image ``index`` alone (batch of one; shared text rows kept, features not sliced)."""
        adapter_text = self.adapter_text
        if adapter_text is not None and adapter_text.dim() == 3:
            adapter_text = adapter_text[index : index + 1]
        return replace(
            self,
            images=ImageList(self.images.tensor[index : index + 1], [self.images.image_sizes[index]]),
            clip_dense=self.clip_dense[index : index + 1],
            dense=self.dense[index : index + 1],
            adapter_text=adapter_text,
        )


def vocabulary_of(dataset_names: Sequence[str]) -> Optional[Vocabulary]:
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
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: CLIPBackbone,
        mask_adapter: Optional[nn.Module],
        sem_seg_head: Optional[nn.Module],
        train_vocabulary: Optional[Vocabulary],
        test_vocabulary: Optional[Vocabulary],
        seen_vocabulary: Optional[Vocabulary] = None,
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
        cdt: Optional[nn.Module] = None,
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
        self._overlap_cache: Dict[Tuple[str, ...], Tensor] = {}
        if cdt is not None:
            self.cdt = cdt
        self.freeze()

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        """Arguments shared by every meta-architecture; subclasses update the returned dict."""
        from ...config import check_config, resolve_cdt_variant, resolve_dense_projection

        check_config(cfg)
        backbone = build_backbone(cfg)
        out_vocab = cfg.MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER
        uses_cdt = cls.uses_cdt(cfg)
        cdt = None
        if uses_cdt:
            d_model, nhead = cfg.MODEL.cdt_params
            variant = resolve_cdt_variant(cfg)
            logger.info("CDT variant: %s (MODEL.MASK_ADAPTER.CDT_VARIANT=%s)", variant, cfg.MODEL.MASK_ADAPTER.CDT_VARIANT)
            cdt = ContentDependentTransfer(d_model=d_model, nhead=nhead, variant=variant)
        train_vocab = vocabulary_of(cfg.DATASETS.TRAIN)
        return {
            "backbone": backbone,
            "mask_adapter": build_mask_adapter(cfg) if out_vocab == "adapter" else None,
            "sem_seg_head": cls.build_generator(cfg, backbone),
            "train_vocabulary": train_vocab,
            "test_vocabulary": vocabulary_of(cfg.DATASETS.TEST),
            "seen_vocabulary": train_vocab,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "size_divisibility": cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY,
            "dense_projection": resolve_dense_projection(cfg),
            "out_vocab_classifier": out_vocab,
            "mask_threshold": cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD,
            "inference": InferenceOptions.from_cfg(cfg),
            "training": MaskTrainingOptions.from_cfg(cfg),
            "text_cache_dir": cfg.MODEL.MASK_ADAPTER.TEXT_CACHE_DIR,
            "cdt": cdt,
        }

    @classmethod
    def uses_cdt(cls, cfg: CfgNode) -> bool:
        """Whether the text rows of the adapter path go through MAFT+'s CDT (MAFT+ models, or TRAIN_MAFT)."""
        return bool(cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT)

    @classmethod
    def build_generator(cls, cfg: CfgNode, backbone: CLIPBackbone) -> Optional[nn.Module]:
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
        for name, module in self.named_children():
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
    def forward(self, batched_inputs: List[Dict[str, Any]]):
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

    def encode(self, batched_inputs: List[Dict[str, Any]], vocabulary: Optional[Vocabulary] = None) -> ForwardState:
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
        text, num_templates = self.text_rows(vocabulary)
        clip_dense = features["clip_vis_dense"]
        state = ForwardState(
            images=images,
            features=features,
            clip_dense=clip_dense,
            dense=self.backbone.dense_projection(clip_dense, self.dense_projection),
            text=text,
            num_templates=num_templates,
            vocabulary=vocabulary,
        )
        state.adapter_text = self.adapter_text(state)
        return state

    def preprocess_image(self, batched_inputs: List[Dict[str, Any]]) -> ImageList:
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

    def text_rows(self, vocabulary: Vocabulary) -> Tuple[Tensor, List[int]]:
        """(T + 1, D) normalised text rows with the void embedding last, and synonyms per class."""
        emb, num_templates = self.text_classifier(list(vocabulary.class_names), self.device)
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return torch.cat([emb.to(void.dtype), void], dim=0), num_templates

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

    def propose_masks(self, state: ForwardState, batched_inputs: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Run the frozen generator: {"pred_masks": (B, Q, H/4, W/4) logits, "pred_logits": (B, Q, C + 1)}."""
        with torch.no_grad():
            out = self.sem_seg_head(state.features, state.text, state.num_templates)
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
                lambda e: classification_logits(e, state.adapter_text, self.backbone.logit_scale, state.num_templates),
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
        return classification_logits(emb, state.adapter_text, self.backbone.logit_scale, state.num_templates)

    def classify_masks(self, state: ForwardState, outputs: Dict[str, Any]) -> Tensor:
        """Final (B, Q, C + 1) class logits; out-of-vocabulary logits only by default."""
        return self.out_vocab_logits(state, outputs["pred_masks"])

    def losses(self, state: ForwardState, outputs: Dict[str, Any], batched_inputs: List[Dict[str, Any]]):
        from .training import mixed_mask_losses

        return mixed_mask_losses(self, state, outputs, batched_inputs)

    def postprocess(
        self, state: ForwardState, outputs: Dict[str, Any], logits: Tensor, batched_inputs: List[Dict[str, Any]]
    ) -> List[Dict[str, Any]]:
        from .inference import mask2former_postprocess

        return mask2former_postprocess(self, state, outputs["pred_masks"], logits, batched_inputs)

    # ------------------------------------------------------------------ training utilities
    def match_generator(self, batched_inputs: List[Dict[str, Any]], index: int) -> Optional[torch.Generator]:
        """A per-image RNG for mask sampling and matching when SEED >= 0 (deterministic and resumable)."""
        seed = self.training_options.seed
        if seed < 0:
            return None
        try:
            iteration = get_event_storage().iter
        except AssertionError:  # no EventStorage outside a trainer
            iteration = 0
        x = batched_inputs[index]
        key = str(x.get("image_id", x.get("file_name", index)))
        g = torch.Generator(device="cpu")
        g.manual_seed((seed * 1_000_003 + iteration * 7919 + zlib.crc32(key.encode())) % (2**63))
        return g

    def padded_gt(self, state: ForwardState, batched_inputs: List[Dict[str, Any]]) -> List[Tuple[Tensor, Tensor]]:
        """Per image: GT masks (G, H, W) float zero-padded to the batch size, and labels (G,)."""
        hp, wp = state.images.tensor.shape[-2:]
        out = []
        for i, x in enumerate(batched_inputs):
            if "instances" not in x:
                raise ValueError(
                    f"training input {i} has no 'instances' (gt_masks, gt_classes); use a training dataset mapper "
                    "(INPUT.DATASET_MAPPER_NAME) that produces them"
                )
            inst = x["instances"]
            masks = inst.gt_masks.tensor if isinstance(inst.gt_masks, BitMasks) else inst.gt_masks
            masks = masks.to(self.device).float()
            padded = masks.new_zeros(masks.shape[0], hp, wp)
            padded[:, : masks.shape[1], : masks.shape[2]] = masks
            out.append((padded, inst.gt_classes.to(self.device).long()))
        return out
