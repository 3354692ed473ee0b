"""Tests of mask_adapter.config and the YAML files under configs/.

Covers: every YAML merges; the official merged reference configs merge and are reproduced by our copies of the
official YAML files; idempotence; the documented defaults; check_config errors; the "auto" resolvers and the
meta-architectures' ``auto_defaults``; the adapter width taken from the built backbone; config modules import no
modeling code; unknown YAML keys; our added configs (eval.yaml, *_from_warmup.yaml, tiny/).
"""

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml
from detectron2.config import CfgNode, get_cfg

from mask_adapter.config import (
    ArchDefaults,
    add_mask_adapter_config,
    arch_defaults,
    check_config,
    merge_config,
    resolve_cdt_variant,
    resolve_cos_stop_grad,
    resolve_dense_projection,
    resolve_match_pred_threshold,
    resolve_seed,
)
from tests import REPO
from tests._reference import MISSING_MESSAGE, REFERENCE_DIR

CONFIG_DIR = REPO / "configs"
ALL_YAMLS = sorted(CONFIG_DIR.rglob("*.yaml"))
# A missing reference folder yields one failing case (not zero cases, which would pass silently).
REFERENCE_YAMLS = sorted(REFERENCE_DIR.glob("*_config.yaml")) if REFERENCE_DIR.is_dir() else [REFERENCE_DIR]

FCCLIP_L = "mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml"
MAFTP_B = "mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml"
MAFTP_L = "mixed-mask-training/maftp/semantic/train_semantic_large_eval_a150.yaml"
WARMUP_L = "ground-truth-warmup/mask-adapter/mask_adapter_convnext_large_cocopan_eval_ade20k.yaml"

# Official config files that load verbatim.
OFFICIAL_FILES = [
    "ground-truth-warmup/Base-COCO-PanopticSegmentation.yaml",
    "ground-truth-warmup/maskformer2_R50_bs16_50ep.yaml",
    WARMUP_L,
    "ground-truth-warmup/mask-adapter/mask_adapter_maft_convnext_base_cocostuff_eval_ade20k.yaml",
    "ground-truth-warmup/mask-adapter/mask_adapter_maft_convnext_large_cocostuff_eval_ade20k.yaml",
    "mixed-mask-training/fc-clip/Base-COCO-PanopticSegmentation.yaml",
    "mixed-mask-training/fc-clip/maskformer2_R50_bs16_50ep.yaml",
    *[
        f"mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_{s}.yaml"
        for s in ("ade20k", "a847", "pc459", "pc59", "pas20", "coco")
    ],
    "mixed-mask-training/maftp/Base-COCO-PanopticSegmentation.yaml",
    "mixed-mask-training/maftp/maskformer2_R50_bs16_50ep.yaml",
    MAFTP_B,
    MAFTP_L,
    *[f"mixed-mask-training/maftp/semantic/eval_{s}.yaml" for s in ("a847", "pas20", "pc459", "pc59")],
]


def new_cfg() -> CfgNode:
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    return cfg


def load(rel_path: str) -> CfgNode:
    cfg = new_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / rel_path))
    return cfg


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def as_plain(cfg: CfgNode) -> dict[str, Any]:
    """Flat key -> value dict, normalized through a YAML dump (tuples become lists)."""
    return flatten(yaml.safe_load(cfg.dump()))


