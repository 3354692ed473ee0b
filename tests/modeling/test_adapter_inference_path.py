"""The adapter's inference path (fuse once per image + folded W_fuse, channels-last blocked MLPs, memory-budget
groups, deduplicated masks) against the official computation ``forward_reference`` on random weights.

Shapes: B images, N masks, K maps per mask, D = clip_dim, h×w the CLIP grid; masks enter at any size.
fp32 heads are checked to 1e-5 (the acceptance bound), float64 heads to 1e-10.
"""

import copy

import pytest
import torch

from mask_adapter.modeling.adapter.head import MaskAdapterHead
from tests._builders import varied_head

TOL32 = 1e-5


def make_head(dtype: torch.dtype = torch.float32, **kwargs) -> MaskAdapterHead:
    """Narrow head (D 24, C 32, K 4) with layer scale ~1 so every ConvNeXt block changes the output."""
    torch.manual_seed(0)
    return varied_head(dtype, clip_dim=24, num_channels=32, num_output_maps=4, **kwargs)


def inputs(b=1, n=6, h=3, w=4, size=(24, 30), dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(b, 24, h, w, generator=g, dtype=dtype)
    masks = torch.rand(b, n, *size, generator=g) > 0.5
    return feat, masks


def both(head, feat, masks, **kw):
    with torch.no_grad():
        ref = head.forward_reference(feat, masks)
        assert head.uses_inference_path(feat)
        out = head(feat, masks, **kw)
    return out, ref


def test_reference_is_the_training_computation():
    head = make_head()
    feat, masks = inputs(n=3)
    head.train()
    with torch.no_grad():
        torch.testing.assert_close(head(feat, masks), head.forward_reference(feat, masks), rtol=0, atol=0)
    assert not head.uses_inference_path(feat)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_inference_path_matches_reference_fp32(n):
    head = make_head()
    feat, masks = inputs(n=n)
    out, ref = both(head, feat, masks)
    assert out.shape == ref.shape == (1, n * 4, 3, 4)
    assert ref.abs().max() > 0.1  # not a trivially small output
    assert (out - ref).abs().max() <= TOL32


def test_inference_path_matches_reference_float64_tightly():
    head = make_head(torch.float64)
    feat, masks = inputs(b=2, n=5, dtype=torch.float64)
    out, ref = both(head, feat, masks)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_zero_masks():
    head = make_head()
    feat, _ = inputs()
    with torch.no_grad():
        out = head(feat, torch.zeros(1, 0, 24, 30, dtype=torch.bool))
    assert out.shape == (1, 0, 3, 4)


@pytest.mark.parametrize("chunk", [1, 3, 0, None])
@pytest.mark.parametrize("block_rows", [1, 5, 12, 4096])
def test_chunks_and_token_blocks_are_exact(chunk, block_rows):
    head = make_head(block_rows=block_rows)
    feat, masks = inputs(n=5)
    out, ref = both(head, feat, masks, chunk_size=chunk)
    assert (out - ref).abs().max() <= TOL32


def test_memory_budget_sets_the_group_and_stays_exact():
    head = make_head(inference_memory_mb=1)
    # 3 buffers of (h·w, C) fp32 per mask: 3 · 588 · 768 · 4 bytes ≈ 5.4 MB at the released size
    big = MaskAdapterHead(clip_dim=768, inference_memory_mb=128)
    assert big.masks_per_group(21, 28) == (128 << 20) // (3 * 588 * 768 * 4) == 24
    assert big.masks_per_group(21, 28, torch.bfloat16) == (128 << 20) // (3 * 588 * 768 * 2) == 49
    assert MaskAdapterHead(clip_dim=768, inference_memory_mb=1).masks_per_group(21, 28) == 1
    assert head.masks_per_group(3, 4) == (1 << 20) // (3 * 12 * 32 * 4)
    feat, masks = inputs(n=9, h=40, w=40, size=(160, 160))  # 3·1600·32·4 B per mask: 1 MB budget = 1 mask/group
    assert head.masks_per_group(40, 40) == 1
    out, ref = both(head, feat, masks)
    assert (out - ref).abs().max() <= TOL32
    with pytest.raises(
        ValueError, match=r"inference_memory_mb must be >= 1, got 0 \(MODEL.MASK_ADAPTER.INFERENCE_MEMORY_MB\)"
    ):
        MaskAdapterHead(clip_dim=8, inference_memory_mb=0)


def test_all_empty_and_all_identical_masks():
    head = make_head()
    feat, masks = inputs(n=6)
    empty = torch.zeros_like(masks)
    out, ref = both(head, feat, empty)
    assert (out - ref).abs().max() <= TOL32
    assert head.last_dedupe == (6, 1)
    same = masks[:, :1].expand(-1, 6, -1, -1)
    out, ref = both(head, feat, same)
    assert (out - ref).abs().max() <= TOL32
    assert head.last_dedupe == (6, 1)
    per_mask = out.view(6, 4, 3, 4)
    assert torch.equal(per_mask, per_mask[:1].expand_as(per_mask))


def test_dedupe_hit_rate_and_scatter_back_order():
    head = make_head()
    feat, masks = inputs(n=10)
    masks = masks.clone()
    masks[0, 2] = False  # two empty masks
    masks[0, 7] = False
    masks[0, 5] = masks[0, 1]  # a duplicate
    masks[0, 9] = masks[0, 1]
    out, ref = both(head, feat, masks)
    assert head.last_dedupe == (10, 7)
    assert (out - ref).abs().max() <= TOL32
    head.dedupe_masks = False
    with torch.no_grad():
        plain = head(feat, masks)
    assert head.last_dedupe == (10, 10)
    assert (plain - out).abs().max() <= TOL32


def test_dedupe_is_per_image_and_after_the_resize():
    head = make_head()
    feat, masks = inputs(b=2, n=3, size=(48, 64))
    masks = masks.clone()
    masks[1] = masks[0]  # the same masks on two images are not shared: each image has its own feature
    out, ref = both(head, feat, masks)
    assert (out - ref).abs().max() <= TOL32
    assert not torch.allclose(out[0], out[1])
    # two masks that differ at full size but not after the bilinear resize to 4h×4w count as one
    m = torch.zeros(1, 2, 48, 64, dtype=torch.bool)
    m[0, 0, 10:30, 10:40] = True
    m[0, 1] = m[0, 0]
    m[0, 1, 47, 63] = True  # a corner pixel the resize to (12, 16) never samples
    feat1 = feat[:1]
    resized = torch.nn.functional.interpolate(m.float(), size=(12, 16), mode="bilinear", align_corners=False)
    assert torch.equal(resized[0, 0], resized[0, 1])
    out, ref = both(head, feat1, m)
    assert head.last_dedupe == (2, 1)
    assert (out - ref).abs().max() <= TOL32


def test_batch_of_two_images_of_different_sizes():
    """Padded batch: image 1 covers 2×3 of the 3×4 grid; its feature and masks are zero in the padding."""
    head = make_head()
    feat, masks = inputs(b=2, n=4)
    feat, masks = feat.clone(), masks.clone()
    feat[1, :, 2:, :] = 0
    feat[1, :, :, 3:] = 0
    masks[1, :, 16:, :] = False
    masks[1, :, :, 22:] = False
    out, ref = both(head, feat, masks)
    assert (out - ref).abs().max() <= TOL32
    for i in range(2):
        with torch.no_grad():
            single = head(feat[i : i + 1], masks[i : i + 1])
        assert (single - out[i : i + 1]).abs().max() <= TOL32


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32])
def test_mask_dtypes(dtype):
    head = make_head()
    feat, masks = inputs(n=3)
    out, ref = both(head, feat, masks.to(dtype))
    assert (out - ref).abs().max() <= TOL32


