"""CLIPBackbone on the tiny random ConvNeXt CLIP ``tiny_convnext_atto``.

Tiny model: trunk stage widths 40/80/160/320 (C_raw = 320), embedding width D = 64.
"""

import pytest
import torch
import torch.nn.functional as F

from mask_adapter.modeling.backbone.clip import DENSE_PROJECTIONS, CLIPBackbone, build_clip_model

C_RAW, D = 320, 64


def test_output_names_strides_channels(tiny_clip):
    shapes = tiny_clip.output_shape()
    assert list(shapes) == ["stem", "res2", "res3", "res4", "res5", "clip_vis_dense"]
    assert {k: v.channels for k, v in shapes.items()} == {
        "stem": 40,
        "res2": 40,
        "res3": 80,
        "res4": 160,
        "res5": 320,
        "clip_vis_dense": 320,
    }
    assert {k: v.stride for k, v in shapes.items()} == {
        "stem": 4,
        "res2": 4,
        "res3": 8,
        "res4": 16,
        "res5": 32,
        "clip_vis_dense": 32,
    }
    assert tiny_clip.size_divisibility == -1
    assert tiny_clip.embed_dim == D and tiny_clip.clip_dense_channels == C_RAW


def test_channels_are_read_from_the_trunk(tiny_clip):
    trunk = tiny_clip.clip_model.visual.trunk
    stage_out = [stage.blocks[-1].mlp.fc2.out_channels for stage in trunk.stages]
    shapes = tiny_clip.output_shape()
    assert [shapes[f"res{i}"].channels for i in (2, 3, 4, 5)] == stage_out


def test_frozen_and_always_eval(tiny_clip):
    assert all(not p.requires_grad for p in tiny_clip.parameters())
    tiny_clip.train()
    try:
        assert tiny_clip.training  # the wrapper follows the mode ...
        assert not tiny_clip.clip_model.training  # ... but the CLIP model stays in eval
        assert not any(m.training for m in tiny_clip.clip_model.modules())
    finally:
        tiny_clip.eval()