# ----------------------------------------------------------------------------------------- every file merges
@pytest.mark.parametrize("path", ALL_YAMLS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_yaml_merges_and_validates(path: Path) -> None:
    cfg = new_cfg()
    cfg.merge_from_file(str(path))
    check_config(cfg)


def test_official_files_are_present() -> None:
    missing = [p for p in OFFICIAL_FILES if not (CONFIG_DIR / p).is_file()]
    assert not missing
    assert (CONFIG_DIR / "mixed-mask-training/maftp/semantic/eval.yaml").is_file()


@pytest.mark.parametrize("path", REFERENCE_YAMLS, ids=lambda p: p.name)
def test_reference_merged_config_merges(path: Path) -> None:
    if not REFERENCE_DIR.is_dir():
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    cfg = new_cfg()
    cfg.merge_from_file(str(path))
    check_config(cfg)
    reference = flatten(yaml.safe_load(path.read_text()))
    assert set(reference) <= set(as_plain(cfg))


# (our copy of the official file, reference dump, keys allowed to differ, overrides the reference run applied)
_FAITHFUL_CASES = [
    (FCCLIP_L, "fcclip_convnext_large_ade20k_config.yaml", set(), {}),
    (MAFTP_B, "maftp_base_a150_config.yaml", set(), {"SEED": 123}),
    (MAFTP_L, "maftp_large_a150_config.yaml", set(), {"SEED": 123}),
    # Official stage-1 MASK_THRESHOLD default is 0.45; ours is 0.50 (it only moves border pixels of the oracle
    # instance eval).
    (
        WARMUP_L,
        "gtwarmup_mask_adapter_convnext_large_cocopan_config.yaml",
        {"MODEL.MASK_ADAPTER.MASK_THRESHOLD"},
        {},
    ),
]


@pytest.mark.parametrize("rel_path,ref_name,allowed,overrides", _FAITHFUL_CASES, ids=lambda x: str(x)[:40])
def test_official_yaml_reproduces_reference_config(rel_path, ref_name, allowed, overrides) -> None:
    ref_path = REFERENCE_DIR / ref_name
    if not ref_path.is_file():
        pytest.fail(MISSING_MESSAGE if not REFERENCE_DIR.is_dir() else f"{ref_path} is missing", pytrace=False)
    cfg = load(rel_path)
    cfg.MODEL.DEVICE = "cpu"  # the reference tables were produced on CPU
    for key, value in overrides.items():
        setattr(cfg, key, value)
    ours = as_plain(cfg)
    reference = flatten(yaml.safe_load(ref_path.read_text()))
    diffs = {k: (ours.get(k), v) for k, v in reference.items() if k not in allowed and ours.get(k) != v}
    assert diffs == {}


# ------------------------------------------------------------------------------------------- defaults, keys
def test_spec_defaults() -> None:
    cfg = new_cfg()
    ma, fc, mf, ssh = (
        cfg.MODEL.MASK_ADAPTER,
        cfg.MODEL.FC_CLIP,
        cfg.MODEL.MASK_FORMER,
        cfg.MODEL.SEM_SEG_HEAD,
    )
    assert (ma.NAME, ma.MASK_IN_CHANNELS, ma.NUM_CHANNELS, ma.NUM_OUTPUT_MAPS) == (
        "MASKAdapterHead",
        16,
        768,
        16,
    )
    assert (ma.USE_CHECKPOINT, ma.TRAIN_MAFT, ma.MASK_THRESHOLD) == (False, False, 0.5)
    assert (ma.IOU_THRESHOLD, ma.COS_WEIGHT, ma.NUM_GT_MASKS, ma.NUM_PRED_MASKS) == (
        0.7,
        5.0,
        16,
        8,
    )
    assert (fc.CLIP_MODEL_NAME, fc.CLIP_PRETRAINED_WEIGHTS) == (
        "convnext_large_d_320",
        "laion2b_s29b_b131k_ft_soup",
    )
    assert (fc.EMBED_DIM, fc.GEOMETRIC_ENSEMBLE_ALPHA, fc.GEOMETRIC_ENSEMBLE_BETA) == (
        768,
        0.4,
        0.8,
    )
    assert fc.ENSEMBLE_ON_VALID_MASK is False
    assert (cfg.MODEL.rc_weights, cfg.MODEL.cdt_params, cfg.MODEL.relu) == (None, [768, 8], "relu")
    dl = cfg.DATALOADER
    assert (dl.DATASET_RATIO, dl.USE_DIFF_BS_SIZE, dl.DATASET_BS) == ([1, 1], True, [2, 2])
    assert (dl.USE_RFS, dl.MULTI_DATASET_GROUPING, dl.DATASET_ANN) == (
        [False, False],
        True,
        ["box", "box"],
    )
    inp = cfg.INPUT
    assert (inp.DATASET_MAPPER_NAME, inp.COLOR_AUG_SSD, inp.CROP.SINGLE_CATEGORY_MAX_AREA) == (
        "mask_former_semantic",
        False,
        1.0,
    )
    assert (inp.SIZE_DIVISIBILITY, inp.IMAGE_SIZE, inp.MIN_SCALE, inp.MAX_SCALE) == (
        -1,
        1024,
        0.1,
        2.0,
    )
    sol = cfg.SOLVER
    assert (sol.WEIGHT_DECAY_EMBED, sol.OPTIMIZER, sol.BACKBONE_MULTIPLIER) == (0.0, "ADAMW", 0.1)
    assert (sol.POLY_LR_POWER, sol.POLY_LR_CONSTANT_ENDING) == (0.9, 0.0)
    assert (
        mf.DEEP_SUPERVISION,
        mf.NO_OBJECT_WEIGHT,
        mf.CLASS_WEIGHT,
        mf.DICE_WEIGHT,
        mf.MASK_WEIGHT,
    ) == (True, 0.1, 1.0, 1.0, 20.0)
    assert (
        mf.NHEADS,
        mf.DROPOUT,
        mf.DIM_FEEDFORWARD,
        mf.ENC_LAYERS,
        mf.DEC_LAYERS,
        mf.PRE_NORM,
        mf.HIDDEN_DIM,
    ) == (8, 0.1, 2048, 0, 6, False, 256)
    assert (
        mf.NUM_OBJECT_QUERIES,
        mf.TRANSFORMER_IN_FEATURE,
        mf.ENFORCE_INPUT_PROJ,
        mf.SIZE_DIVISIBILITY,
    ) == (100, "res5", False, 32)
    assert (
        mf.TRANSFORMER_DECODER_NAME,
        mf.TRAIN_NUM_POINTS,
        mf.OVERSAMPLE_RATIO,
        mf.IMPORTANCE_SAMPLE_RATIO,
    ) == ("MultiScaleMaskedTransformerDecoder", 12544, 3.0, 0.75)
    t = mf.TEST
    assert (
        t.SEMANTIC_ON,
        t.INSTANCE_ON,
        t.PANOPTIC_ON,
        t.OBJECT_MASK_THRESHOLD,
        t.OVERLAP_THRESHOLD,
    ) == (True, False, False, 0.0, 0.0)
    assert (
        t.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE,
        t.SEMANTIC_CHUNK,
        cfg.TEST.DETECTIONS_PER_IMAGE,
    ) == (False, 0, 100)
    assert (ssh.MASK_DIM, ssh.TRANSFORMER_ENC_LAYERS, ssh.PIXEL_DECODER_NAME) == (
        256,
        0,
        "BasePixelDecoder",
    )
    assert ssh.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES == ["res3", "res4", "res5"]
    assert (
        ssh.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS,
        ssh.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS,
    ) == (4, 8)
    assert cfg.MODEL.SWIN.DEPTHS == [2, 2, 6, 2] and cfg.MODEL.SWIN.EMBED_DIM == 96


def test_new_key_defaults() -> None:
    cfg = new_cfg()
    ma = cfg.MODEL.MASK_ADAPTER
    assert (ma.DENSE_PROJECTION, ma.CDT_VARIANT, ma.MATCH_PRED_THRESHOLD, ma.COS_STOP_GRAD) == (
        "auto",
        "auto",
        -1.0,
        "auto",
    )
    assert (ma.COS_LOSS_SKIP_PADDING, ma.WARMUP_NUM_MASKS, ma.OUT_VOCAB_CLASSIFIER) == (
        False,
        32,
        "adapter",
    )
    assert (ma.TEXT_CACHE_DIR, ma.INFERENCE_CHUNK) == ("", 0)
    assert "FAST_INFERENCE" not in ma  # removed: it selected nothing
    assert (ma.GENERATOR_WEIGHTS, ma.CLIP_DIM) == ("", 0)
    sam = cfg.MODEL.SAM
    assert (sam.MODEL_TYPE, sam.CHECKPOINT, sam.POINTS_PER_SIDE) == ("vit_b", "", 32)
    assert (sam.PRED_IOU_THRESH, sam.STABILITY_SCORE_THRESH, sam.MIN_MASK_REGION_AREA) == (
        0.88,
        0.95,
        0,
    )
    assert (cfg.DATASETS.VOCABULARY, cfg.TEST.BENCHMARK_OUTPUT) == ("", "")


def test_add_config_is_idempotent() -> None:
    cfg = new_cfg()
    before = cfg.dump()
    add_mask_adapter_config(cfg)
    assert cfg.dump() == before
    cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS = 32
    cfg.SOLVER.POLY_LR_POWER = 1.0
    add_mask_adapter_config(cfg)
    assert cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS == 32 and cfg.SOLVER.POLY_LR_POWER == 1.0


def test_add_config_completes_a_partial_node() -> None:
    """Keys declared by someone else (e.g. an official adder) keep their values; missing siblings are added."""
    cfg = get_cfg()
    cfg.MODEL.MASK_ADAPTER = CfgNode()
    cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD = 0.45
    add_mask_adapter_config(cfg)
    assert cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD == 0.45
    assert cfg.MODEL.MASK_ADAPTER.NUM_OUTPUT_MAPS == 16
    assert as_plain(cfg).keys() == as_plain(new_cfg()).keys()


def test_unknown_key_raises_key_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("MODEL:\n  MASK_ADAPTER:\n    NUM_OUTPUT_MAP: 8\n")
    cfg = new_cfg()
    with pytest.raises(KeyError, match="MODEL.MASK_ADAPTER.NUM_OUTPUT_MAP"):
        cfg.merge_from_file(str(path))


def test_official_maft_keys_merge_from_lowercase_yaml(tmp_path: Path) -> None:
    """Issue #9: `KeyError: MODEL.rc_weights` when an official MAFT+ file is merged."""
    path = tmp_path / "maft.yaml"
    path.write_text("MODEL:\n  rc_weights: 0.1\n  relu: relu\n  cdt_params: [640, 8]\n")
    cfg = new_cfg()
    cfg.merge_from_file(str(path))
    assert (cfg.MODEL.rc_weights, cfg.MODEL.cdt_params) == (0.1, [640, 8])


# ------------------------------------------------------------------------------------------- check_config
@pytest.mark.parametrize(
    "key,value,allowed",
    [
        ("DENSE_PROJECTION", "permuted", "auto, pixelwise, maftp_scrambled"),
        ("CDT_VARIANT", "instance", "auto, panoptic, semantic"),
        ("COS_STOP_GRAD", "maybe", "auto, true, false"),
        ("OUT_VOCAB_CLASSIFIER", "clip", "adapter, mask_pooling"),
    ],
)
def test_check_config_names_key_and_allowed_values(key: str, value: str, allowed: str) -> None:
    cfg = new_cfg()
    cfg.MODEL.MASK_ADAPTER[key] = value
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    message = str(err.value)
    assert f"MODEL.MASK_ADAPTER.{key}" in message and repr(value) in message and allowed in message


def test_check_config_reports_every_problem_in_one_error() -> None:
    cfg = new_cfg()
    cfg.MODEL.MASK_ADAPTER.DENSE_PROJECTION = "x"
    cfg.MODEL.MASK_ADAPTER.INFERENCE_CHUNK = -1
    cfg.MODEL.MASK_ADAPTER.MATCH_PRED_THRESHOLD = 1.5
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message
    for key in ("DENSE_PROJECTION", "INFERENCE_CHUNK", "MATCH_PRED_THRESHOLD"):
        assert f"MODEL.MASK_ADAPTER.{key}" in message


def test_check_config_accepts_case_and_bool_for_cos_stop_grad() -> None:
    cfg = new_cfg()
    for value in ("TRUE", "False", True, False):
        cfg.MODEL.MASK_ADAPTER.COS_STOP_GRAD = value
        check_config(cfg)
        assert resolve_cos_stop_grad(cfg, _defaults(cfg)) is (str(value).lower() == "true")


# ------------------------------------------------------------------------------------------- resolvers
def _defaults(cfg: CfgNode) -> ArchDefaults:
    return arch_defaults(cfg.MODEL.META_ARCHITECTURE)


def _with_defaults(cfg: CfgNode):
    return cfg, _defaults(cfg)


def _arch_cfg(meta_arch: str, train_maft: bool = False, panoptic_on: bool = False) -> CfgNode:
    cfg = new_cfg()
    cfg.MODEL.META_ARCHITECTURE = meta_arch
    cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT = train_maft
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = panoptic_on
    return cfg


def test_auto_rules_fcclip() -> None:
    cfg = _arch_cfg("FCCLIP")
    assert resolve_dense_projection(cfg, _defaults(cfg)) == "pixelwise"
    assert resolve_match_pred_threshold(cfg, _defaults(cfg)) == pytest.approx(0.4)
    assert resolve_cos_stop_grad(cfg, _defaults(cfg)) is True


@pytest.mark.parametrize("meta_arch", ["MAFT_Plus", "MAFTPlus"])
def test_auto_rules_maft(meta_arch: str) -> None:
    cfg = _arch_cfg(meta_arch)
    assert resolve_dense_projection(cfg, _defaults(cfg)) == "maftp_scrambled"
    assert resolve_match_pred_threshold(cfg, _defaults(cfg)) == pytest.approx(0.5)
    assert resolve_cos_stop_grad(cfg, _defaults(cfg)) is False


def test_auto_dense_projection_follows_train_maft() -> None:
    assert resolve_dense_projection(*_with_defaults(_arch_cfg("MASK_Adapter", train_maft=True))) == "maftp_scrambled"
    assert resolve_dense_projection(*_with_defaults(_arch_cfg("MASK_Adapter", train_maft=False))) == "pixelwise"


def test_auto_cdt_variant_follows_panoptic_on() -> None:
    assert resolve_cdt_variant(_arch_cfg("MAFT_Plus", panoptic_on=True)) == "panoptic"
    assert resolve_cdt_variant(_arch_cfg("MAFT_Plus", panoptic_on=False)) == "semantic"


def test_explicit_values_override_auto() -> None:
    cfg = _arch_cfg("MAFT_Plus", panoptic_on=False)
    ma = cfg.MODEL.MASK_ADAPTER
    ma.DENSE_PROJECTION, ma.CDT_VARIANT, ma.MATCH_PRED_THRESHOLD, ma.COS_STOP_GRAD = (
        "pixelwise",
        "panoptic",
        0.3,
        "true",
    )
    assert resolve_dense_projection(cfg, _defaults(cfg)) == "pixelwise"
    assert resolve_cdt_variant(cfg) == "panoptic"
    assert resolve_match_pred_threshold(cfg, _defaults(cfg)) == pytest.approx(0.3)
    assert resolve_cos_stop_grad(cfg, _defaults(cfg)) is True


@pytest.mark.parametrize(
    "name,projection,threshold,stop_grad,seed,color_aug",
    [
        ("FCCLIP", "pixelwise", 0.4, True, -1, True),
        ("Mask2FormerCLIP", "pixelwise", 0.4, True, -1, True),
        ("MAFT_Plus", "maftp_scrambled", 0.5, False, 123, True),
        ("MAFTPlus", "maftp_scrambled", 0.5, False, 123, True),
        ("MASK_Adapter", "pixelwise", 0.4, True, -1, False),
        ("MaskAdapterWarmup", "pixelwise", 0.4, True, -1, False),
    ],
)
def test_auto_defaults_are_class_attributes(name, projection, threshold, stop_grad, seed, color_aug) -> None:
    """What "auto" means comes from the registered class, the official alias included."""
    from detectron2.modeling import META_ARCH_REGISTRY

    defaults = META_ARCH_REGISTRY.get(name).auto_defaults
    assert defaults == arch_defaults(name)
    assert (defaults.dense_projection, defaults.match_pred_threshold, defaults.cos_stop_grad) == (
        projection,
        threshold,
        stop_grad,
    )
    assert (defaults.seed, defaults.color_aug_ssd) == (seed, color_aug)


def test_unknown_meta_architecture_has_fcclip_defaults() -> None:
    assert arch_defaults("NoSuchArchitecture") == ArchDefaults()


def test_resolve_seed_uses_the_default_only_when_negative() -> None:
    cfg = _arch_cfg("MAFT_Plus")
    cfg.SEED = -1
    assert resolve_seed(cfg, _defaults(cfg)) == 123
    cfg.SEED = 7
    assert resolve_seed(cfg, _defaults(cfg)) == 7
    cfg = _arch_cfg("FCCLIP")
    cfg.SEED = -1
    assert resolve_seed(cfg, _defaults(cfg)) == -1


@pytest.mark.parametrize("explicit,expected", [(0, 24), (96, 96)])
def test_adapter_width_is_the_given_backbone_width_unless_set(explicit: int, expected: int) -> None:
    """build_mask_adapter takes D from the built backbone; no model name is parsed (a "_large" name stays 24)."""
    from mask_adapter.modeling.adapter.build import build_mask_adapter

    cfg = new_cfg()
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = "convnext_large_d_320"
    cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS = 16
    cfg.MODEL.MASK_ADAPTER.CLIP_DIM = explicit
    head = build_mask_adapter(cfg, 24)
    assert head.clip_dim == expected
    assert head.fuse.weight.shape[1] == expected


@pytest.mark.parametrize("module", ["__init__.py", "keys.py", "resolve.py", "merge.py"])
def test_config_modules_import_no_modeling_code(module: str) -> None:
    """The config package (but its official_names module, which registers aliases of model classes) imports
    none of the package's modeling code, so the modeling code can import it."""
    tree = ast.parse((REPO / "mask_adapter" / "config" / module).read_text())
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    ours = [m for m in imported if m.lstrip(".").startswith("modeling") or m.startswith("mask_adapter.modeling")]
    assert imported and not ours and not [m for m in imported if m.startswith("open_clip")]


# ------------------------------------------------------------------------------------------- official values
def test_official_fcclip_large_values() -> None:
    cfg = load(FCCLIP_L)
    assert cfg.MODEL.META_ARCHITECTURE == "FCCLIP"
    assert (
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
    ) == (0.7, 0.9)
    assert cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD == 0.5
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 250
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.IMS_PER_BATCH) == (
        49286,
        (43371, 47314),
        24,
    )
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.IMAGE_SIZE) == (
        896,
        896,
        1024,
    )
    assert cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME == "convnext_large_d_320"


