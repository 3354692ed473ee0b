"""Dataset-scale inference (tools/infer.py = mask_adapter.apps.infer) on the tiny random model.

Inputs: the bundled photo, generated images and a damaged file. Checked: the per-image files, the COCO files
(pycocotools ``loadRes``; detectron2's ``COCOPanopticEvaluator`` on ``panoptic.json`` + ``panoptic/``), agreement
with the Python API (``Segmenter``), resume after a SIGKILL and a 2-process run, both byte-equal to one
uninterrupted run.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask_adapter.api.images import bundled_image
from mask_adapter.api.segmenter import encode_rle
from mask_adapter.apps.infer import EXIT_SOME_FAILED, collect_inputs, main, panoptic_from_segments

VOCAB = "cat;dog,puppy;sky;person;table"


def make_inputs(folder: Path, n: int = 20, bad: bool = True) -> Path:
    """The bundled photo, ``n`` generated images (flat colour regions + noise, 48-96 px) and a damaged file."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(bundled_image()).save(folder / "voc_example.jpg", quality=95)
    rng = np.random.RandomState(0)
    for i in range(n):
        h, w = rng.randint(48, 97, size=2)
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = rng.randint(0, 256, 3)
        y, x = rng.randint(0, h // 2), rng.randint(0, w // 2)
        img[y : y + h // 2, x : x + w // 2] = rng.randint(0, 256, 3)
        img = np.clip(img.astype(int) + rng.randint(-15, 16, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"gen_{i:02d}.png")
    if bad:
        (folder / "damaged.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def run_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--input", str(inp), "--output", str(out), "--vocabulary", VOCAB, "--stuff", "sky;table", "--task", "semantic",
        "--num-workers", "1", "--threads", "1", "--quiet", *extra,
    ]  # fmt: skip


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_collect_inputs(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for rel in ("a/x.png", "a/sub/x.png", "b.jpg", "c/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / rel)
    (tmp_path / "list.txt").write_text("# images\nb.jpg\n\nc/x.jpg\n")
    (tmp_path / "coco.json").write_text(json.dumps({"images": [{"id": 7, "file_name": "c/x.jpg"}]}))
    items = collect_inputs([str(tmp_path / "a"), str(tmp_path / "list.txt"), str(tmp_path / "*.jpg")])
    assert [(Path(i.path).relative_to(tmp_path).as_posix(), i.key, i.image_id) for i in items] == [
        ("a/sub/x.png", "sub__x", 1),
        ("a/x.png", "x", 2),
        ("b.jpg", "b", 3),  # listed once although the glob matches it again
        ("c/x.jpg", "x_2", 4),
    ]
    coco = collect_inputs([str(tmp_path / "coco.json"), str(tmp_path / "b.jpg")])
    assert [(i.key, i.image_id) for i in coco] == [("x", 7), ("b", 1)]
    with pytest.raises(FileNotFoundError, match="no such file, folder or matching pattern"):
        collect_inputs([str(tmp_path / "nothing*.png")])
    (tmp_path / "bad.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="has no 'images' list"):
        collect_inputs([str(tmp_path / "bad.json")])


def test_panoptic_from_overlapping_segments():
    a = np.zeros((4, 5), bool)
    a[:2, :3] = True
    b = np.zeros((4, 5), bool)
    b[1:4, 1:5] = True
    segments = [
        {"id": 1, "category_id": 0, "segmentation": encode_rle(a)},  # first = kept where they overlap
        {"id": 2, "category_id": 3, "segmentation": encode_rle(b)},
        {"id": 3, "category_id": 1, "segmentation": encode_rle(a & b)},  # fully covered: dropped
    ]
    rgb, info = panoptic_from_segments(segments, (4, 5))
    ids = rgb[..., 0].astype(int) + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert (ids[a] == 1).all() and (ids[b & ~a] == 2).all() and (ids[~(a | b)] == 0).all()
    assert [(s["id"], s["category_id"], s["area"], s["bbox"]) for s in info] == [
        (1, 1, 6, [0, 0, 3, 2]),
        (2, 4, 12 - 2 - 0, [1, 1, 4, 3]),
    ]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One run over the photo, 4 generated images and a damaged file."""
    tmp = tmp_path_factory.mktemp("infer")
    inp = make_inputs(tmp / "in", n=4)
    out = tmp / "out"
    code = main(run_args(inp, out))
    return inp, out, code


def test_run_files_and_exit_code(small_run):
    inp, out, code = small_run
    assert code == EXIT_SOME_FAILED  # the damaged file
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["done"]) == 5 and manifest["pending"] == []
    assert [f["file_name"] for f in manifest["failed"]] == [str(inp / "damaged.jpg")]
    assert "cannot read image" in manifest["failed"][0]["error"]
    photo = bundled_image()
    labels = np.array(Image.open(out / "labels" / "voc_example.png"))
    assert labels.shape == photo.shape[:2] and labels.dtype == np.uint8 and labels.max() < 5
    record = json.loads((out / "segments" / "voc_example.json").read_text())
    assert record["classes"] == {"0": "cat", "1": "dog", "2": "sky", "3": "person", "4": "table"}
    assert sum(s["area"] for s in record["segments"]) == labels.size  # semantic: every pixel in one segment
    for s in record["segments"]:
        assert set(s) >= {"id", "category_id", "class_name", "synonyms", "score", "area", "bbox", "segmentation"}
    assert not list(out.rglob(".*.tmp"))  # no temporary file left


def test_label_maps_equal_the_python_api(small_run):
    from mask_adapter import Segmenter

    inp, out, _ = small_run
    seg = Segmenter.from_pretrained("tiny", tasks=("semantic",))
    for name in ("voc_example.jpg", "gen_02.png"):
        result = seg(str(inp / name), vocabulary=VOCAB, task="semantic")
        saved = np.array(Image.open(out / "labels" / f"{Path(name).stem}.png"))
        np.testing.assert_array_equal(saved, result.label_map)


def test_coco_instance_results_load_with_pycocotools(small_run):
    from pycocotools.coco import COCO

    _, out, _ = small_run
    gt = COCO(str(out / "images.json"))
    dt = gt.loadRes(str(out / "instances_results.json"))
    assert len(dt.getImgIds()) == 5 and len(dt.getAnnIds()) == len(
        json.loads((out / "instances_results.json").read_text())
    )
    assert {c["id"] for c in gt.loadCats(gt.getCatIds())} == {1, 2, 3, 4, 5}


def test_panoptic_files_evaluate_with_detectron2(small_run):
    """The run's panoptic.json + panoptic/ registered as a dataset, and the same files as predictions: PQ 100."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import COCOPanopticEvaluator

    from mask_adapter.data.catalog import register_custom_panoptic

    inp, out, _ = small_run
    name = "infer_run_panoptic"
    register_custom_panoptic(name, "/", str(out / "panoptic.json"), str(out / "panoptic"))
    try:
        evaluator = COCOPanopticEvaluator(name, str(out / "pq"))
        evaluator.reset()
        for r in DatasetCatalog.get(name):
            rgb = np.array(Image.open(r["pan_seg_file_name"])).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            import torch

            segments = [
                {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]} for s in r["segments_info"]
            ]
            evaluator.process(
                [{"file_name": r["file_name"], "image_id": r["image_id"]}],
                [{"panoptic_seg": (torch.as_tensor(ids), segments)}],
            )
        results = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert results["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert results["panoptic_seg"]["PQ_th"] == pytest.approx(100.0) and results["panoptic_seg"]["PQ_st"] == 100.0


def test_batch_activation_maps(tmp_path):
    inp = make_inputs(tmp_path / "in", n=1, bad=False)
    out = tmp_path / "out"
    assert main(run_args(inp, out, "--save-activation-maps")) == 0
    figures = sorted(p.name for p in (out / "activation_maps").iterdir())
    assert figures == ["gen_00.png", "voc_example.png"]
    assert Image.open(out / "activation_maps" / "voc_example.png").size[0] > 500


def test_match_synonyms(tmp_path):
    inp = make_inputs(tmp_path / "in", n=2, bad=False)
    out = tmp_path / "out"
    args = run_args(inp, out, "--match-synonyms")
    args[args.index("--vocabulary") + 1] = "cat,kitten,kitty;dog,puppy;sky;table;person"
    assert main(args) == 0
    seen = 0
    for f in (out / "segments").glob("*.json"):
        for s in json.loads(f.read_text())["segments"]:
            assert s["synonym"] in s["synonyms"]
            seen += 1
    assert seen > 0


def test_winning_synonym_does_not_depend_on_the_order_of_synonyms():
    """The answer is a property of the mask and the names: listing a class's synonyms in another order (which moves
    every text row's column) must give the same synonym for every segment."""
    from mask_adapter.analysis.synonyms import winning_synonyms
    from tests._builders import tiny_model

    image = bundled_image()[::4, ::4].copy()
    masks = np.zeros((3, *image.shape[:2]), bool)
    masks[0, :40] = True
    masks[1, 40:] = True
    masks[2, :, :60] = True
    answers = []
    for vocab in (["cat,kitten,kitty", "sky,heaven,clouds"], ["kitty,cat,kitten", "clouds,sky,heaven"]):
        model = tiny_model(classes=vocab, thing_ids=[0])
        answers.append(winning_synonyms(model, image, masks, [0, 1, 1]))
    assert answers[0] == answers[1]
    assert answers[0][0] in ("cat", "kitten", "kitty") and {answers[0][1], answers[0][2]} <= {"sky", "heaven", "clouds"}
    with pytest.raises(ValueError, match="3 masks but 1 class ids"):
        winning_synonyms(model, image, masks, [0])


def test_bad_options_fail_before_any_model_is_built(tmp_path, monkeypatch):
    import mask_adapter.apps.infer as infer

    def no_model(*a, **k):
        raise AssertionError("the model was built")

    monkeypatch.setattr(infer, "_build_segmenter", no_model)
    inp = make_inputs(tmp_path / "in", n=1, bad=False)
    args = run_args(inp, tmp_path / "out")
    args[args.index("--stuff") + 1] = "sky;ocean"
    with pytest.raises(ValueError, match="--stuff names ocean, not classes of the vocabulary"):
        main(args)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is an existing file; give a folder"):
        main(run_args(inp, tmp_path / "file"))
    with pytest.raises(FileNotFoundError, match="no such file, folder or matching pattern"):
        main(run_args(tmp_path / "missing", tmp_path / "out2"))


def test_resume_refuses_other_settings_and_fresh_run_refuses_old_folder(small_run):
    inp, out, _ = small_run
    with pytest.raises(ValueError, match="pass --resume"):
        main(run_args(inp, out))
    args = run_args(inp, out, "--resume")
    args[args.index("--vocabulary") + 1] = "cat;dog;sky;table"
    with pytest.raises(ValueError, match="used other settings \\(vocabulary\\)"):
        main(args)


def _infer_process(inp: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mask_adapter.apps.infer", *run_args(inp, out, *extra)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )


@pytest.mark.slow  # three runs over 21 images
def test_killed_run_resumed_and_two_processes_equal_one_uninterrupted_run(tmp_path):
    inp = make_inputs(tmp_path / "in", n=20, bad=False)
    full = tmp_path / "full"
    assert main(run_args(inp, full)) == 0
    expected = tree(full)
    assert sum(1 for k in expected if k.startswith("labels/")) == 21

    killed = tmp_path / "killed"
    proc = _infer_process(inp, killed)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((killed / "segments").glob("*.json"))) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((killed / "segments").glob("*.json")))
    assert 5 <= done_before < 21
    assert not (killed / "manifest.json").exists()
    assert main(run_args(inp, killed, "--resume")) == 0
    assert tree(killed) == expected  # byte-equal label maps, panoptic PNGs, per-image and run-level JSONs

    two = tmp_path / "two"
    assert main(run_args(inp, two, "--num-processes", "2")) == 0
    assert tree(two) == expected


@pytest.mark.slow  # runs the model on 5 images twice
def test_benchmark_infer_mode_reports_images_per_second(capsys):
    from mask_adapter.apps.infer_benchmark import run_infer_benchmark

    ns = argparse.Namespace(
        weights="tiny", config_file=None, images=4, size=(48, 64), workers=[1], task="semantic", repeats=1, quick=True
    )
    rows = run_infer_benchmark(ns)
    assert [(r["mode"], r["workers"], r["images"]) for r in rows] == [
        ("plain loop (Segmenter)", 0, 5),
        ("tools/infer.py", 1, 5),
    ]
    assert all(r["images/s"] == pytest.approx(5 / r["seconds"]) for r in rows)
    assert "images/s" in capsys.readouterr().out
