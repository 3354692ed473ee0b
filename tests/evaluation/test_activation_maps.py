"""The adapter's activation maps per segment (mask_adapter.analysis.activation_maps) on the tiny random model."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask_adapter.analysis import compute_activation_maps, render_activation_figure, save_activation_figure
from mask_adapter.modeling.adapter.pooling import classification_logits
from tests._builders import tiny_model

REPO = Path(__file__).resolve().parents[1]
VOCAB = ["cat", "dog,puppy", "sky", "grass"]


@pytest.fixture(scope="module")
def model():
    return tiny_model(classes=VOCAB, thing_ids=[0, 1])


@pytest.fixture(scope="module")
def image():
    rng = np.random.RandomState(0)
    img = np.zeros((96, 128, 3), np.uint8)
    img[:40] = (90, 150, 230)
    img[40:] = (60, 160, 60)
    img[50:80, 30:70] = (220, 40, 40)
    return np.clip(img.astype(int) + rng.randint(-20, 20, img.shape), 0, 255).astype(np.uint8)


def test_maps_count_shapes_and_normalisation(model, image):
    result = compute_activation_maps(model, image, max_segments=3)
    k = model.mask_adapter.num_output_maps
    assert k == 16 and result.num_maps == 16
    assert 1 <= len(result.segments) <= 3
    state = model.encode([{"image": torch.as_tensor(image.transpose(2, 0, 1).copy())}])
    grid = tuple(state.clip_dense.shape[-2:])
    for s in result.segments:
        assert s.maps.shape == (16, *grid) and s.maps.dtype == np.float32
        assert s.maps.min() > 0
        np.testing.assert_allclose(s.maps.sum(axis=(1, 2)), np.ones(16), rtol=1e-5)  # the head's normalisation
        assert s.mean_map.sum() == pytest.approx(1.0, rel=1e-5)
        assert s.display_maps.shape == (16, 96, 128) and s.mask.shape == (96, 128) and s.mask.dtype == bool
        assert s.mask.any()
        for c in (s.pooling_class, s.adapter_class, s.final_class):
            assert 0 <= c < len(VOCAB)
        for p in (s.pooling_score, s.adapter_score, s.final_score):
            assert 0.0 < p <= 1.0
    finals = [s.final_score for s in result.segments]
    assert finals == sorted(finals, reverse=True)
    rows = result.summary()
    assert [r["adapter"]["class"] for r in rows] == [VOCAB[s.adapter_class].split(",")[0] for s in result.segments]


def test_adapter_class_is_the_class_of_the_maps_pooled_feature(model, image):
    """Pooling the CLIP feature with the returned maps, projecting and averaging gives the adapter's class."""
    result = compute_activation_maps(model, image, max_segments=2)
    state = model.encode([{"image": torch.as_tensor(image.transpose(2, 0, 1).copy())}])
    dense = state.clip_dense[0].flatten(1)  # (C_raw, h*w)
    for s in result.segments:
        maps = torch.as_tensor(s.maps).flatten(1)  # (K, h*w)
        emb = model.backbone.project_pooled(maps @ dense.t()).mean(0)
        logits = classification_logits(
            emb[None], state.adapter_text, model.backbone.logit_scale, state.synonyms_per_class
        )
        probs = logits[0].softmax(-1)[:-1]
        assert int(probs.argmax()) == s.adapter_class
        assert float(probs.max()) == pytest.approx(s.adapter_score, abs=1e-4)


def test_figure_is_saved(model, image, tmp_path):
    result = compute_activation_maps(model, image, max_segments=2)
    figure = render_activation_figure(result, tile_height=48, columns=9)
    n = len(result.segments)
    # per segment: a 16-pixel title and two lines of 48-pixel tiles (18 tiles, 9 per line), 3-pixel gaps
    assert figure.shape == (n * (16 + 2 * (48 + 3) + 3) + 3, max(9 * (64 + 3) + 3, 420), 3)
    path = save_activation_figure(result, str(tmp_path / "maps.png"), tile_height=48)
    assert Image.open(path).size == (figure.shape[1], figure.shape[0])


def test_bad_inputs(model, image):
    with pytest.raises(ValueError, match="uint8 RGB"):
        compute_activation_maps(model, image.astype(np.float32))
    with pytest.raises(ValueError, match="max_segments"):
        compute_activation_maps(model, image, max_segments=0)