def test_official_maftp_values() -> None:
    base = load(MAFTP_B)
    assert base.MODEL.META_ARCHITECTURE == "MAFT_Plus"
    assert base.MODEL.MASK_ADAPTER.MASK_THRESHOLD == 0.45
    assert base.MODEL.cdt_params == [640, 8]
    assert (
        base.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        base.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
    ) == (0.7, 1.0)
    assert (
        base.SOLVER.LR_SCHEDULER_NAME,
        base.SOLVER.WEIGHT_DECAY,
        base.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES,
    ) == ("WarmupPolyLR", 2e-5, 100)
    assert resolve_cdt_variant(base) == "semantic"
    large = load(MAFTP_L)
    assert large.MODEL.MASK_ADAPTER.MASK_THRESHOLD == pytest.approx(0.40)
    assert (
        large.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        large.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
    ) == (0.8, 1.0)
    assert large.MODEL.MASK_FORMER.TEST.PANOPTIC_ON and large.MODEL.MASK_FORMER.TEST.INSTANCE_ON
    assert resolve_cdt_variant(large) == "panoptic"


def test_official_warmup_values() -> None:
    cfg = load("ground-truth-warmup/mask-adapter/mask_adapter_maft_convnext_base_cocostuff_eval_ade20k.yaml")
    assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.MASK_ADAPTER.TRAIN_MAFT) == (
        "MASK_Adapter",
        True,
    )
    assert resolve_dense_projection(cfg, _defaults(cfg)) == "maftp_scrambled"
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.INPUT.IMAGE_SIZE) == (8, 295717, 768)
    assert cfg.INPUT.COLOR_AUG_SSD is True  # set by the base YAML, ignored by the stage-1 mapper (as officially)


