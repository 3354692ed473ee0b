"""Deformable attention: gather path and grid_sample path vs a loop-based bilinear reference; dispatch; grads."""

import importlib
import math
import sys

import pytest
import torch

from mask_adapter.modeling.ops import MSDeformAttn, ms_deform_attn_core, ms_deform_attn_gather, ms_deform_attn_pytorch

msda = importlib.import_module("mask_adapter.modeling.ops.ms_deform_attn")

SHAPES = [(5, 7), (3, 4)]  # (H, W) per level


def _inputs(n=2, lq=4, m=2, dh=3, p=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(SHAPES, dtype=torch.long)
    s = int(shapes.prod(1).sum())
    value = torch.randn(n, s, m, dh, generator=g)
    # include locations outside [0, 1] to exercise the zero padding
    loc = torch.rand(n, lq, m, len(SHAPES), p, 2, generator=g) * 1.4 - 0.2
    attn = torch.rand(n, lq, m, len(SHAPES), p, generator=g)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    return value, shapes, loc, attn


def _loop_reference(value, shapes, loc, attn):
    """Direct bilinear sampling: pixel (i, j) is centred at ((j + .5)/W, (i + .5)/H); 0 outside."""
    value, loc, attn = value.double(), loc.double(), attn.double()
    n, _, m, dh = value.shape
    _, lq, _, num_levels, p, _ = loc.shape
    starts = [0]
    for h, w in shapes.tolist()[:-1]:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, lq, m, dh, dtype=torch.float64)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                for lvl, (h, w) in enumerate(shapes.tolist()):
                    for pt in range(p):
                        x = loc[b, q, head, lvl, pt, 0].item() * w - 0.5
                        y = loc[b, q, head, lvl, pt, 1].item() * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(dh, dtype=torch.float64)
                        for yy in (y0, y0 + 1):
                            for xx in (x0, x0 + 1):
                                if 0 <= yy < h and 0 <= xx < w:
                                    wgt = (1 - abs(x - xx)) * (1 - abs(y - yy))
                                    sample += wgt * value[b, starts[lvl] + yy * w + xx, head]
                        out[b, q, head] += attn[b, q, head, lvl, pt] * sample
    return out.reshape(n, lq, m * dh)


@pytest.mark.parametrize("path", [ms_deform_attn_pytorch, ms_deform_attn_gather])
def test_pytorch_paths_match_loop_reference(path):
    value, shapes, loc, attn = _inputs()
    out = path(value, shapes, loc, attn)
    ref = _loop_reference(value, shapes, loc, attn)
    assert out.shape == (2, 4, 6)
    assert torch.allclose(out.double(), ref, atol=1e-5, rtol=0)
    out64 = path(value.double(), shapes, loc.double(), attn.double())
    assert torch.allclose(out64, ref, atol=1e-12, rtol=0)


def _edge_locations(shapes, m, p):
    """Locations on pixel centres, cell borders, the map edges, just outside and far outside every level."""
    g = torch.Generator().manual_seed(3)
    levels = []
    for h, w in shapes.tolist():
        xs = torch.tensor([0.0, 0.5 / w, 1.0 / w, 1.0 - 0.5 / w, 1.0, -0.5 / w, 1.0 + 0.4 / w, -3.0, 5.0, 0.37])
        ys = torch.tensor([0.0, 0.5 / h, 1.0 / h, 1.0 - 0.5 / h, 1.0, 1.0 + 0.5 / h, -0.4 / h, 6.0, -2.0, 0.61])
        xy = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)  # 100 (x, y) pairs
        pick = torch.randint(0, len(xy), (len(xy), m, p), generator=g)
        levels.append(xy[pick])  # (Lq, M, P, 2)
    return torch.stack(levels, 2)[None].double()  # (1, Lq, M, L, P, 2)


