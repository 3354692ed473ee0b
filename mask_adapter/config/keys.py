"""Config keys of the `mask_adapter` package: every key declared once, with its default and a one-line comment.

Official key names (Mask2Former, FC-CLIP, MAFT+, Mask-Adapter; lowercase MAFT keys included) keep their exact
spelling so that unmodified official YAML files merge. Keys the official files set but this package ignores
are accepted in `_add_compat_keys`. Validation and the resolution of "auto" values live in
`mask_adapter.config.resolve`.

Letters in comments are the shape letters of docs/architecture.md: Q proposals (generator queries), N masks per
image given to the adapter, K adapter maps per mask, D CLIP embedding width; α/β are the geometric-ensemble
exponents.

Typical use::

    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.merge_from_file(path)
    check_config(cfg)  # mask_adapter.config.resolve
"""

import copy
from collections.abc import Callable

from detectron2.config import CfgNode as CN

__all__ = ["add_mask_adapter_config"]


# --------------------------------------------------------------------------------------------------
# Key declarations: one private adder per concern.
# --------------------------------------------------------------------------------------------------
def _add_deeplab_keys(cfg: CN) -> None:
    """detectron2's DeepLab keys (WarmupPolyLR, RESNETS.STEM_TYPE / RES5_MULTI_GRID used by the Base YAMLs)."""
    try:
        from detectron2.projects.deeplab import add_deeplab_config
    except ImportError:
        add_deeplab_config = None
    if add_deeplab_config is not None:
        add_deeplab_config(cfg)
        return
    # Same keys and defaults as detectron2.projects.deeplab.add_deeplab_config.
    # Crop retries until no class covers more than this fraction of the crop (1.0 = off).
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
    # WarmupPolyLR: lr = base_lr * (1 - iter / max_iter) ** POLY_LR_POWER.
    cfg.SOLVER.POLY_LR_POWER = 0.9
    # WarmupPolyLR: constant lr reached at the end of training.
    cfg.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
    # DeepLab head loss: "cross_entropy" or "hard_pixel_mining" (unused here).
    cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE = "hard_pixel_mining"
    # DeepLab decoder features / channels (unused here).
    cfg.MODEL.SEM_SEG_HEAD.PROJECT_FEATURES = ["res2"]
    cfg.MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS = [48]
    # DeepLab ASPP settings (unused here).
    cfg.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS = 256
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18]
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.1
    cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV = False
    # DeepLab ResNet options; set by the official Base YAMLs (unused: the backbone is CLIP).
    cfg.MODEL.RESNETS.RES4_DILATION = 1
    cfg.MODEL.RESNETS.RES5_MULTI_GRID = [1, 2, 4]
    cfg.MODEL.RESNETS.STEM_TYPE = "deeplab"


def _add_input_solver_keys(cfg: CN) -> None:
    """Mask2Former data and optimizer keys."""
    # Registered dataset-mapper name (e.g. "mask_former_semantic", "coco_panoptic_lsj").
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"
    # SSD-style color augmentation; ignored under MASK_Adapter (official stage-1 mapper ignored it).
    cfg.INPUT.COLOR_AUG_SSD = False
    # Pad images to a multiple of this in the mapper; -1 = no padding there.
    cfg.INPUT.SIZE_DIVISIBILITY = -1
    # LSJ: output crop side in pixels (ResizeScale target and FixedSizeCrop size).
    cfg.INPUT.IMAGE_SIZE = 1024
    # LSJ: smallest random scale factor of IMAGE_SIZE.
    cfg.INPUT.MIN_SCALE = 0.1
    # LSJ: largest random scale factor of IMAGE_SIZE.
    cfg.INPUT.MAX_SCALE = 2.0
    # Weight decay of nn.Embedding parameters.
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    # Optimizer: "ADAMW" or "SGD".
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    # LR multiplier for parameters under "backbone" (no effect: CLIP is frozen).
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1


