"""SAM/SAM2 training-free path (mask_adapter/modeling/meta_arch/sam.py) with injected and tiny random SAM generators."""

import sys

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

from mask_adapter.modeling.meta_arch.sam import (
    SAM_MASK_LOGIT,
    SAMMaskAdapter,
    build_sam_mask_generator,
    masks_from_records,
    to_sam_config,
)
from tests._builders import tiny_config
from tests._tiny_sam import build_tiny_sam

CLASSES = ["cat,kitten", "dog", "person"]


def _cfg(name: str = "fcclip_tiny"):
    return tiny_config(name)


class FakeGenerator:
    """Returns fixed masks (given as functions of the image size) in SAM's list-of-dicts format."""

    def __init__(self, *mask_fns):
        self.mask_fns = mask_fns
        self.calls = []

    def generate(self, image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls.append(image.shape)
        h, w = image.shape[:2]
        out = []
        for fn in self.mask_fns:
            m = np.zeros((h, w), bool)
            m[fn(h, w)] = True
            out.append({"segmentation": m, "area": int(m.sum()), "predicted_iou": 0.9})
        return out


LEFT = lambda h, w: (slice(None), slice(0, w // 2))  # noqa: E731
TOP = lambda h, w: (slice(0, h // 2), slice(None))  # noqa: E731
EMPTY = lambda h, w: (slice(0, 0), slice(0, 0))  # noqa: E731


def _model(generator, cfg=None):
    torch.manual_seed(0)
    model = SAMMaskAdapter(to_sam_config(cfg or _cfg()), mask_generator=generator).eval()
    model.set_vocabulary(CLASSES, [0, 1, 2])
    return model


@pytest.fixture(scope="module")
def shared_model():
    """One tiny FC-CLIP-based SAM model for the module; tests swap its ``mask_generator``."""
    return _model(FakeGenerator(LEFT))


@pytest.fixture()
def model_with(shared_model):
    def _with(generator):
        shared_model.mask_generator = generator
        return shared_model

    return _with


def _image(h=96, w=128):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_masks_from_records_sorted_and_checked():
    small, big, empty = np.zeros((4, 5), bool), np.zeros((4, 5), bool), np.zeros((4, 5), bool)
    small[0, 0] = True
    big[1:, :] = True
    masks = masks_from_records([{"segmentation": small}, {"segmentation": empty}, {"segmentation": big}], 4, 5)
    assert masks.shape == (2, 4, 5) and masks.dtype == torch.bool
    assert masks[0].sum() == 15 and masks[1].sum() == 1  # largest first, empty dropped
    assert masks_from_records([], 4, 5).shape == (0, 4, 5)
    with pytest.raises(ValueError, match="size"):
        masks_from_records([{"segmentation": np.zeros((3, 5), bool)}], 4, 5)
    with pytest.raises(ValueError, match="no 'segmentation'"):
        masks_from_records([{"rle": "..."}], 4, 5)


def test_propose_masks_shapes_and_padding(model_with):
    gen = FakeGenerator(LEFT, TOP)
    model = model_with(gen)
    images = [_image(96, 128), _image(64, 100)]
    with torch.no_grad():
        state_images = model.preprocess_image([{"image": x} for x in images])
        from mask_adapter.modeling.meta_arch.base import ForwardState

        state = ForwardState(
            images=state_images,
            features={},
            clip_dense=None,
            dense=None,
            text=None,
            synonyms_per_class=[],
            vocabulary=model.test_vocabulary,
        )
        out = model.propose_masks(state, [{"image": x} for x in images])
    assert gen.calls == [(96, 128, 3), (64, 100, 3)]  # the generator sees each unpadded image
    assert out["num_masks"] == [2, 2]
    hp, wp = state_images.tensor.shape[-2:]
    assert (hp, wp) == (96, 128)
    assert out["pred_masks"].shape == (2, 2, hp // 4, wp // 4)
    assert set(out["pred_masks"].unique().tolist()) == {-SAM_MASK_LOGIT, SAM_MASK_LOGIT}
    assert out["sam_masks"].shape == (2, 2, hp, wp) and out["sam_masks"].dtype == torch.bool
    assert out["sam_masks"][1, :, 64:].sum() == 0 and out["sam_masks"][1, :, :, 100:].sum() == 0  # padding
    assert out["sam_masks"][0, 0, :, :64].all() and not out["sam_masks"][0, 0, :, 64:].any()


def test_thin_masks_survive_the_coarse_grid(model_with):
    model = model_with(FakeGenerator(lambda h, w: (slice(10, 11), slice(5, 50)), LEFT))  # a 1-pixel-high line
    images = model.preprocess_image([{"image": _image(64, 64)}])
    from mask_adapter.modeling.meta_arch.base import ForwardState

    state = ForwardState(
        images=images,
        features={},
        clip_dense=None,
        dense=None,
        text=None,
        synonyms_per_class=[],
        vocabulary=model.test_vocabulary,
    )
    out = model.propose_masks(state, [{"image": _image(64, 64)}])
    line = out["pred_masks"][0, 1] > 0  # sorted by area: the half comes first
    assert line.sum() == 12 and line[2, 1:13].all()  # row 10 -> cell row 2; columns 5..49 -> cells 1..12


def test_semantic_sums_class_probabilities_per_pixel(model_with):
    model = model_with(FakeGenerator(LEFT, TOP))
    with torch.no_grad():
        out = model([{"image": _image(), "height": 96, "width": 128}])[0]
    sem = out["sem_seg"]
    assert sem.shape == (3, 96, 128)
    coverage = sem.sum(0)
    # void is dropped, so each covering mask contributes a full probability distribution
    assert torch.allclose(coverage[:48, :64], torch.tensor(2.0), atol=1e-4)  # left ∩ top
    assert torch.allclose(coverage[48:, :64], torch.tensor(1.0), atol=1e-4)  # left only
    assert torch.allclose(coverage[:48, 64:], torch.tensor(1.0), atol=1e-4)  # top only
    assert torch.allclose(coverage[48:, 64:], torch.tensor(0.0), atol=1e-4)  # no mask
    # in the overlap, the scores are the sum of the two single-mask distributions
    assert torch.allclose(sem[:, 10, 10], sem[:, 70, 10] + sem[:, 10, 100], atol=1e-4)


def test_void_column_is_minus_inf_and_outputs(model_with):
    model = model_with(FakeGenerator(LEFT, TOP))
    with torch.no_grad():
        out = model([{"image": _image(), "height": 48, "width": 64}])[0]
    pan, segments = out["panoptic_seg"]
    assert pan.shape == (48, 64)
    assert all(s["category_id"] < len(CLASSES) for s in segments)
    assert (pan[24:, 32:] == 0).all()  # pixels outside every mask get no segment
    inst = out["instances"]
    assert inst.image_size == (48, 64)
    assert ((inst.pred_classes >= 0) & (inst.pred_classes < len(CLASSES))).all()
    # classify_masks drops void
    from mask_adapter.modeling.meta_arch.base import ForwardState

    with torch.no_grad():
        images = model.preprocess_image([{"image": _image()}])
        feats = model.backbone(images.tensor)
        text, nt = model.text_rows(model.test_vocabulary)
        state = ForwardState(
            images=images,
            features=feats,
            clip_dense=feats["clip_vis_dense"],
            dense=model.backbone.dense_projection(feats["clip_vis_dense"], model.dense_projection),
            text=text,
            synonyms_per_class=nt,
            vocabulary=model.test_vocabulary,
            adapter_text=text,
        )
        logits = model.classify_masks(state, model.propose_masks(state, [{"image": _image()}]))
    assert logits.shape == (1, 2, len(CLASSES) + 1)
    assert torch.isinf(logits[..., -1]).all() and torch.isfinite(logits[..., :-1]).all()


def test_no_masks_found(model_with):
    model = model_with(FakeGenerator(EMPTY))
    with torch.no_grad():
        out = model([{"image": _image(), "height": 30, "width": 40}])[0]
    assert out["sem_seg"].shape == (3, 30, 40) and out["sem_seg"].abs().sum() == 0
    assert out["panoptic_seg"][1] == [] and (out["panoptic_seg"][0] == 0).all()
    assert len(out["instances"]) == 0


def test_training_is_refused_and_generator_checked(model_with):
    model = model_with(FakeGenerator(LEFT))
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training
    with pytest.raises(ValueError, match="training-free"):
        model.train()
    model.eval()
    with pytest.raises(TypeError, match="generate"):
        SAMMaskAdapter(to_sam_config(_cfg()), mask_generator=object())


def test_to_sam_config_keeps_the_adapter_setup():
    fc = to_sam_config(_cfg("fcclip_tiny"), "sam.pth")
    assert fc.MODEL.META_ARCHITECTURE == "SAMMaskAdapter"
    assert fc.MODEL.SAM.CHECKPOINT == "sam.pth"
    assert fc.MODEL.MASK_ADAPTER.DENSE_PROJECTION == "pixelwise" and not fc.MODEL.MASK_ADAPTER.TRAIN_MAFT
    maft_cfg = _cfg("maftp_tiny")
    maft = to_sam_config(maft_cfg)
    assert maft.MODEL.MASK_ADAPTER.DENSE_PROJECTION == "maftp_scrambled" and maft.MODEL.MASK_ADAPTER.TRAIN_MAFT
    assert maft.MODEL.MASK_ADAPTER.CDT_VARIANT == "panoptic"  # pinned from PANOPTIC_ON of the tiny config
    assert maft_cfg.MODEL.META_ARCHITECTURE == "MAFT_Plus"  # the input config is not modified
    model = _model(FakeGenerator(LEFT), maft_cfg)
    assert hasattr(model, "cdt") and model.dense_projection == "maftp_scrambled"
    with torch.no_grad():
        out = model([{"image": _image(64, 64)}])[0]
    assert out["sem_seg"].shape == (3, 64, 64)


def test_fcclip_weights_load_into_the_sam_model(shared_model):
    torch.manual_seed(1)
    fcclip = build_model(_cfg())
    sam_model = shared_model
    result = sam_model.load_state_dict(fcclip.state_dict(), strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all(k.startswith("sem_seg_head.") for k in result.unexpected_keys)
    assert torch.equal(sam_model.mask_adapter.fuse.weight, fcclip.mask_adapter.fuse.weight)


def test_tiny_random_sam_generator_end_to_end(tmp_path, monkeypatch):
    import segment_anything

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), ckpt)
    monkeypatch.setitem(segment_anything.sam_model_registry, "tiny_test", build_tiny_sam)
    cfg = to_sam_config(_cfg(), str(ckpt))
    cfg.merge_from_list(
        [
            "MODEL.SAM.MODEL_TYPE",
            "tiny_test",
            "MODEL.SAM.POINTS_PER_SIDE",
            4,
            "MODEL.SAM.PRED_IOU_THRESH",
            0.0,
            "MODEL.SAM.STABILITY_SCORE_THRESH",
            0.0,
        ]
    )
    model = build_model(cfg).eval()
    gen = model.mask_generator
    assert isinstance(gen, segment_anything.SamAutomaticMaskGenerator)
    assert len(gen.point_grids[0]) == 16  # 4 × 4 prompts
    assert "mask_generator" not in dict(model.named_children())  # SAM weights stay out of the state dict
    model.set_vocabulary(CLASSES, [0, 1, 2])
    with torch.no_grad():
        out = model([{"image": _image(64, 80), "height": 64, "width": 80}])[0]
    assert out["sem_seg"].shape == (3, 64, 80)
    assert torch.isfinite(out["sem_seg"]).all()


def test_generator_build_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="MODEL.SAM.CHECKPOINT is empty"):
        build_sam_mask_generator("vit_b", "")
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        build_sam_mask_generator("vit_b", str(tmp_path / "missing.pth"))
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"0")
    with pytest.raises(ValueError, match="unknown MODEL.SAM.MODEL_TYPE 'vit_xl'"):
        build_sam_mask_generator("vit_xl", str(ckpt))
    with pytest.raises(ValueError, match="is a SAM2 model: set MODEL.SAM.SOURCE sam2 and MODEL.SAM2.CONFIG"):
        build_sam_mask_generator("sam2.1_hiera_l", str(ckpt))
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(ImportError, match="pip install segment-anything"):
        build_sam_mask_generator("vit_b", str(ckpt))