@pytest.mark.parametrize("dataset", ["a847", "pas20", "pc459", "pc59"])
def test_maftp_eval_files_keep_the_all_on_behaviour(dataset: str) -> None:
    cfg = load(f"mixed-mask-training/maftp/semantic/eval_{dataset}.yaml")
    assert cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME == "convnext_large_d_320"
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON is False  # set by the official eval_* file
    assert resolve_cdt_variant(cfg) == "panoptic"
    assert cfg.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE is True
    assert len(cfg.DATASETS.TEST) == 1 and cfg.DATASETS.TEST[0].startswith("openvocab_")


def test_maftp_eval_yaml_keeps_panoptic_and_instance_on() -> None:
    cfg = load("mixed-mask-training/maftp/semantic/eval.yaml")
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON and cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON
    assert cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD == pytest.approx(0.40)


@pytest.mark.parametrize(
    "rel_path,weights",
    [
        (
            "mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_from_warmup.yaml",
            "fcclip_cocopan.pth",
        ),
        ("mixed-mask-training/maftp/semantic/train_semantic_base_from_warmup.yaml", "maftp_b.pth"),
        ("mixed-mask-training/maftp/semantic/train_semantic_large_from_warmup.yaml", "maftp_l.pth"),
    ],
)
def test_from_warmup_configs_set_generator_weights(rel_path: str, weights: str) -> None:
    cfg = load(rel_path)
    assert cfg.MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS.endswith(weights)
    assert cfg.MODEL.WEIGHTS == ""