def _add_mask_former_keys(cfg: CN) -> None:
    """Mask2Former generator keys: losses, transformer decoder, pixel decoder, inference."""
    cfg.MODEL.MASK_FORMER = CN()
    # Loss on every decoder layer's output (auxiliary losses).
    cfg.MODEL.MASK_FORMER.DEEP_SUPERVISION = True
    # Classification weight of the "no object" class.
    cfg.MODEL.MASK_FORMER.NO_OBJECT_WEIGHT = 0.1
    # Loss weights: classification, dice, sigmoid-BCE mask.
    cfg.MODEL.MASK_FORMER.CLASS_WEIGHT = 1.0
    cfg.MODEL.MASK_FORMER.DICE_WEIGHT = 1.0
    cfg.MODEL.MASK_FORMER.MASK_WEIGHT = 20.0
    # Transformer: attention heads, dropout, FFN width, encoder layers, decoder layers (incl. the query layer).
    cfg.MODEL.MASK_FORMER.NHEADS = 8
    cfg.MODEL.MASK_FORMER.DROPOUT = 0.1
    cfg.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 2048
    cfg.MODEL.MASK_FORMER.ENC_LAYERS = 0
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = 6
    # Pre-norm transformer layers.
    cfg.MODEL.MASK_FORMER.PRE_NORM = False
    # Transformer width (query feature channels).
    cfg.MODEL.MASK_FORMER.HIDDEN_DIM = 256
    # Q: number of mask queries of the generator.
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 100
    # Feature that feeds the transformer decoder ("multi_scale_pixel_decoder" in all official configs).
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "res5"
    # Always add an input projection before the transformer decoder.
    cfg.MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ = False
    # Pad the batch to a multiple of this (pixels).
    cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY = 32
    # Registered transformer-decoder name.
    cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"
    # Point-sampled mask loss: number of points, oversampling ratio, importance-sampled fraction.
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 112 * 112
    cfg.MODEL.MASK_FORMER.OVERSAMPLE_RATIO = 3.0
    cfg.MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO = 0.75

    cfg.MODEL.MASK_FORMER.TEST = CN()
    # Which inference outputs to produce: sem_seg / instances / panoptic_seg.
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = False
    # Panoptic/instance: minimum class score of a kept mask.
    cfg.MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD = 0.0
    # Panoptic: minimum visible fraction of a mask after overlap resolution.
    cfg.MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD = 0.0
    # Resize masks to the input size before (True) or after (False) semantic inference.
    cfg.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = False
    # Ours: classes per chunk in semantic inference, bounds peak memory (0 = all classes at once).
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_CHUNK = 0

    # Mask-feature channels of the pixel decoder.
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 256
    # Deformable-attention encoder layers in the pixel decoder.
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 0
    # Registered pixel-decoder name ("MSDeformAttnPixelDecoder" in all official configs).
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
    # Backbone features that the deformable encoder attends to.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
    # Deformable attention: sampling points per head and level, attention heads.
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 4
    cfg.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 8


def _add_clip_keys(cfg: CN) -> None:
    """CLIP backbone and ensemble keys; MODEL.FC_CLIP.* configures CLIP for every meta-architecture."""
    cfg.MODEL.FC_CLIP = CN()
    # open_clip model name (ConvNeXt CLIP), e.g. "convnext_large_d_320" (D 768), "convnext_base_w_320" (D 640).
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = "convnext_large_d_320"
    # open_clip pretrained tag or a local weights file; "" = random weights (no download).
    cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS = "laion2b_s29b_b131k_ft_soup"
    # D: CLIP embedding width (text and pooled-visual), 768 for ConvNeXt-L, 640 for ConvNeXt-B.
    cfg.MODEL.FC_CLIP.EMBED_DIM = 768
    # α: weight of the out-of-vocabulary (CLIP/adapter) score for seen classes; -1 = no ensemble (stage 1).
    cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA = 0.4
    # β: weight of the out-of-vocabulary score for unseen classes; -1 = no ensemble (stage 1).
    cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA = 0.8
    # Ensemble only over masks with a valid (non-empty) binarized region.
    cfg.MODEL.FC_CLIP.ENSEMBLE_ON_VALID_MASK = False


