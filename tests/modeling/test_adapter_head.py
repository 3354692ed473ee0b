"""MaskAdapterHead: key layout, parameter counts, initialisation and the forward contract.

Shapes: B images, N masks per image, K maps per mask, D = clip_dim, h×w the stride-32 grid.
Full-size heads (15 M parameters) are built for the layout checks and run once on a 2×3 grid; the forward-contract
checks use a narrow head in float64 so equalities can be asserted tightly.
"""

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mask_adapter.modeling.adapter.build import MASK_ADAPTER_REGISTRY, ConfigurableMaskAdapterHead
from mask_adapter.modeling.adapter.head import ConvNeXtBlock, LayerNorm2d, MaskAdapterHead
from tests._builders import varied_head

K = 16


def expected_layout(clip_dim: int) -> list[tuple[str, tuple[int, ...]]]:
    """Official key/shape table of the adapter, in state-dict order (a module's own parameters precede its
    children, so ``gamma`` comes
    first in each ConvNeXt block, as in the official tables)."""
    rows: list[tuple[str, tuple[int, ...]]] = [("fuse.weight", (768, clip_dim, 1, 1)), ("fuse.bias", (768,))]
    for i in (1, 2, 3):
        p = f"cnext{i}"
        rows += [
            (f"{p}.gamma", (768,)),
            (f"{p}.dwconv.weight", (768, 1, 7, 7)),
            (f"{p}.dwconv.bias", (768,)),
            (f"{p}.norm.weight", (768,)),
            (f"{p}.norm.bias", (768,)),
            (f"{p}.pwconv1.weight", (3072, 768)),
            (f"{p}.pwconv1.bias", (3072,)),
            (f"{p}.pwconv2.weight", (768, 3072)),
            (f"{p}.pwconv2.bias", (768,)),
        ]
    rows += [
        ("norm.weight", (768,)),
        ("norm.bias", (768,)),
        ("final.weight", (16, 768, 1, 1)),
        ("final.bias", (16,)),
        ("mask_downscaling.0.weight", (4, 1, 3, 3)),
        ("mask_downscaling.0.bias", (4,)),
        ("mask_downscaling.1.weight", (4,)),
        ("mask_downscaling.1.bias", (4,)),
        ("mask_downscaling.3.weight", (16, 4, 3, 3)),
        ("mask_downscaling.3.bias", (16,)),
        ("mask_downscaling.4.weight", (16,)),
        ("mask_downscaling.4.bias", (16,)),
        ("mask_downscaling.6.weight", (clip_dim, 16, 1, 1)),
        ("mask_downscaling.6.bias", (clip_dim,)),
    ]
    return rows