def test_forward_shapes_and_no_grad(tiny_clip):
    x = torch.randn(2, 3, 64, 96, requires_grad=True)
    out = tiny_clip(x)
    assert list(out) == ["stem", "res2", "res3", "res4", "res5", "clip_vis_dense"]
    shapes = tiny_clip.output_shape()
    for name, feat in out.items():
        s = shapes[name].stride
        assert feat.shape == (2, shapes[name].channels, 64 // s, 96 // s), name
        assert not feat.requires_grad, name
        assert torch.isfinite(feat).all(), name


def test_forward_forces_eval_mode(tiny_clip):
    tiny_clip.clip_model.train()  # someone flips it behind the wrapper's back
    try:
        tiny_clip(torch.randn(1, 3, 32, 32))
        assert not tiny_clip.clip_model.training
    finally:
        tiny_clip.clip_model.eval()


def test_features_follow_trunk_stages_and_norm_pre(tiny_clip):
    x = torch.randn(1, 3, 64, 64)
    out = tiny_clip(x)
    trunk = tiny_clip.clip_model.visual.trunk
    with torch.no_grad():
        y = trunk.stem(x)
        torch.testing.assert_close(out["stem"], y)
        for i, stage in enumerate(trunk.stages):
            y = stage(y)
            torch.testing.assert_close(out[f"res{i + 2}"], y)
        torch.testing.assert_close(out["clip_vis_dense"], trunk.norm_pre(out["res5"]))
        # res5 is the full trunk: forward_features == norm_pre(res5)
        torch.testing.assert_close(out["clip_vis_dense"], trunk.forward_features(x))


def test_dense_projection_pixelwise_matches_per_position(tiny_clip):
    dense = torch.randn(2, C_RAW, 2, 3)
    out = tiny_clip.dense_projection(dense, "pixelwise")
    assert out.shape == (2, D, 2, 3)
    visual = tiny_clip.clip_model.visual
    ln = visual.trunk.head.norm
    with torch.no_grad():
        for b in range(2):
            for y in range(2):
                for x in range(3):
                    v = F.layer_norm(dense[b, :, y, x], (C_RAW,), ln.weight, ln.bias, ln.eps)
                    torch.testing.assert_close(out[b, :, y, x], visual.head(v[None])[0], rtol=1e-5, atol=1e-5)
    # pixelwise == projecting each position's vector as a pooled vector (global pool of a 1×1 map is identity)
    rows = dense.permute(0, 2, 3, 1).reshape(-1, C_RAW)
    expected = tiny_clip.project_pooled(rows).reshape(2, 2, 3, D).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_dense_projection_maftp_scrambled_explicit_indices(tiny_clip):
    b, h, w = 2, 2, 3
    hw = h * w
    dense = torch.randn(b, C_RAW, h, w)
    out = tiny_clip.dense_projection(dense, "maftp_scrambled")
    assert out.shape == (b, D, h, w)
    flat = dense.reshape(b, C_RAW, hw)
    rows = torch.empty(b, hw, C_RAW)
    for bi in range(b):
        for p in range(hw):
            for c in range(C_RAW):
                idx = p * C_RAW + c
                rows[bi, p, c] = flat[bi, idx // hw, idx % hw]
    proj = tiny_clip.project_pooled(rows.reshape(b * hw, C_RAW))  # trunk.head then visual.head, per row
    expected = proj.reshape(b, h, w, D).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # it is genuinely different from the pixelwise projection
    assert not torch.allclose(out, tiny_clip.dense_projection(dense, "pixelwise"), atol=1e-3)


def test_dense_projection_scrambled_ignores_memory_format(tiny_clip):
    dense = torch.randn(1, C_RAW, 2, 3)
    a = tiny_clip.dense_projection(dense, "maftp_scrambled")
    b = tiny_clip.dense_projection(dense.to(memory_format=torch.channels_last), "maftp_scrambled")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dense_projection_unknown_variant(tiny_clip):
    assert set(DENSE_PROJECTIONS) == {"pixelwise", "maftp_scrambled"}
    with pytest.raises(ValueError, match="unknown dense projection 'scrambled'.*pixelwise"):
        tiny_clip.dense_projection(torch.randn(1, C_RAW, 1, 1), "scrambled")


def test_project_pooled_lets_gradients_through(tiny_clip):
    pooled = torch.randn(5, C_RAW, requires_grad=True)
    out = tiny_clip.project_pooled(pooled)
    assert out.shape == (5, D) and out.requires_grad
    (out * torch.randn_like(out)).sum().backward()
    assert pooled.grad is not None and pooled.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_clip.parameters())


def test_dense_projection_lets_gradients_through(tiny_clip):
    for variant in DENSE_PROJECTIONS:
        dense = torch.randn(1, C_RAW, 2, 2, requires_grad=True)
        tiny_clip.dense_projection(dense, variant).sum().backward()
        assert dense.grad is not None and dense.grad.abs().sum() > 0, variant


def test_state_dict_prefix(tiny_clip):
    keys = list(tiny_clip.state_dict())
    assert keys and all(k.startswith("clip_model.") for k in keys)
    for k in ("clip_model.visual.trunk.stem.0.weight", "clip_model.logit_scale", "clip_model.text_projection"):
        assert k in keys
    assert tiny_clip.state_dict()["clip_model.logit_scale"].dim() == 0


def test_logit_scale_and_text_encoding(tiny_clip):
    assert tiny_clip.logit_scale is tiny_clip.clip_model.logit_scale
    tokens = tiny_clip.tokenize(["a photo of a cat.", "a photo of a dog."])
    assert tokens.shape == (2, 77)
    emb = tiny_clip.encode_text(tokens)
    assert emb.shape == (2, D) and not emb.requires_grad
    assert not torch.allclose(emb[0], emb[1])


def test_non_convnext_model_rejected():
    with pytest.raises(ValueError, match="not a ConvNeXt"):
        build_clip_model("ViT-B-32", "")
    with pytest.raises(ValueError, match="ConvNeXt"):
        CLIPBackbone(model_name="ViT-B-32", pretrained="")


def test_unknown_model_name_rejected():
    with pytest.raises(ValueError, match="unknown CLIP model 'no_such_clip_model'"):
        build_clip_model("no_such_clip_model", "")


def test_missing_local_weights_file(tmp_path):
    missing = tmp_path / "nowhere" / "clip_weights.bin"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_clip_model("tiny_convnext_atto", str(missing))
    with pytest.raises(FileNotFoundError, match="does_not_exist.pt"):
        CLIPBackbone(model_name="tiny_convnext_atto", pretrained="does_not_exist.pt")


def test_local_weights_file_is_loaded(tmp_path):
    source = CLIPBackbone(model_name="tiny_convnext_atto", pretrained="")
    with torch.no_grad():
        source.clip_model.visual.trunk.stem[0].weight.add_(0.5)
        source.clip_model.logit_scale.fill_(1.2345)
    path = tmp_path / "tiny_clip.pt"
    torch.save(source.clip_model.state_dict(), path)
    torch.manual_seed(99)  # a different random init, so equality can only come from the file
    loaded = CLIPBackbone(model_name="tiny_convnext_atto", pretrained=str(path))
    stem = "clip_model.visual.trunk.stem.0.weight"
    assert torch.equal(loaded.state_dict()[stem], source.state_dict()[stem])
    assert float(loaded.logit_scale) == pytest.approx(1.2345)
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert all(not p.requires_grad for p in loaded.parameters())
    assert loaded.text_tower_fingerprint() == source.text_tower_fingerprint()


def test_key_names_match_official_backbone_layout(tiny_clip, reference_dir):
    """Every tiny-CLIP key, prefixed ``backbone.``, is an official key (same naming for trunk, heads, text tower),
    and every official backbone key pattern (indices masked) occurs in the tiny model."""
    import re

    table = reference_dir / "fcclip_convnext_large_ade20k_state_dict.tsv"
    ref = [
        line.split("\t")[0] for line in table.read_text().splitlines()[1:] if line.strip() and not line.startswith("#")
    ]
    ref_backbone = {k for k in ref if k.startswith("backbone.")}
    ours = {"backbone." + k for k in tiny_clip.state_dict()}
    assert ours <= ref_backbone, sorted(ours - ref_backbone)[:10]

    def pattern(key: str) -> str:
        return re.sub(r"(?<=\.)\d+(?=\.)", "#", key)

    assert {pattern(k) for k in ref_backbone} == {pattern(k) for k in ours}
    assert "clip_model.attn_mask" not in tiny_clip.state_dict()  # non-persistent, as in the official tables


def test_build_from_cfg_with_official_backbone_name():
    from detectron2.config import get_cfg
    from detectron2.modeling import build_backbone

    from mask_adapter import config

    cfg = get_cfg()
    config.add_mask_adapter_config(cfg)
    cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME = "tiny_convnext_atto"
    cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS = ""
    names = ["CLIPBackbone", "CLIP"]  # ours and the official registry name (mask_adapter.config.official_names)
    for name in names:
        cfg.MODEL.BACKBONE.NAME = name
        backbone = build_backbone(cfg)
        assert isinstance(backbone, CLIPBackbone), name
        assert backbone.model_name == "tiny_convnext_atto" and backbone.pretrained == ""
        assert backbone.output_shape()["clip_vis_dense"].channels == C_RAW


def test_encode_text_is_eot_token_through_text_projection(tiny_clip):
    """As open_clip does: token embedding → transformer → ln_final → EOT token @ text_projection, unnormalised."""
    model = tiny_clip.clip_model
    tokens = tiny_clip.tokenize(["a photo of a cat.", "There is a large traffic light in the scene."])
    with torch.no_grad():
        x = model.token_embedding(tokens) + model.positional_embedding
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        eot = x[torch.arange(tokens.shape[0]), tokens.argmax(dim=-1)]
        expected = eot @ model.text_projection
    out = tiny_clip.encode_text(tokens)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.norm(dim=-1), torch.ones(2))  # not normalised here