# ------------------------------------------------------------------------------------------- tiny configs
@pytest.mark.parametrize(
    "name,meta_arch",
    [
        ("fcclip_tiny", "FCCLIP"),
        ("maftp_tiny", "MAFT_Plus"),
        ("mask2former_clip_tiny", "Mask2FormerCLIP"),
        ("warmup_tiny", "MASK_Adapter"),
    ],
)
def test_tiny_configs(name: str, meta_arch: str) -> None:
    cfg = load(f"tiny/{name}.yaml")
    assert cfg.MODEL.META_ARCHITECTURE == meta_arch
    assert (cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME, cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS) == (
        "tiny_convnext_atto",
        "",
    )
    assert (cfg.MODEL.DEVICE, cfg.DATALOADER.NUM_WORKERS, cfg.SOLVER.AMP.ENABLED) == (
        "cpu",
        0,
        False,
    )
    assert (cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS, cfg.MODEL.MASK_FORMER.HIDDEN_DIM) == (32, 32)
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.SOLVER.CHECKPOINT_PERIOD) == (
        2,
        40,
        20,
    )
    assert tuple(cfg.DATASETS.TRAIN) == ("synthetic_shapes_panoptic_train",)
    assert tuple(cfg.DATASETS.TEST) == ("synthetic_shapes_panoptic_val",)
    if meta_arch == "MAFT_Plus":
        assert cfg.MODEL.cdt_params == [64, 8]