def _add_adapter_keys(cfg: CN) -> None:
    """Mask-Adapter head, matcher, losses, and the package's own behaviour switches."""
    cfg.MODEL.MASK_ADAPTER = CN()
    # Registered adapter name.
    cfg.MODEL.MASK_ADAPTER.NAME = "MASKAdapterHead"
    # Channels of the binary-mask embedding inside the adapter.
    cfg.MODEL.MASK_ADAPTER.MASK_IN_CHANNELS = 16
    # Adapter width (768 for ConvNeXt-B too, as in the released checkpoints).
    cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS = 768
    # K: semantic activation maps per mask, averaged into one embedding.
    cfg.MODEL.MASK_ADAPTER.NUM_OUTPUT_MAPS = 16
    # Gradient checkpointing inside the adapter (saves memory, costs time).
    cfg.MODEL.MASK_ADAPTER.USE_CHECKPOINT = False
    # Stage 1 for MAFT+: build the MAFT+ dense projection (official stage-1 MAFT configs set True).
    cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT = False
    # Binarization threshold of generator mask probabilities fed to the adapter (official stage-1 default 0.45).
    cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD = 0.50
    # Stage 2: minimum IoU between a predicted mask and a GT mask to count as matched.
    cfg.MODEL.MASK_ADAPTER.IOU_THRESHOLD = 0.7
    # Stage 2: weight of the cosine mask-consistency loss.
    cfg.MODEL.MASK_ADAPTER.COS_WEIGHT = 5.0
    # Stage 2: GT-mask slots per image.
    cfg.MODEL.MASK_ADAPTER.NUM_GT_MASKS = 16
    # Stage 2: matched predicted-mask slots per image (plus as many matched-GT slots).
    cfg.MODEL.MASK_ADAPTER.NUM_PRED_MASKS = 8

    # Ours. Dense adapter input: "pixelwise" (FC-CLIP), "maftp_scrambled" (MAFT+'s NCHW reshape without
    # permute, kept because the MAFT+ CDT and adapters were trained on it), "auto".
    cfg.MODEL.MASK_ADAPTER.DENSE_PROJECTION = "auto"
    # Ours. MAFT+ CDT layout: "panoptic", "semantic", "auto" (= follow TEST.PANOPTIC_ON,
    # as the official code does, so that the released weights are evaluated as they were).
    cfg.MODEL.MASK_ADAPTER.CDT_VARIANT = "auto"
    # Ours. Probability threshold binarizing IoU-matched predictions; -1 = auto (0.4 FCCLIP, 0.5 MAFT+,
    # the official per-architecture values).
    cfg.MODEL.MASK_ADAPTER.MATCH_PRED_THRESHOLD = -1.0
    # Ours. Stop-gradient on the GT side of the cosine loss: "true", "false", "auto" (official: FCCLIP
    # detaches, MAFT+ does not).
    # Quote the value in YAML ("true"): an unquoted true is a bool and YACS rejects it for a string key.
    cfg.MODEL.MASK_ADAPTER.COS_STOP_GRAD = "auto"
    # Ours. Exclude empty padding slots from the cosine loss (official: included).
    cfg.MODEL.MASK_ADAPTER.COS_LOSS_SKIP_PADDING = False
    # Ours. N in stage 1: GT-mask slots per image.
    cfg.MODEL.MASK_ADAPTER.WARMUP_NUM_MASKS = 32
    # Ours. Out-of-vocabulary classifier: "adapter" or "mask_pooling" (plain CLIP mask pooling).
    cfg.MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER = "adapter"
    # Ours. Directory of the on-disk text-embedding cache; "" = in-memory only.
    cfg.MODEL.MASK_ADAPTER.TEXT_CACHE_DIR = ""
    # Ours. Masks per adapter call at inference (bounds memory); 0 = all Q at once.
    cfg.MODEL.MASK_ADAPTER.INFERENCE_CHUNK = 0
    # Ours. Inference speed (GETTING_STARTED "Speed and memory"). Memory budget (MB) of the adapter's inference
    # activations: sets the masks per group (exact).
    cfg.MODEL.MASK_ADAPTER.INFERENCE_MEMORY_MB = 128
    # Ours. Compute identical resized masks (empty masks, duplicated proposals) once at inference (exact).
    cfg.MODEL.MASK_ADAPTER.DEDUPE_MASKS = True
    # Ours. Autocast of the backbone and the adapter at inference: "none", "bf16" or "fp16" (approximate).
    cfg.MODEL.MASK_ADAPTER.AMP_DTYPE = "none"
    # Ours. torch.compile mode of the adapter at inference: "none", "default", "reduce-overhead" (CUDA graphs on
    # static shapes) or "max-autotune".
    cfg.MODEL.MASK_ADAPTER.COMPILE = "none"
    # Ours. Opt-in approximation: the adapter only on the k proposals per image that plain mask pooling scores
    # highest; the others keep their mask-pooled embedding. 0 = off (every proposal).
    cfg.MODEL.MASK_ADAPTER.ADAPTER_TOP_K = 0
    # Ours. Skip the adapter for void queries where the outputs stay identical (panoptic, semantic argmax;
    # meta_arch/void_skip.py): "exact", or "none" to run every query.
    cfg.MODEL.MASK_ADAPTER.VOID_SKIP = "exact"
    # Ours. Second checkpoint whose sem_seg_head.* / void_embedding.* are loaded on top of MODEL.WEIGHTS
    # (stage 2 = stage-1 checkpoint + base generator, no manual fusion); "" = none.
    cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS = ""
    # Ours. D seen by the adapter; 0 = the built CLIP backbone's embedding width.
    cfg.MODEL.MASK_ADAPTER.CLIP_DIM = 0


