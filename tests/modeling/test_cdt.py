"""MAFT+ Content-Dependent Transfer: key names, both residual variants against a manual computation.

Manual reference (all in float64):
    t    = text rows expanded per image                          (T+1, B, D)
    mem  = dense flattened                                       (hw, B, D)
    pos  = sine embedding (D/2 feats per axis, normalize, 2π, T=10000), flattened like mem
    a    = MultiheadAttention(query=t, key=mem + pos, value=mem)  using the module's in/out projection weights
    panoptic: t + LN(MLP(a));   semantic: LN(t + MLP(a))          -> transposed to (B, T+1, D)
"""

import math

import pytest
import torch
from torch import nn

from mask_adapter.modeling.cdt import ContentDependentTransfer

D, NHEAD, B, H, W, T1 = 32, 8, 2, 3, 4, 5  # T1 = T + 1 text rows (void last)

CDT_KEYS = [
    "cross_atten.multihead_attn.in_proj_weight",
    "cross_atten.multihead_attn.in_proj_bias",
    "cross_atten.multihead_attn.out_proj.weight",
    "cross_atten.multihead_attn.out_proj.bias",
    "cross_atten.norm.weight",
    "cross_atten.norm.bias",
    "cross_atten.MLP.weight",
    "cross_atten.MLP.bias",
]


def _sine_pos(h: int, w: int, d: int) -> torch.Tensor:
    """(h·w, d) Mask2Former sine embedding (normalize=True, scale 2π, temperature 10000), row-major positions."""
    f = d // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float64) / (h + eps) * scale
    x = torch.arange(1, w + 1, dtype=torch.float64) / (w + eps) * scale
    dim_t = 10000.0 ** (2 * (torch.arange(f, dtype=torch.float64) // 2) / f)

    def embed(v):  # (n,) -> (n, f): sin on even frequencies, cos on odd, interleaved
        p = v[:, None] / dim_t
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)

    ey, ex = embed(y), embed(x)  # (h, f), (w, f)
    pos = torch.cat([ey[:, None, :].expand(h, w, f), ex[None, :, :].expand(h, w, f)], dim=-1)
    return pos.reshape(h * w, d)


def _manual_mha(mha: nn.MultiheadAttention, q, k, v):
    """q (L, B, D), k/v (S, B, D) -> (L, B, D), scaled dot-product attention per head, written out."""
    d = mha.embed_dim
    nh = mha.num_heads
    dh = d // nh
    wt, bs = mha.in_proj_weight.double(), mha.in_proj_bias.double()
    qp = q @ wt[:d].T + bs[:d]
    kp = k @ wt[d : 2 * d].T + bs[d : 2 * d]
    vp = v @ wt[2 * d :].T + bs[2 * d :]

    def heads(x):  # (n, B, D) -> (B, nh, n, dh)
        n, b, _ = x.shape
        return x.reshape(n, b, nh, dh).permute(1, 2, 0, 3)

    attn = torch.softmax(heads(qp) @ heads(kp).transpose(-1, -2) / math.sqrt(dh), dim=-1)
    out = attn @ heads(vp)  # (B, nh, L, dh)
    out = out.permute(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], d)
    return out @ mha.out_proj.weight.double().T + mha.out_proj.bias.double()


def _layer_norm(x, ln: nn.LayerNorm):
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight.double() + ln.bias.double()


def _manual_cdt(cdt: ContentDependentTransfer, dense, text, variant: str, pos_on_value: bool = False):
    ca = cdt.cross_atten
    b, d, h, w = dense.shape
    mem = dense.double().flatten(2).permute(2, 0, 1)  # (hw, B, D)
    pos = _sine_pos(h, w, d)[:, None, :].expand(-1, b, -1)
    t = text.double()[:, None, :].expand(-1, b, -1)
    a = _manual_mha(ca.multihead_attn, t, mem + pos, mem + pos if pos_on_value else mem)
    mlp = a @ ca.MLP.weight.double().T + ca.MLP.bias.double()
    out = t + _layer_norm(mlp, ca.norm) if variant == "panoptic" else _layer_norm(t + mlp, ca.norm)
    return out.transpose(0, 1)