def test_tiny_adapter_width_is_the_built_backbone_width() -> None:
    from detectron2.modeling import build_model

    cfg = load("tiny/fcclip_tiny.yaml")
    model = build_model(cfg)
    assert model.mask_adapter.clip_dim == model.backbone.embed_dim == cfg.MODEL.FC_CLIP.EMBED_DIM == 64


# ----------------------------------------------------------------------------------------------------------------
# merge_config: one-line errors for bad YAML files and command-line pairs
# ----------------------------------------------------------------------------------------------------------------
TINY = str(CONFIG_DIR / "tiny" / "fcclip_tiny.yaml")


def test_merge_config_applies_file_then_pairs():
    cfg = merge_config(new_cfg(), TINY, ["SOLVER.MAX_ITER", "7", "MODEL.MASK_ADAPTER.MASK_THRESHOLD", "0.25"])
    assert cfg.SOLVER.MAX_ITER == 7 and cfg.MODEL.MASK_ADAPTER.MASK_THRESHOLD == 0.25
    assert cfg.MODEL.META_ARCHITECTURE == "FCCLIP"


def test_merge_config_unknown_key_names_the_closest_keys():
    with pytest.raises(KeyError) as info:
        merge_config(new_cfg(), TINY, ["MODEL.MASK_ADAPTER.MASK_THRESHOLDS", "0.3"])
    message = info.value.args[0]
    assert message.startswith(
        "unknown config key MODEL.MASK_ADAPTER.MASK_THRESHOLDS (from the command line); did you mean "
        "MODEL.MASK_ADAPTER.MASK_THRESHOLD or "
    )
    assert "\n" not in message and message.endswith("?")


def test_merge_config_unknown_key_in_a_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"_BASE_: {TINY}\nMODEL:\n  NO_SUCH_KEY: 1\n")
    with pytest.raises(KeyError, match=rf"unknown config key MODEL.NO_SUCH_KEY \(from {path}\)"):
        merge_config(new_cfg(), str(path), [])


def test_merge_config_wrong_type_odd_pairs_missing_file_bad_yaml(tmp_path):
    with pytest.raises(
        ValueError, match=r"^config key SOLVER.MAX_ITER \(from the command line\) needs a value of type int"
    ):
        merge_config(new_cfg(), TINY, ["SOLVER.MAX_ITER", "'many'"])
    with pytest.raises(ValueError, match="odd number of items"):
        merge_config(new_cfg(), TINY, ["SOLVER.MAX_ITER"])
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.yaml; give an existing YAML file"):
        merge_config(new_cfg(), str(tmp_path / "nope.yaml"), [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL: [unclosed\n")
    with pytest.raises(ValueError, match=rf"config file {broken} is not valid YAML"):
        merge_config(new_cfg(), str(broken), [])
