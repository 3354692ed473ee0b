"""FC-CLIP generator head: shapes, key names vs the official tables, class head, registries."""

import logging

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY, build_sem_seg_head
from detectron2.utils.registry import Registry
from torch import nn

import mask_adapter.modeling.heads  # noqa: F401  (registers the head, pixel decoder and decoder)
from mask_adapter.config import add_mask_adapter_config
from mask_adapter.modeling.heads import FCCLIPHead
from mask_adapter.modeling.transformer_decoder import (
    PositionEmbeddingSine,
    mask_pool,
    register_once,
)
from mask_adapter.modeling.transformer_decoder.fcclip_decoder import (
    CrossAttentionLayer,
    _SampledMasks,
    additive_attention_mask,
    bilinear_sources,
)
from tests._reference import MISSING_MESSAGE, REFERENCE_DIR

REFERENCE = REFERENCE_DIR  # the official reference tables (tests/_reference.py)
STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
WIDTHS_L = [192, 384, 768, 1536]
WIDTHS_B = [128, 256, 512, 1024]


def _shapes(widths):
    return {k: ShapeSpec(channels=c, stride=STRIDES[k]) for k, c in zip(STRIDES, widths)}


def _reference_cfg(name):
    if not REFERENCE.is_dir():
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.merge_from_file(str(REFERENCE / f"{name}_config.yaml"))
    return cfg


def _reference_keys(name):
    rows = (REFERENCE / f"{name}_state_dict.tsv").read_text().splitlines()[1:]
    out = []
    for row in rows:
        if row.startswith("sem_seg_head."):
            key, shape = row.split("\t")[:2]
            out.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))))
    return out


@pytest.mark.parametrize(
    "name,widths",
    [
        ("fcclip_convnext_large_ade20k", WIDTHS_L),
        ("maftp_large_a150", WIDTHS_L),
        ("maftp_base_a150", WIDTHS_B),
    ],
)
def test_full_size_head_keys_match_reference(name, widths):
    torch.manual_seed(0)
    head = build_sem_seg_head(_reference_cfg(name), _shapes(widths))
    assert isinstance(head, FCCLIPHead)
    ours = [(f"sem_seg_head.{k}", tuple(v.shape)) for k, v in head.state_dict().items()]
    reference = _reference_keys(name)
    assert len(reference) == 301
    assert set(ours) == set(reference)
    assert ours == reference  # registration order too


def _tiny_cfg():
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NAME = "FCCLIPHead"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "MSDeformAttnPixelDecoder"
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.NORM = "GN"
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 1
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "multi_scale_pixel_decoder"
    cfg.MODEL.MASK_FORMER.HIDDEN_DIM = 32
    cfg.MODEL.MASK_FORMER.NHEADS = 4
    cfg.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 64
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = 4
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 5
    cfg.MODEL.MASK_FORMER.DROPOUT = 0.0
    cfg.MODEL.FC_CLIP.EMBED_DIM = 16
    return cfg


TINY_WIDTHS = [8, 16, 24, 40]