def parse_state_dict_tsv(path: Path) -> list[tuple[str, tuple[int, ...], str, str]]:
    """Parse ``<setup>_state_dict.tsv``: header ``key\\tshape\\tdtype\\trequires_grad``, shape like ``768x768x1x1``
    or ``scalar``, trailing ``#`` lines (non-persistent buffers) skipped."""
    lines = path.read_text().splitlines()
    assert lines and lines[0].split("\t") == ["key", "shape", "dtype", "requires_grad"], lines[:1]
    rows = []
    for line in lines[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype, requires_grad = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((key, dims, dtype, requires_grad))
    return rows


@pytest.fixture(scope="module")
def head_large() -> MaskAdapterHead:
    torch.manual_seed(0)
    return MaskAdapterHead(clip_dim=768)


@pytest.fixture(scope="module")
def head_base() -> MaskAdapterHead:
    torch.manual_seed(0)
    return MaskAdapterHead(clip_dim=640)


def small_head(clip_dim: int = 12, num_channels: int = 16, k: int = 3, use_checkpoint: bool = False) -> MaskAdapterHead:
    """A narrow float64 head with non-trivial layer scale so every block matters numerically."""
    return varied_head(
        torch.float64, clip_dim=clip_dim, num_channels=num_channels, num_output_maps=k, use_checkpoint=use_checkpoint
    )


# ----------------------------------------------------------------------------------------------------------------
# Layout, counts, initialisation
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which,clip_dim,count", [("large", 768, 14_907_568), ("base", 640, 14_807_088)])
def test_key_names_shapes_order_and_counts(which, clip_dim, count, head_large, head_base):
    head = head_large if which == "large" else head_base
    sd = head.state_dict()
    assert len(sd) == 43
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == expected_layout(clip_dim)
    assert list(head.buffers()) == []
    assert sum(p.numel() for p in head.parameters()) == count
    assert all(p.requires_grad for p in head.parameters())
    assert all(v.dtype == torch.float32 for v in sd.values())


def test_per_module_parameter_counts(head_large, head_base):
    def n(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert n(head_large.fuse) == 590_592 and n(head_base.fuse) == 492_288
    for block in (head_large.cnext1, head_large.cnext2, head_large.cnext3):
        assert n(block) == 4_763_136
    assert n(head_large.norm) + n(head_large.final) == 13_840
    assert n(head_large.mask_downscaling) == 13_728
    assert n(head_base.mask_downscaling) == 11_552


def test_matches_official_reference_tables(reference_dir, head_large, head_base):
    tables = sorted(reference_dir.glob("*_state_dict.tsv"))
    assert len(tables) >= 4, f"expected the four reference setups in {reference_dir}"
    for table in tables:
        rows = parse_state_dict_tsv(table)
        ref = [(k[len("mask_adapter.") :], shape) for k, shape, _, _ in rows if k.startswith("mask_adapter.")]
        assert len(ref) == 43, table.name
        head = head_base if "_base" in table.name else head_large
        ours = [(k, tuple(v.shape)) for k, v in head.state_dict().items()]
        assert set(ours) == set(ref), table.name
        assert ours == ref, f"{table.name}: key order differs"
        dtypes = {dt for k, _, dt, _ in rows if k.startswith("mask_adapter.")}
        assert dtypes == {"float32"}


def test_initialisation_and_eps(head_large):
    for block in (head_large.cnext1, head_large.cnext2, head_large.cnext3):
        assert torch.all(block.gamma == 1e-6)
        assert isinstance(block.norm, nn.LayerNorm) and block.norm.eps == 1e-6
        assert block.dwconv.groups == 768 and block.dwconv.padding == (3, 3) and block.dwconv.kernel_size == (7, 7)
    assert isinstance(head_large.norm, nn.LayerNorm) and head_large.norm.eps == 1e-5
    md = head_large.mask_downscaling
    assert isinstance(md[1], LayerNorm2d) and md[1].eps == 1e-6
    assert isinstance(md[4], LayerNorm2d) and md[4].eps == 1e-6
    assert torch.all(md[1].weight == 1) and torch.all(md[1].bias == 0)
    assert (md[0].stride, md[0].padding) == ((2, 2), (1, 1))
    assert (md[3].stride, md[3].padding) == ((2, 2), (1, 1))
    assert isinstance(md[2], nn.GELU) and isinstance(md[5], nn.GELU)
    gelus = [m for m in head_large.modules() if isinstance(m, nn.GELU)]
    assert len(gelus) == 5  # 3 blocks + 2 in the mask downscaler
    assert all(g.approximate == "none" for g in gelus)


def test_gelu_is_exact_numerically():
    block = ConvNeXtBlock(4)
    x = torch.linspace(-3, 3, 50)
    exact = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    torch.testing.assert_close(block.act(x), exact, rtol=0, atol=1e-6)


def test_layernorm2d_matches_channel_layernorm():
    ln = LayerNorm2d(5).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (5,), ln.weight, ln.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), expected, rtol=0, atol=1e-12)