def test_gradients_flow_in_training_and_in_eval_with_grad():
    head = make_head()
    feat, masks = inputs(n=3)
    for train in (True, False):
        head.train(train)
        head.zero_grad()
        f = feat.clone().requires_grad_(True)
        assert not head.uses_inference_path(f)
        head(f, masks).square().sum().backward()
        assert f.grad is not None and f.grad.abs().sum() > 0
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_folded_weights_are_cached_and_invalidated():
    head = make_head()
    feat, masks = inputs(n=2)
    with torch.no_grad():
        first = head(feat, masks)
        cached = head._weights
        head(feat, masks)
        assert head._weights is cached  # no per-call folding
        head.cnext2.pwconv1.weight.mul_(0.5)  # in-place change: the cache is rebuilt
        changed = head(feat, masks)
        assert head._weights is not cached
        assert (changed - head.forward_reference(feat, masks)).abs().max() <= TOL32
        assert not torch.allclose(changed, first)
    other = make_head()
    with torch.no_grad():
        other.cnext1.gamma.fill_(2.0)
    head.load_state_dict(other.state_dict())
    assert head._weights is None
    with torch.no_grad():
        assert (head(feat, masks) - other.forward_reference(feat, masks)).abs().max() <= TOL32
    head.double()
    assert head._weights is None
    with torch.no_grad():
        out64 = head(feat.double(), masks)
    assert out64.dtype == torch.float64


def test_bf16_autocast_on_cpu_is_close_and_keeps_argmax():
    head = make_head()
    feat, masks = inputs(n=8)
    with torch.no_grad():
        ref = head.forward_reference(feat, masks)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = head(feat, masks)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    diff = (low - ref).abs().max()
    assert 0 < diff < 0.25 * ref.abs().max()
    assert (low.argmax(1) == ref.argmax(1)).float().mean() >= 0.75


def test_deepcopy_does_not_share_a_stale_cache():
    head = make_head()
    feat, masks = inputs(n=2)
    with torch.no_grad():
        head(feat, masks)
        clone = copy.deepcopy(head)
        clone.final.bias.add_(1.0)
        torch.testing.assert_close(clone(feat, masks), head(feat, masks) + 1.0, rtol=0, atol=TOL32)


@pytest.mark.slow
def test_compiled_reference_matches_and_training_stays_eager():
    head = make_head(compile_mode="default")
    feat, masks = inputs(n=3)
    out, ref = both(head, feat, masks)
    assert head._compiled is not None
    assert (out - ref).abs().max() <= TOL32
    with pytest.raises(ValueError, match=r"compile_mode must be one of none, default, reduce-overhead, max-autotune"):
        MaskAdapterHead(clip_dim=8, compile_mode="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-only: fp16 autocast and CUDA graphs")
def test_cuda_fp16_autocast_is_close():
    head = make_head().cuda()
    feat, masks = inputs(n=4)
    feat, masks = feat.cuda(), masks.cuda()
    with torch.no_grad():
        ref = head.forward_reference(feat, masks)
        with torch.autocast("cuda", dtype=torch.float16):
            low = head(feat, masks)
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() < 0.25 * ref.abs().max()