def _tiny_features(b=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(b, c, size // STRIDES[k], size // STRIDES[k], generator=g) for k, c in zip(STRIDES, TINY_WIDTHS)
    }


def _text(num_rows, dim=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(num_rows, dim, generator=g), dim=-1)


@pytest.fixture(scope="module")
def tiny_head():
    torch.manual_seed(0)
    return build_sem_seg_head(_tiny_cfg(), _shapes(TINY_WIDTHS)).eval()


def test_pixel_decoder_output_shapes(tiny_head):
    mask_features, enc, multi = tiny_head.pixel_decoder.forward_features(_tiny_features())
    assert mask_features.shape == (2, 32, 16, 16)
    assert enc.shape == (2, 32, 2, 2)
    assert [tuple(m.shape) for m in multi] == [(2, 32, 2, 2), (2, 32, 4, 4), (2, 32, 8, 8)]


def test_pixel_decoder_runs_in_fp32_under_autocast(tiny_head):
    feats = _tiny_features()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mask_features, _, _ = tiny_head.pixel_decoder.forward_features(feats)
    assert mask_features.dtype == torch.float32
    assert torch.allclose(mask_features, tiny_head.pixel_decoder.forward_features(feats)[0])


def test_head_inference_shapes_and_no_aux(tiny_head):
    synonyms_per_class = [2, 1, 3]
    out = tiny_head(_tiny_features(), _text(sum(synonyms_per_class) + 1), synonyms_per_class)
    assert out["pred_logits"].shape == (2, 5, 4)
    assert out["pred_masks"].shape == (2, 5, 16, 16)
    assert out["aux_outputs"] == []


def test_training_adds_aux_outputs_and_same_last_layer(tiny_head):
    synonyms_per_class = [2, 1, 3]
    text = _text(7)
    feats = _tiny_features()
    with torch.no_grad():
        eval_out = tiny_head(feats, text, synonyms_per_class)
        tiny_head.train()
        try:
            train_out = tiny_head(feats, text, synonyms_per_class)
        finally:
            tiny_head.eval()
    aux = train_out["aux_outputs"]
    assert len(aux) == 3  # DEC_LAYERS - 1 earlier predictions (learnable queries + 2 layers)
    for a in aux:
        assert a["pred_logits"].shape == (2, 5, 4) and a["pred_masks"].shape == (2, 5, 16, 16)
    assert torch.allclose(train_out["pred_logits"], eval_out["pred_logits"], atol=1e-6)
    assert torch.allclose(train_out["pred_masks"], eval_out["pred_masks"], atol=1e-6)


def test_synonym_max_void_column_and_per_image_text(tiny_head):
    feats = _tiny_features()
    rows = _text(4)  # rows 0, 1: synonyms of class 0; row 2: class 1; row 3: void
    with torch.no_grad():
        both = tiny_head(feats, rows, [2, 1])["pred_logits"]
        only0 = tiny_head(feats, rows[[0, 2, 3]], [1, 1])["pred_logits"]
        only1 = tiny_head(feats, rows[[1, 2, 3]], [1, 1])["pred_logits"]
        per_image = tiny_head(feats, rows.expand(2, -1, -1), [2, 1])["pred_logits"]
    assert torch.allclose(both[..., 0], torch.maximum(only0[..., 0], only1[..., 0]), atol=1e-5)
    assert torch.allclose(both[..., 1:], only0[..., 1:], atol=1e-5)
    assert torch.allclose(per_image, both, atol=1e-5)
    # cosine logits scaled by exp(logit_scale) = 1/0.07
    assert both.abs().max() <= 1 / 0.07 + 1e-4


def test_logit_scale_is_clamped_at_100(tiny_head):
    feats, text = _tiny_features(), _text(3)
    scale = tiny_head.predictor.logit_scale
    with torch.no_grad():
        saved = scale.clone()
        default = tiny_head(feats, text, [1, 1])["pred_logits"]  # exp(scale) = 1/0.07
        try:
            scale.fill_(10.0)  # exp(10) > 100 -> clamped
            clamped = tiny_head(feats, text, [1, 1])["pred_logits"]
        finally:
            scale.copy_(saved)
    assert torch.allclose(clamped, default * 100 * 0.07, atol=1e-4)


def test_decoder_input_errors(tiny_head):
    with pytest.raises(ValueError, match="text_classifier"):
        tiny_head(_tiny_features())
    with pytest.raises(ValueError, match="synonyms_per_class sums"):
        tiny_head(_tiny_features(), _text(4), [1, 1])


def test_mask_pool_hand_example():
    feats = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    masks = torch.tensor([[[[1.0, -1.0], [2.0, -3.0]], [[-1.0, -1.0], [-1.0, -1.0]]]])
    pooled = mask_pool(feats, masks)
    assert torch.allclose(pooled, torch.tensor([[[1.0, 5.0], [0.0, 0.0]]]))


def test_position_embedding_values():
    pe = PositionEmbeddingSine(4, normalize=True)
    out = pe(torch.zeros(1, 3, 2, 5))
    assert out.shape == (1, 8, 2, 5)
    y = 2 / 2 * 2 * torch.pi  # row 1 of 2, normalised to 2π
    x = 3 / 5 * 2 * torch.pi  # column 2 of 5
    expected = [
        torch.sin(torch.tensor(y)),
        torch.cos(torch.tensor(y)),
        torch.sin(torch.tensor(y / 100.0)),  # 10000 ** (2 * 1 / 4)
        torch.cos(torch.tensor(y / 100.0)),
        torch.sin(torch.tensor(x)),
    ]
    assert torch.allclose(out[0, :5, 1, 2], torch.stack(expected), atol=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        PositionEmbeddingSine(4, scale=1.0)


def test_unsupported_names_raise():
    cfg = _tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
    with pytest.raises(ValueError, match="not supported"):
        build_sem_seg_head(cfg, _shapes(TINY_WIDTHS))
    cfg = _tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.NAME = "FCCLIPMASKHead"
    with pytest.raises(ValueError, match="not supported"):
        build_sem_seg_head(cfg, _shapes(TINY_WIDTHS))
    cfg = _tiny_cfg()
    cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "StandardTransformerDecoder"
    with pytest.raises(ValueError, match="not supported"):
        build_sem_seg_head(cfg, _shapes(TINY_WIDTHS))


def test_register_once_keeps_existing_and_warns(caplog):
    registry = Registry("TEST")

    class Thing(nn.Module):
        pass

    first = Thing
    register_once(registry, first)
    register_once(registry, first)  # same object: silent no-op

    class Thing(nn.Module):  # noqa: F811  (same name, different class)
        pass

    with caplog.at_level(logging.WARNING):
        register_once(registry, Thing)
    assert registry.get("Thing") is first
    assert "already holds 'Thing'" in caplog.text
    assert SEM_SEG_HEADS_REGISTRY.get("FCCLIPHead") is FCCLIPHead


@pytest.mark.parametrize("size_in, size_out", [(168, 21), (168, 42), (168, 84), (224, 28), (25, 7), (170, 43), (9, 9)])
def test_bilinear_sources_are_all_the_resize_reads(size_in, size_out):
    """Zeroing every pixel outside the sources' rows x columns leaves the bilinear resize unchanged, bit for bit."""
    g = torch.Generator().manual_seed(size_in * size_out)
    x = torch.randn(1, 3, size_in, size_in + 5, generator=g)
    rows = bilinear_sources(size_in, size_out)
    cols = bilinear_sources(size_in + 5, size_out + 1)
    kept = torch.zeros_like(x)
    kept[:, :, rows[:, None], cols] = x[:, :, rows[:, None], cols]
    resize = lambda t: torch.nn.functional.interpolate(t, size=(size_out, size_out + 1), mode="bilinear")  # noqa: E731
    assert torch.equal(resize(kept), resize(x))
    assert torch.equal(rows, torch.unique(rows))
    if size_in == 8 * size_out:
        assert rows.tolist()[:4] == [3, 4, 11, 12] and len(rows) == size_in // 4  # a quarter of the rows
    if size_in == 4 * size_out:
        assert len(rows) == size_in // 2
    if size_in == 2 * size_out:
        assert len(rows) == size_in  # every row: the full masks are used


def test_sampled_masks_give_the_attention_mask_logits_of_the_full_masks():
    """Mask logits computed at the read pixels only, resized, equal the resize of the full stride-4 masks (the same
    dot products over fewer pixels: float-equal up to the GEMM's blocking)."""
    g = torch.Generator().manual_seed(11)
    features = torch.randn(2, 16, 48, 64, generator=g)
    embed = torch.randn(2, 7, 16, generator=g)
    sizes = [(6, 8), (12, 16), (24, 32)]
    sampled = _SampledMasks(features, sizes)
    assert sampled.plans[(24, 32)] is None  # a downscale by 2 reads every pixel: the full masks are computed
    assert not sampled.reads_part((24, 32)) and not sampled.reads_part(None)
    assert sampled.reads_part((6, 8)) and sampled.reads_part((12, 16))
    assert sampled.plans[(6, 8)][2].shape == (2, 16, 12, 16)  # a sixteenth of the pixels
    full = torch.einsum("bqc,bchw->bqhw", embed, features)
    for size in sizes[:2]:
        for _ in range(2):  # the per-size buffer is reused
            expected = torch.nn.functional.interpolate(full, size=size, mode="bilinear", align_corners=False)
            got = sampled.resized(embed, size)
            assert got.shape == (2, 7, *size)
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
        embed = embed.flip(1)
        full = full.flip(1)


def test_full_attention_masks_switch_gives_the_same_outputs(tiny_head, monkeypatch):
    """The whole-map computation of the earlier masks (``full_attention_masks``, the official one) and the default
    read-pixels-only computation give the same predictions; the switch really avoids the sampled path."""
    from mask_adapter.modeling.transformer_decoder import fcclip_decoder

    feats, text = _tiny_features(), _text(7)
    predictor = tiny_head.predictor
    with torch.no_grad():
        default = tiny_head(feats, text, [2, 1, 3])
        predictor.full_attention_masks = True
        monkeypatch.setattr(fcclip_decoder, "_SampledMasks", None)  # calling it would raise
        try:
            full = tiny_head(feats, text, [2, 1, 3])
        finally:
            predictor.full_attention_masks = False
    assert torch.allclose(default["pred_logits"], full["pred_logits"], atol=1e-6)
    assert torch.allclose(default["pred_masks"], full["pred_masks"], atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2])
def test_additive_attention_mask_gives_the_boolean_masks_outputs(batch):
    """One -inf/0 mask per image shared by the heads gives the cross-attention output of the per-head boolean mask
    (nn.MultiheadAttention turns a boolean mask into the same -inf/0 values), bit for bit; no copy per head for B=1."""
    g = torch.Generator().manual_seed(batch)
    torch.manual_seed(batch)
    layer = CrossAttentionLayer(16, 4).eval()
    tgt, query_pos = torch.randn(5, batch, 16, generator=g), torch.randn(5, batch, 16, generator=g)
    memory, pos = torch.randn(12, batch, 16, generator=g), torch.randn(12, batch, 16, generator=g)
    blocked = torch.rand(batch, 5, 12, generator=g) < 0.6
    blocked[:, :, 0] = False  # every query may attend somewhere
    per_head = blocked.unsqueeze(1).repeat(1, 4, 1, 1).flatten(0, 1)
    additive = additive_attention_mask(blocked, 4, torch.float32)
    assert additive.shape == (batch * 4, 5, 12) and additive.dtype == torch.float32
    assert torch.equal(additive == float("-inf"), per_head) and bool((additive[~per_head] == 0).all())
    if batch == 1:
        assert additive.stride(0) == 0  # the heads share one mask
    with torch.no_grad():
        expected = layer(tgt, memory, memory_mask=per_head, pos=pos, query_pos=query_pos)
        got = layer(tgt, memory, memory_mask=additive, pos=pos, query_pos=query_pos)
    assert torch.equal(got, expected)