def test_gather_equals_grid_sample_in_float64_with_gradients_at_edges():
    """Same function and same gradients as the grid_sample path, including locations on pixel centres, cell
    borders and map edges (where floor() switches corner) and far outside the map."""
    shapes = torch.tensor(SHAPES, dtype=torch.long)
    m, p, dh = 2, 3, 5
    loc = _edge_locations(shapes, m, p).requires_grad_(True)
    g = torch.Generator().manual_seed(4)
    s = int(shapes.prod(1).sum())
    value = torch.randn(1, s, m, dh, generator=g, dtype=torch.float64, requires_grad=True)
    attn = torch.rand(*loc.shape[:-1], generator=g, dtype=torch.float64).requires_grad_(True)
    ref = ms_deform_attn_pytorch(value, shapes, loc, attn)
    out = ms_deform_attn_gather(value, shapes, loc, attn)
    assert out.shape == ref.shape == (1, loc.shape[1], m * dh)
    assert torch.allclose(out, ref, atol=1e-13, rtol=0)
    assert torch.allclose(out, _loop_reference(value, shapes, loc, attn), atol=1e-13, rtol=0)
    grad_out = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, (value, loc, attn), grad_out)
    out_grads = torch.autograd.grad(out, (value, loc, attn), grad_out)
    for name, a, b in zip(("value", "locations", "attention"), ref_grads, out_grads):
        assert b.abs().sum() > 0, name
        assert torch.allclose(a, b, atol=1e-11, rtol=0), name


def test_gather_float32_at_released_head_shape_within_1e5_relative():
    """fp32 at the released pixel decoder's layout (8 heads, 32 channels, 3 levels, 4 points); small maps."""
    shapes = torch.tensor([[6, 8], [12, 16], [24, 32]])
    g = torch.Generator().manual_seed(5)
    s = int(shapes.prod(1).sum())
    value = torch.randn(2, s, 8, 32, generator=g)
    loc = torch.rand(2, s, 8, 3, 4, 2, generator=g) * 1.2 - 0.1
    attn = torch.rand(2, s, 8, 3, 4, generator=g)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    ref = ms_deform_attn_pytorch(value.double(), shapes, loc.double(), attn.double())
    for path in (ms_deform_attn_gather, ms_deform_attn_pytorch):
        err = (path(value, shapes, loc, attn).double() - ref).abs().max() / ref.abs().max()
        assert err < 1e-5, (path.__name__, float(err))


def test_gather_row_arithmetic_in_float64_and_int64_when_rows_exceed_the_narrow_types(monkeypatch):
    value, shapes, loc, attn = _inputs()
    expected = ms_deform_attn_gather(value, shapes, loc, attn)
    monkeypatch.setattr(msda, "_FLOAT32_EXACT_ROWS", 8)
    monkeypatch.setattr(msda, "_INT32_ROWS", 8)
    assert torch.equal(ms_deform_attn_gather(value, shapes, loc, attn), expected)


def test_dispatch_uses_pytorch_on_cpu_even_with_a_kernel(monkeypatch):
    class _FakeKernel:
        def ms_deform_attn_forward(self, *args):
            raise AssertionError("the compiled kernel must not be used for CPU tensors")

    monkeypatch.setattr(msda, "_load_kernel", lambda: _FakeKernel())
    value, shapes, loc, attn = _inputs()
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    out = ms_deform_attn_core(value, shapes, start, loc, attn)
    assert torch.equal(out, ms_deform_attn_gather(value, shapes, loc, attn))
    out = ms_deform_attn_core(value, shapes, start, loc, attn, reference=True)
    assert torch.equal(out, ms_deform_attn_pytorch(value, shapes, loc, attn))


def test_module_reference_sampling_switches_to_grid_sample(monkeypatch):
    module, query, ref_points, inputs, shapes, start = _module_and_inputs()
    calls = []
    for name in ("ms_deform_attn_gather", "ms_deform_attn_pytorch"):
        original = getattr(msda, name)
        monkeypatch.setattr(msda, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    default = module(query, ref_points, inputs, shapes, start)
    module.reference_sampling = True
    reference = module(query, ref_points, inputs, shapes, start)
    assert calls == ["ms_deform_attn_gather", "ms_deform_attn_pytorch"]
    assert torch.allclose(default, reference, atol=1e-6, rtol=1e-5)


def test_missing_kernel_is_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "MultiScaleDeformableAttention", None)  # import -> ImportError
    msda._load_kernel.cache_clear()
    try:
        assert not msda.kernel_available()
    finally:
        msda._load_kernel.cache_clear()