def _add_maft_keys(cfg: CN) -> None:
    """MAFT+ keys (official lowercase spelling)."""
    # MAFT+ content-dependent transfer (CDT): [D, attention heads].
    cfg.MODEL.cdt_params = [768, 8]
    # MAFT+ activation name inside the CDT MLP.
    cfg.MODEL.relu = "relu"


def _add_sam_keys(cfg: CN) -> None:
    """Training-free path: an automatic SAM mask generator supplies the proposals."""
    cfg.MODEL.SAM = CN()
    # SAM model type in the segment_anything registry ("vit_b", "vit_l", "vit_h").
    cfg.MODEL.SAM.MODEL_TYPE = "vit_b"
    # Path of the SAM checkpoint (no weights are bundled); "" = must be set to use the SAM path.
    cfg.MODEL.SAM.CHECKPOINT = ""
    # Automatic mask generator: points per image side of the prompt grid.
    cfg.MODEL.SAM.POINTS_PER_SIDE = 32
    # Automatic mask generator: minimum predicted IoU of a kept mask.
    cfg.MODEL.SAM.PRED_IOU_THRESH = 0.88
    # Automatic mask generator: minimum stability score of a kept mask.
    cfg.MODEL.SAM.STABILITY_SCORE_THRESH = 0.95
    # Automatic mask generator: remove holes/islands smaller than this many pixels; 0 = off.
    cfg.MODEL.SAM.MIN_MASK_REGION_AREA = 0
    # SAM2 mask source (package sam2; mask_adapter/modeling/mask_generators.py). The settings above apply to it too.
    # Mask source of the training-free path: "sam" (MODEL.SAM.MODEL_TYPE / CHECKPOINT) or "sam2" (MODEL.SAM2.*).
    cfg.MODEL.SAM.SOURCE = "sam"
    cfg.MODEL.SAM2 = CN()
    # SAM2 model: a config of the sam2 package by file stem ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+",
    # "sam2.1_hiera_l", "sam2_hiera_*") or as "configs/sam2.1/sam2.1_hiera_l.yaml".
    cfg.MODEL.SAM2.CONFIG = "sam2.1_hiera_l"
    # Path of the SAM2 checkpoint of CONFIG (e.g. sam2.1_hiera_large.pt; none bundled); "" = must be set.
    cfg.MODEL.SAM2.CHECKPOINT = ""
    # SAM2 generator: refine every mask by one more decoder pass prompted with it (use_m2m; slower).
    cfg.MODEL.SAM2.USE_M2M = False