def test_text_fingerprint_differs_for_different_weights():
    """The text-cache key must change with the text-tower weights (random inits, or weights loaded later)."""
    torch.manual_seed(1)
    a = CLIPBackbone(model_name="tiny_convnext_atto", pretrained="")
    torch.manual_seed(2)
    b = CLIPBackbone(model_name="tiny_convnext_atto", pretrained="")
    assert not torch.equal(a.clip_model.text_projection, b.clip_model.text_projection)
    fa = a.text_tower_fingerprint()
    assert fa != b.text_tower_fingerprint()
    with torch.no_grad():
        a.clip_model.text_projection.add_(1.0)
    assert a.text_tower_fingerprint() != fa


def test_encode_text_moves_tokens_to_the_model_device(tiny_clip):
    import copy

    model = copy.deepcopy(tiny_clip).to("meta")  # stands in for a CUDA model on this CPU-only machine
    seen = []

    class Stop(Exception):
        pass

    def spy(tokens):
        seen.append(tokens.device)
        raise Stop

    model.clip_model.token_embedding.forward = spy
    with pytest.raises(Stop):
        model.encode_text(model.tokenize(["a photo of a cat."]))
    assert seen == [torch.device("meta")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_text_classifier_on_cuda_model(tiny_clip):
    import copy

    from mask_adapter.modeling.text.classifier import TextClassifier

    model = copy.deepcopy(tiny_clip).cuda()
    clf = TextClassifier(tokenize=model.tokenize, encode_text=model.encode_text, model_id="tiny|cuda")
    out = clf(["cat", "dog,puppy"], device=torch.device("cuda"))
    assert out.embeddings.shape == (3, D) and out.embeddings.is_cuda


def test_encode_text_truncation_is_exact(tiny_clip):
    """encode_text drops positions after the longest prompt's EOT; the result equals open_clip's full-length pass."""
    prompts = ["a", "a photo of a traffic light in the scene.", "There is a large wooden dining table in the scene."]
    tokens = tiny_clip.tokenize(prompts)
    ours = tiny_clip.encode_text(tokens)
    with torch.no_grad():
        ref = tiny_clip.clip_model.encode_text(tokens, normalize=False)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5)
    long = tiny_clip.tokenize([" ".join(["word"] * 100)])  # truncated by the tokenizer to all 77 positions
    with torch.no_grad():
        assert torch.allclose(tiny_clip.encode_text(long), tiny_clip.clip_model.encode_text(long), atol=1e-5)