def test_half_input_runs_in_fp32_and_keeps_dtype():
    value, shapes, loc, attn = _inputs()
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    out = ms_deform_attn_core(value.half(), shapes, start, loc.half(), attn.half())
    assert out.dtype == torch.float16
    ref = ms_deform_attn_gather(value.half().float(), shapes, loc.half().float(), attn.half().float())
    assert torch.allclose(out.float(), ref, atol=2e-3)


def _module_and_inputs(seed=0):
    torch.manual_seed(seed)
    d_model, heads, points = 8, 2, 3
    module = MSDeformAttn(d_model, n_levels=len(SHAPES), n_heads=heads, n_points=points)
    with torch.no_grad():  # non-trivial offsets and weights (the init zeroes their weights)
        module.sampling_offsets.weight.normal_(0, 0.2)
        module.attention_weights.weight.normal_(0, 0.5)
    shapes = torch.tensor(SHAPES, dtype=torch.long)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    s = int(shapes.prod(1).sum())
    query = torch.randn(2, 4, d_model)
    inputs = torch.randn(2, s, d_model)
    ref_points = torch.rand(2, 4, len(SHAPES), 2)
    return module, query, ref_points, inputs, shapes, start


def test_module_matches_explicit_composition():
    module, query, ref_points, inputs, shapes, start = _module_and_inputs()
    out = module(query, ref_points, inputs, shapes, start)
    n, lq, _ = query.shape
    value = module.value_proj(inputs).view(n, -1, 2, 4)
    offsets = module.sampling_offsets(query).view(n, lq, 2, 2, 3, 2)
    weights = module.attention_weights(query).view(n, lq, 2, 6).softmax(-1).view(n, lq, 2, 2, 3)
    wh = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float32)  # offsets are in level pixels
    loc = ref_points[:, :, None, :, None, :] + offsets / wh[None, None, None, :, None, :]
    expected = module.output_proj(_loop_reference(value, shapes, loc, weights).float())
    assert out.shape == (2, 4, 8)
    assert torch.allclose(out, expected, atol=1e-5)


def test_gradients_flow_to_inputs_and_parameters():
    value, shapes, loc, attn = _inputs()
    value.requires_grad_(True)
    loc.requires_grad_(True)
    attn.requires_grad_(True)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    ms_deform_attn_core(value, shapes, start, loc, attn).square().sum().backward()
    for t in (value, loc, attn):
        assert t.grad is not None and t.grad.abs().sum() > 0

    module, query, ref_points, inputs, shapes, start = _module_and_inputs()
    module(query, ref_points, inputs, shapes, start).square().sum().backward()
    for name in ("sampling_offsets", "attention_weights", "value_proj", "output_proj"):
        grad = getattr(module, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_deformable_detr_init_and_key_shapes():
    module = MSDeformAttn(256, n_levels=3, n_heads=8, n_points=4)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {
        "sampling_offsets.weight": (192, 256),
        "sampling_offsets.bias": (192,),
        "attention_weights.weight": (96, 256),
        "attention_weights.bias": (96,),
        "value_proj.weight": (256, 256),
        "value_proj.bias": (256,),
        "output_proj.weight": (256, 256),
        "output_proj.bias": (256,),
    }
    bias = module.sampling_offsets.bias.view(8, 3, 4, 2)
    assert torch.allclose(bias[0, 0, :, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))  # head 0 points along +x
    assert torch.allclose(bias[2, 1, 1], torch.tensor([0.0, 2.0]), atol=1e-6)  # head 2 along +y
    assert module.sampling_offsets.weight.abs().sum() == 0
    assert module.attention_weights.weight.abs().sum() == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="divisible"):
        MSDeformAttn(10, n_heads=3)
    module, query, ref_points, inputs, shapes, start = _module_and_inputs()
    with pytest.raises(ValueError, match="spatial_shapes"):
        module(query, ref_points, inputs[:, :-1], shapes, start)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and msda.kernel_available()),
    reason="needs CUDA and the compiled MultiScaleDeformableAttention op",
)
def test_cuda_kernel_matches_pytorch():
    value, shapes, loc, attn = (t.cuda() for t in _inputs(n=2, lq=16, m=2, dh=32, p=4))
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    kernel = ms_deform_attn_core(value, shapes, start, loc, attn)
    torch_out = ms_deform_attn_pytorch(value, shapes, loc, attn)
    assert torch.allclose(kernel, torch_out, atol=1e-5)