def _randomise(cdt: ContentDependentTransfer, seed: int) -> None:
    """Non-trivial weights everywhere (the panoptic MLP is zero-initialised, LayerNorm is identity at init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cdt.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, H, W, generator=g), torch.randn(T1, D, generator=g)


def test_key_names_and_shapes():
    cdt = ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="panoptic")
    sd = cdt.state_dict()
    assert list(sd) == CDT_KEYS
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes == {
        CDT_KEYS[0]: (3 * D, D),
        CDT_KEYS[1]: (3 * D,),
        CDT_KEYS[2]: (D, D),
        CDT_KEYS[3]: (D,),
        CDT_KEYS[4]: (D,),
        CDT_KEYS[5]: (D,),
        CDT_KEYS[6]: (D, D),
        CDT_KEYS[7]: (D,),
    }
    # The position embedding is parameter-free; both variants share the layout.
    assert list(ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="semantic").state_dict()) == CDT_KEYS
    assert cdt.cross_atten.multihead_attn.num_heads == NHEAD
    assert cdt.cross_atten.multihead_attn.dropout == 0.0


def test_keys_match_reference_table(reference_dir):
    """cdt.* rows of the official MAFTP-B table (D = 640, 8 heads) equal a CDT built with cdt_params [640, 8]."""
    rows = {}
    for line in (reference_dir / "maftp_base_a150_state_dict.tsv").read_text().splitlines()[1:]:
        if line.startswith("cdt."):
            key, shape = line.split("\t")[:2]
            rows[key] = tuple(int(s) for s in shape.split("x"))
    cdt = ContentDependentTransfer(d_model=640, nhead=8, variant="semantic")
    ours = {f"cdt.{k}": tuple(v.shape) for k, v in cdt.state_dict().items()}
    assert ours == rows
    assert list(ours) == list(rows)


@pytest.mark.parametrize("variant", ["panoptic", "semantic"])
def test_formula_matches_manual_computation(variant):
    cdt = ContentDependentTransfer(d_model=D, nhead=NHEAD, variant=variant).eval()
    _randomise(cdt, seed=1)
    dense, text = _inputs()
    with torch.no_grad():
        out = cdt(dense, text)
    assert out.shape == (B, T1, D)
    assert out.dtype == torch.float32
    expected = _manual_cdt(cdt, dense, text, variant)
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)
    # The two variants are genuinely different functions of the same weights.
    other = "semantic" if variant == "panoptic" else "panoptic"
    assert not torch.allclose(out.double(), _manual_cdt(cdt, dense, text, other), atol=1e-2)


def test_position_embedding_goes_to_key_only():
    cdt = ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="semantic").eval()
    _randomise(cdt, seed=2)
    dense, text = _inputs(seed=5)
    with torch.no_grad():
        out = cdt(dense, text).double()
    torch.testing.assert_close(out, _manual_cdt(cdt, dense, text, "semantic"), rtol=1e-4, atol=1e-4)
    wrong = _manual_cdt(cdt, dense, text, "semantic", pos_on_value=True)
    assert (out - wrong).abs().max().item() > 1e-2


def test_panoptic_variant_is_identity_at_init():
    """Zero-initialised MLP (official nn.init.constant(0)) and identity LayerNorm: t + LN(0) = t."""
    cdt = ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="panoptic").eval()
    assert torch.count_nonzero(cdt.cross_atten.MLP.weight) == 0
    assert torch.count_nonzero(cdt.cross_atten.MLP.bias) == 0
    dense, text = _inputs()
    with torch.no_grad():
        out = cdt(dense, text)
    torch.testing.assert_close(out, text[None].expand(B, -1, -1), rtol=0, atol=0)


def test_rows_depend_on_the_image():
    cdt = ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="semantic").eval()
    _randomise(cdt, seed=3)
    dense, text = _inputs()
    with torch.no_grad():
        out = cdt(dense, text)
        single = cdt(dense[1:], text)
    assert not torch.allclose(out[0], out[1], atol=1e-3)
    torch.testing.assert_close(single[0], out[1], rtol=1e-5, atol=1e-6)


def test_variant_property_and_unknown_variant():
    assert ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="panoptic").variant == "panoptic"
    assert ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="semantic").variant == "semantic"
    with pytest.raises(ValueError, match="unknown CDT variant"):
        ContentDependentTransfer(d_model=D, nhead=NHEAD, variant="instance")