def test_convnext_block_formula():
    block = ConvNeXtBlock(6).double()
    with torch.no_grad():
        block.gamma.normal_()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    y = F.conv2d(x, block.dwconv.weight, block.dwconv.bias, padding=3, groups=6).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (6,), block.norm.weight, block.norm.bias, eps=1e-6)
    y = F.linear(
        F.gelu(F.linear(y, block.pwconv1.weight, block.pwconv1.bias)), block.pwconv2.weight, block.pwconv2.bias
    )
    expected = x + (block.gamma * y).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)
    assert block.pwconv1.out_features == 24  # MLP ratio 4


def test_mask_in_channels_validation():
    with pytest.raises(ValueError, match="mask_in_channels"):
        MaskAdapterHead(clip_dim=8, mask_in_channels=6)


def test_registry_entry_builds_without_cfg():
    assert "ConfigurableMaskAdapterHead" in MASK_ADAPTER_REGISTRY
    head = ConfigurableMaskAdapterHead(clip_dim=8, num_channels=8, mask_in_channels=4, num_output_maps=2)
    assert isinstance(head, MaskAdapterHead) and head.num_output_maps == 2


# ----------------------------------------------------------------------------------------------------------------
# Forward contract
# ----------------------------------------------------------------------------------------------------------------
def test_full_size_forward_shape(head_large):
    clip = torch.randn(2, 768, 2, 3)
    masks = torch.rand(2, 3, 64, 96) > 0.5
    with torch.no_grad():
        out = head_large(clip, masks)
    assert out.shape == (2, 3 * K, 2, 3)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def reference_forward(head: MaskAdapterHead, clip: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The adapter forward steps for one image and one mask: (D, h, w), (Hm, Wm) -> (K, h, w)."""
    d, h, w = clip.shape
    m = F.interpolate(mask.to(clip.dtype)[None, None], size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
    x = clip[None] + head.mask_downscaling(m)
    x = head.cnext3(head.cnext2(head.cnext1(head.fuse(x))))
    x = head.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return head.final(x)[0]


def test_forward_matches_spec_steps_with_layout_n_times_k_plus_k():
    head = small_head()
    b, n, h, w = 2, 3, 2, 3
    clip = torch.randn(b, 12, h, w, dtype=torch.float64)
    masks = torch.rand(b, n, 13, 17, dtype=torch.float64)
    out = head(clip, masks)
    assert out.shape == (b, n * 3, h, w)
    for bi in range(b):
        for ni in range(n):
            ref = reference_forward(head, clip[bi], masks[bi, ni])
            torch.testing.assert_close(out[bi, ni * 3 : (ni + 1) * 3], ref, rtol=0, atol=1e-10)


def test_single_mask_equals_slice_of_multi_mask_run():
    head = small_head()
    clip = torch.randn(1, 12, 3, 2, dtype=torch.float64)
    masks = (torch.rand(1, 4, 12, 8) > 0.5).double()
    out = head(clip, masks)
    for n in range(4):
        single = head(clip, masks[:, n : n + 1])
        torch.testing.assert_close(out[:, n * 3 : (n + 1) * 3], single, rtol=0, atol=1e-12)
    # the masks really matter: different masks give different maps
    assert not torch.allclose(out[:, 0:3], out[:, 3:6])


def test_image_major_repetition():
    head = small_head()
    clip = torch.randn(2, 12, 2, 3, dtype=torch.float64)
    masks = torch.rand(2, 2, 8, 12, dtype=torch.float64)
    out = head(clip, masks)
    for b in range(2):
        torch.testing.assert_close(out[b : b + 1], head(clip[b : b + 1], masks[b : b + 1]), rtol=0, atol=1e-12)
    # same masks on two different images: the outputs differ (image b's feature is used for image b's masks)
    same = head(clip, masks[:1].expand(2, -1, -1, -1))
    assert not torch.allclose(same[0], same[1])


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32, torch.float64])
def test_mask_dtypes_are_equivalent(dtype):
    head = small_head()
    clip = torch.randn(1, 12, 2, 3, dtype=torch.float64)
    binary = torch.rand(1, 2, 8, 12) > 0.5
    expected = head(clip, binary.double())
    torch.testing.assert_close(head(clip, binary.to(dtype)), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(8, 12), (3, 5), (37, 50), (64, 96)])
def test_masks_any_resolution_resized_bilinearly_to_4h_4w(size):
    head = small_head()
    h, w = 2, 3
    clip = torch.randn(1, 12, h, w, dtype=torch.float64)
    masks = torch.rand(1, 2, *size, dtype=torch.float64)
    out = head(clip, masks)
    assert out.shape == (1, 2 * 3, h, w)
    pre = F.interpolate(masks, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, head(clip, pre), rtol=0, atol=1e-12)
    if size != (4 * h, 4 * w):
        # nearest (or align_corners=True) resizing would give a different result
        other = F.interpolate(masks, size=(4 * h, 4 * w), mode="bilinear", align_corners=True)
        if not torch.allclose(other, pre):
            assert not torch.allclose(out, head(clip, other))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 0, None])
def test_chunked_equals_unchunked(chunk_size):
    head = small_head()
    clip = torch.randn(2, 12, 2, 3, dtype=torch.float64)
    masks = torch.rand(2, 5, 8, 12, dtype=torch.float64)
    full = head(clip, masks)
    torch.testing.assert_close(head(clip, masks, chunk_size=chunk_size), full, rtol=0, atol=1e-12)


def test_input_errors():
    head = small_head()
    clip = torch.randn(2, 12, 2, 3, dtype=torch.float64)
    masks = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"clip_feature must be \(B, D, h, w\)"):
        head(clip[0], masks)
    with pytest.raises(ValueError, match=r"masks must be \(B, N, H, W\).*masks\[None\]"):
        head(clip[:1], masks[0])
    with pytest.raises(ValueError, match=r"masks must be \(B, N, H, W\)"):
        head(clip, masks[..., None])
    with pytest.raises(ValueError, match="batch size 1 != clip_feature batch size 2"):
        head(clip, masks[:1])
    with pytest.raises(ValueError, match="13 channels.*clip_dim=12"):
        head(torch.randn(2, 13, 2, 3, dtype=torch.float64), masks)


def test_zero_masks():
    head = small_head()
    clip = torch.randn(2, 12, 2, 3, dtype=torch.float64)
    out = head(clip, torch.zeros(2, 0, 8, 12))
    assert out.shape == (2, 0, 2, 3) and out.dtype == torch.float64
    out = head(clip, torch.zeros(2, 0, 8, 12), chunk_size=4)
    assert out.shape == (2, 0, 2, 3)


def test_gradient_checkpointing_same_output_and_grads():
    head = small_head(use_checkpoint=False).train()
    ckpt = copy.deepcopy(head)
    ckpt.use_checkpoint = True
    ckpt.train()
    clip = torch.randn(2, 12, 2, 3, dtype=torch.float64)
    masks = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    clip_a = clip.clone().requires_grad_(True)
    clip_b = clip.clone().requires_grad_(True)
    weight = torch.randn(2, 9, 2, 3, dtype=torch.float64)
    out_a = head(clip_a, masks)
    out_b = ckpt(clip_b, masks)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-12)
    (out_a * weight).sum().backward()
    (out_b * weight).sum().backward()
    torch.testing.assert_close(clip_a.grad, clip_b.grad, rtol=0, atol=1e-12)
    for (name, pa), (_, pb) in zip(head.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=0, atol=1e-12, msg=name)


def test_checkpoint_flag_from_constructor_is_used_only_in_training(monkeypatch):
    head = small_head(use_checkpoint=True)
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    clip = torch.randn(1, 12, 2, 3, dtype=torch.float64)
    masks = torch.rand(1, 2, 8, 12, dtype=torch.float64)
    head.eval()
    head(clip, masks)
    assert calls == []
    head.train()
    head(clip, masks)
    assert calls == [False, False, False]  # non-reentrant, once per ConvNeXt block


def test_gradients_reach_all_head_parameters(head_large):
    head = copy.deepcopy(head_large).train()
    clip = torch.randn(2, 768, 2, 3)
    masks = (torch.rand(2, 2, 16, 24) > 0.5).float()
    out = head(clip, masks)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------------------------------------------
# Building from a config (MODEL.MASK_ADAPTER.NAME, official name included)
# ----------------------------------------------------------------------------------------------------------------
def _cfg(clip_name: str):
    from detectron2.config import get_cfg

    from mask_adapter import config

    cfg = get_cfg()
    config.add_mask_adapter_config(cfg)
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = clip_name
    return cfg


@pytest.mark.parametrize(
    "clip_name,clip_dim,count",
    [
        ("convnext_large_d_320", 768, 14_907_568),
        ("convnext_base_w_320", 640, 14_807_088),
    ],
)
@pytest.mark.parametrize("name", ["ConfigurableMaskAdapterHead", "MASKAdapterHead"])
def test_build_from_cfg(clip_name, clip_dim, count, name):
    from mask_adapter.modeling.adapter.build import build_mask_adapter

    assert name in MASK_ADAPTER_REGISTRY, f"{name} is not registered (mask_adapter.config.official_names)"
    cfg = _cfg(clip_name)
    cfg.MODEL.MASK_ADAPTER.NAME = name
    head = build_mask_adapter(cfg, clip_dim)  # D of the built backbone
    assert isinstance(head, MaskAdapterHead)
    assert head.clip_dim == clip_dim and head.num_output_maps == 16 and not head.use_checkpoint
    assert sum(p.numel() for p in head.parameters()) == count
    assert [(k, tuple(v.shape)) for k, v in head.state_dict().items()] == expected_layout(clip_dim)


def test_build_from_cfg_options_and_unknown_name():
    from mask_adapter.modeling.adapter.build import build_mask_adapter

    cfg = _cfg("convnext_large_d_320")
    cfg.MODEL.MASK_ADAPTER.NAME = "ConfigurableMaskAdapterHead"
    cfg.MODEL.MASK_ADAPTER.CLIP_DIM = 24
    cfg.MODEL.MASK_ADAPTER.NUM_CHANNELS = 32
    cfg.MODEL.MASK_ADAPTER.MASK_IN_CHANNELS = 8
    cfg.MODEL.MASK_ADAPTER.NUM_OUTPUT_MAPS = 4
    cfg.MODEL.MASK_ADAPTER.USE_CHECKPOINT = True
    head = build_mask_adapter(cfg, 768)  # CLIP_DIM overrides the backbone width
    assert head.fuse.weight.shape == (32, 24, 1, 1)
    assert head.mask_downscaling[0].weight.shape == (2, 1, 3, 3)
    assert head.final.weight.shape == (4, 32, 1, 1)
    assert head.use_checkpoint and head.num_output_maps == 4
    cfg.MODEL.MASK_ADAPTER.NAME = "NoSuchAdapter"
    with pytest.raises(KeyError, match="NoSuchAdapter.*not a registered mask adapter"):
        build_mask_adapter(cfg, 768)


def test_inference_path_matches_training_path():
    """At inference the head reassociates fuse(F + M) = fuse(F) + W_fuse·M; training takes the direct path. Both
    give the same logits up to float error and the same argmax."""
    torch.manual_seed(0)
    head = MaskAdapterHead(clip_dim=24, num_channels=32).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.2)
    feat = torch.randn(2, 24, 3, 4)
    masks = torch.rand(2, 5, 20, 30) > 0.5
    with torch.no_grad():
        inference = head(feat, masks)
        head.train()
        training = head(feat, masks)
    assert inference.shape == training.shape == (2, 5 * head.num_output_maps, 3, 4)
    assert torch.allclose(inference, training, atol=1e-4, rtol=1e-4)
    assert (inference.argmax(1) == training.argmax(1)).float().mean() > 0.99