def _add_dataset_keys(cfg: CN) -> None:
    """Vocabulary override and benchmark output."""
    # Optional vocabulary file ("id:name,syn" lines) replacing the dataset's class names; "" = dataset classes.
    cfg.DATASETS.VOCABULARY = ""
    # File where benchmark/timing results are written; "" = log only.
    cfg.TEST.BENCHMARK_OUTPUT = ""
    # Reliability: True = an image whose prediction or evaluation raises is skipped and listed at the end of the
    # evaluation; False = the evaluation stops, naming the file (tools/evaluate_benchmarks.py --skip-failed-images).
    cfg.TEST.SKIP_FAILED_IMAGES = False


def _add_compat_keys(cfg: CN) -> None:
    """Keys that official files set but this package does not use; accepted so they merge."""
    # Accepted for official configs; unused (MAFT+ relation-consistency weight, issue #9).
    cfg.MODEL.rc_weights = None
    # Accepted for official configs; unused (multi-dataset loader is not ported).
    cfg.DATALOADER.DATASET_RATIO = [1, 1]
    cfg.DATALOADER.USE_DIFF_BS_SIZE = True
    cfg.DATALOADER.DATASET_BS = [2, 2]
    cfg.DATALOADER.USE_RFS = [False, False]
    cfg.DATALOADER.MULTI_DATASET_GROUPING = True
    cfg.DATALOADER.DATASET_ANN = ["box", "box"]
    # Accepted for official configs; unused (Swin backbone of Mask2Former).
    cfg.MODEL.SWIN = CN()
    cfg.MODEL.SWIN.PRETRAIN_IMG_SIZE = 224
    cfg.MODEL.SWIN.PATCH_SIZE = 4
    cfg.MODEL.SWIN.EMBED_DIM = 96
    cfg.MODEL.SWIN.DEPTHS = [2, 2, 6, 2]
    cfg.MODEL.SWIN.NUM_HEADS = [3, 6, 12, 24]
    cfg.MODEL.SWIN.WINDOW_SIZE = 7
    cfg.MODEL.SWIN.MLP_RATIO = 4.0
    cfg.MODEL.SWIN.QKV_BIAS = True
    cfg.MODEL.SWIN.QK_SCALE = None
    cfg.MODEL.SWIN.DROP_RATE = 0.0
    cfg.MODEL.SWIN.ATTN_DROP_RATE = 0.0
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.3
    cfg.MODEL.SWIN.APE = False
    cfg.MODEL.SWIN.PATCH_NORM = True
    cfg.MODEL.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.SWIN.USE_CHECKPOINT = False


_ADDERS: tuple[Callable[[CN], None], ...] = (
    _add_deeplab_keys,
    _add_input_solver_keys,
    _add_mask_former_keys,
    _add_clip_keys,
    _add_adapter_keys,
    _add_maft_keys,
    _add_sam_keys,
    _add_dataset_keys,
    _add_compat_keys,
)


def _copy_missing(dst: CN, src: CN) -> None:
    """Add to `dst` every key of `src` that `dst` lacks, recursing into sub-nodes; keeps existing values."""
    for key, value in src.items():
        if key not in dst:
            setattr(dst, key, copy.deepcopy(value))
        elif isinstance(value, CN) and isinstance(dst[key], CN):
            _copy_missing(dst[key], value)


def add_mask_adapter_config(cfg: CN) -> None:
    """Declare every key of the package (and detectron2's DeepLab keys) on `cfg`.

    Idempotent: keys already present (from an earlier call, from detectron2's `add_deeplab_config`, or from
    an official `add_*_config`) keep their current values; only missing keys are added with their defaults.

    Args:
        cfg: a detectron2 config, usually from `get_cfg()`. Must not be frozen if keys are missing.

    Returns:
        None; `cfg` is modified in place.
    """
    defaults = cfg.clone()
    defaults.defrost()
    for adder in _ADDERS:
        adder(defaults)
    _copy_missing(cfg, defaults)
