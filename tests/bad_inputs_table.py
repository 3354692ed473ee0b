"""The bad-input battery: one row per input a user may give, what they see, and the exit code.

This table is the single source of ``tests/test_bad_inputs.py`` (one parametrised case per row) and of the table
in ``docs/reliability.md`` (written by ``python -m tests.make_reliability_doc``; a test checks the committed file).

A row (:class:`Case`):
- ``surface``: the entry point, ``demo`` (``demo/demo.py``), ``train_net`` (``train_net.py``), ``evaluate``
  (``tools/evaluate_benchmarks.py``), ``prepare`` (``datasets/prepare_*.py``), ``app`` (the web app's Python
  handler ``DemoApp.segment``, what the page calls);
- ``make(ctx)``: writes the input files under ``ctx.tmp`` and returns the command-line arguments; for ``app`` rows
  the four arguments of ``segment`` (image path or None, vocabulary, task, mask source), with ``DemoApp``
  keyword arguments in ``ctx.shared["app_kwargs"]`` (default: the tiny random model); the runner puts the
  ``SegmentResult`` into ``ctx.shared["app_result"]`` for ``check``;
- ``error``: for a rejected input, a regular expression that the ONE ``error: ...`` line on stderr must match
  (searched in the text after ``error: ``); the run must also print no traceback and exit with ``exit_code``;
- ``result``: for an accepted input, what is checked, and ``check(ctx, stderr)`` which asserts it;
- ``patch(ctx, monkeypatch)``: optional fault injection (a full disk, a model that raises on one image ...);
- ``subprocess``: run the real program in a fresh process (the traceback check of a real command line, peak RSS);
  environment variables for it may be put into ``ctx.shared["env"]`` by ``make``;
- ``traceback``: the row passes ``--debug``: the run must show the full traceback instead of the one line;
- ``umask``: the process umask during the run (permission rows; restored afterwards);
- ``disk``: tmpfs mount options (e.g. ``size=16k`` for a full disk, ``size=64k,ro`` for a read-only one): the
  runner mounts a small tmpfs at ``ctx.disk`` for the row and unmounts it afterwards; such rows need root (CI runs
  as root) and are skipped with the reason otherwise.

Files are small: images of a few dozen pixels (the 8000x6000 one is a flat-colour JPEG of ~100 kB).
"""

import errno
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny" / "fcclip_tiny.yaml")
WARMUP = str(REPO / "configs" / "tiny" / "warmup_tiny.yaml")
SURFACES = {
    "demo": "demo/demo.py",
    "train_net": "train_net.py",
    "evaluate": "tools/evaluate_benchmarks.py",
    "prepare": "datasets/prepare_*.py",
    "app": "demo/app.py DemoApp.segment",
    "convert": "tools/convert_checkpoint.py",
    "export": "tools/export.py",
}
# Peak resident memory allowed for the 8000x6000 photo (tiny model, scaled to 2048x1536). Without the scaling the
# tiny model needed ~14.8 GB for it; with it the process stays near its start-up size (~1 GB measured).
LARGE_IMAGE_MAX_RSS_MB = 3000


@dataclass
class Context:
    """What a row's functions get: its temporary folder, and shared prepared data (made on first use)."""

    tmp: Path
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def disk(self) -> Path:
        """Where the rows with ``disk`` get their small tmpfs (mounted by the runner)."""
        return self.tmp / "disk"


@dataclass(frozen=True)
class Case:
    id: str
    surface: str
    input: str
    make: Callable[[Context], list[str]]
    error: str = ""
    exit_code: int = 1
    result: str = ""
    check: Callable[[Context, str], None] | None = None
    patch: Callable[[Context, Any], None] | None = None
    subprocess: bool = False
    traceback: bool = False
    umask: int | None = None
    disk: str = ""

    def __post_init__(self) -> None:
        if self.surface not in SURFACES:
            raise ValueError(f"row {self.id}: unknown surface {self.surface!r}; use one of {', '.join(SURFACES)}")
        if bool(self.error) + bool(self.result) + self.traceback != 1:
            raise ValueError(f"row {self.id}: give one of error (rejected input), result (accepted input), traceback")
        if self.result and (self.check is None or self.exit_code != 0):
            raise ValueError(f"row {self.id}: an accepted input needs check() and exit_code 0")
        if self.surface == "app" and (self.subprocess or self.traceback):
            raise ValueError(f"row {self.id}: app rows run in-process (the handler has no command line)")


# ---------------------------------------------------------------------------------------------------- inputs
def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def _image(ctx: Context, name: str, make_image: Callable[[], Image.Image], **save: Any) -> str:
    path = ctx.tmp / name
    img = make_image()
    img.save(path, **({"exif": img.info["exif"]} if "exif" in img.info else {}), **save)
    return str(path)


def _demo(ctx: Context, *extra: str, inputs: tuple[str, ...] = (), vocabulary: str = "cat;dog;grass") -> list[str]:
    args = ["--output", str(ctx.out), "--save-label-map"]
    if inputs:
        args += ["--input", *inputs]
    if vocabulary:
        args += ["--vocabulary", vocabulary]
    return args + list(extra)


def _demo_on(name: str, make_image: Callable[[], Image.Image], **save: Any) -> Callable[[Context], list[str]]:
    return lambda ctx: _demo(ctx, inputs=(_image(ctx, name, make_image, **save),))


def _exif_rotated() -> Image.Image:
    img = Image.fromarray(_rgb(24, 40))  # stored 40 wide x 24 high; orientation 6 = shown rotated by 90 degrees
    exif = img.getexif()
    exif[0x0112] = 6
    img.info["exif"] = exif.tobytes()
    return img


def _truncated_jpeg(ctx: Context) -> str:
    full = ctx.tmp / "full.jpg"
    Image.fromarray(_rgb(64, 64)).save(full, quality=95)
    data = full.read_bytes()
    full.unlink()
    path = ctx.tmp / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _write(ctx: Context, name: str, data: bytes) -> str:
    path = ctx.tmp / name
    path.write_bytes(data)
    return str(path)


def _random_bytes(ctx: Context, name: str = "random.pth") -> str:
    return _write(ctx, name, np.random.RandomState(0).randint(0, 256, 4096).astype(np.uint8).tobytes())


def _truncated_checkpoint(ctx: Context) -> str:
    import torch

    full = ctx.tmp / "full.pth"
    torch.save({"model": {"w": torch.zeros(4096)}}, full)
    return _write(ctx, "truncated.pth", full.read_bytes()[: full.stat().st_size // 2])


class _WritesMarker:
    """Unpickling this object calls open(marker, "w"): proof that the file's code ran if the marker exists."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _code_checkpoint(ctx: Context, suffix: str) -> str:
    import torch

    path = ctx.tmp / f"runs_code{suffix}"
    payload = {"model": {"w": torch.zeros(2)}, "extra": _WritesMarker(str(ctx.tmp / "MARKER"))}
    if suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump({"model": {"w": np.zeros(2)}, "extra": _WritesMarker(str(ctx.tmp / "MARKER"))}, f)
    else:
        torch.save(payload, path)
    return str(path)


def _other_architecture_checkpoint(ctx: Context) -> str:
    """The tiny FC-CLIP with 6 instead of 10 queries (as a 250- vs 100-query checkpoint would be)."""
    import torch
    from detectron2.modeling import build_model

    from mask_adapter.config import build_config

    cfg = build_config(TINY, ["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "6"])
    path = ctx.tmp / "six_queries.pth"
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return str(path)


def _typo_yaml(ctx: Context) -> str:
    path = ctx.tmp / "typo.yaml"
    path.write_text(f"_BASE_: {TINY}\nMODEL:\n  MASK_ADAPTER:\n    NUM_GT_MASK: 3\n")
    return str(path)


def _no_space(ctx: Context, monkeypatch: Any) -> None:
    """A full disk: every flush to disk of an output fails with ENOSPC."""
    from mask_adapter.utils import atomic

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)


# ---------------------------------------------------------------------------------------------------- checks
def _labels(ctx: Context, stem: str) -> np.ndarray:
    return np.array(Image.open(ctx.out / f"{stem}_labels.png"))


def _check_image(stem: str, size_hw: tuple[int, int], classes: int = 3) -> Callable[[Context, str], None]:
    def check(ctx: Context, stderr: str) -> None:
        overlay = Image.open(ctx.out / f"{stem}_semantic.png")
        assert overlay.mode == "RGB" and overlay.size == (size_hw[1], size_hw[0]), overlay
        labels = _labels(ctx, stem)
        assert labels.shape == size_hw, labels.shape
        assert set(np.unique(labels).tolist()) <= set(range(classes)), np.unique(labels)
        assert sorted(p.name for p in ctx.out.iterdir()) == sorted(
            [f"{stem}_semantic.png", f"{stem}_labels.png", f"{stem}_labels.json"]
        ), "the demo writes only the documented files"

    return check


def _check_vocabulary(expected_names: Callable[[], list[str]], dtype: Any) -> Callable[[Context, str], None]:
    def check(ctx: Context, stderr: str) -> None:
        import json

        meta = json.loads((ctx.out / "in_labels.json").read_text(encoding="utf-8"))
        names = expected_names()
        assert [meta["classes"][str(i)] for i in range(len(names))] == names
        labels = _labels(ctx, "in")
        assert labels.dtype == dtype and labels.shape == (20, 24)
        assert int(labels.max()) < len(names)

    return check


def _check_nothing_written(ctx: Context, stderr: str) -> None:
    left = sorted(p.name for p in ctx.out.rglob("*")) if ctx.out.exists() else []
    assert left == [], f"partial files left behind: {left}"


def _check_marker_absent(ctx: Context, stderr: str) -> None:
    assert not (ctx.tmp / "MARKER").exists(), "the checkpoint's code ran"


def _check_lists_tensors(ctx: Context, stderr: str) -> None:
    assert re.search(r"sem_seg_head\.predictor\.query_\w+\.weight: checkpoint \(6, \d+\) vs model \(10, \d+\)", stderr)


def _check_large(ctx: Context, stderr: str) -> None:
    _check_image("large", (1536, 2048))(ctx, stderr)
    assert re.search(r"image .*large\.jpg is 8000x6000: processed at 2048x1536", stderr), stderr[-2000:]
    rss = [int(m) for m in re.findall(r"MAX_RSS_KB (\d+)", stderr)]
    assert rss and rss[-1] / 1024 < LARGE_IMAGE_MAX_RSS_MB, f"peak RSS {rss[-1] / 1024:.0f} MB"


def _check_unlabeled_image(ctx: Context, stderr: str) -> None:
    import json

    saved = json.loads((ctx.out / "benchmarks.json").read_text())["benchmarks"]["PAS-20"]
    assert saved["status"] == "ok" and saved["images"] == 1, saved
    assert re.search(r"1 of 2 images have no label file .*2007_000003\.jpg has no .*2007_000003\.png", stderr)


def _check_skipped_image(ctx: Context, stderr: str) -> None:
    import json

    saved = json.loads((ctx.out / "benchmarks.json").read_text())["benchmarks"]["PAS-20"]
    assert saved["status"] == "ok", saved
    assert len(saved["failed_images"]) == 1 and "2007_000002.jpg (RuntimeError: " in saved["failed_images"][0]
    assert re.search(r"1 images failed and were left out of the metrics: .*2007_000002\.jpg", stderr)


# ---------------------------------------------------------------------------------------------------- evaluation
def _voc_root(ctx: Context, unlabeled: bool = False) -> Path:
    """A prepared PAS-20 under ctx.tmp (the real preparation script on a tiny raw VOC copy), registered."""
    import shutil

    from mask_adapter.data.catalog import register_all
    from tests._raw_datasets import script, voc_inputs

    root = ctx.tmp / "d2"
    voc_inputs(root)
    script("prepare_pascal_voc_sem_seg").main(["--root", str(root)])
    if unlabeled:
        images = root / "pascal_voc_d2" / "images" / "validation"
        shutil.copy(images / "2007_000002.jpg", images / "2007_000003.jpg")
    register_all(str(root), overwrite=True)
    return root


def _evaluate(ctx: Context, *extra: str, unlabeled: bool = False) -> list[str]:
    _voc_root(ctx, unlabeled)
    return ["--config-file", TINY, "--benchmarks", "PAS-20", "--output", str(ctx.out), *extra,
            "OUTPUT_DIR", str(ctx.tmp / "run")]  # fmt: skip


def _missing_root(ctx: Context) -> list[str]:
    from mask_adapter.data.catalog import register_all

    register_all(str(ctx.tmp / "no_datasets_here"), overwrite=True)
    return ["--config-file", TINY, "--benchmarks", "PAS-20", "--output", str(ctx.out)]


def _model_raises_on(file_stem: str) -> Callable[[Context, Any], None]:
    def patch(ctx: Context, monkeypatch: Any) -> None:
        from mask_adapter.modeling.meta_arch.base import OpenVocabMaskFormer

        original = OpenVocabMaskFormer.forward

        def forward(self, batched_inputs):
            if not self.training and any(file_stem in x.get("file_name", "") for x in batched_inputs):
                raise RuntimeError("simulated failure of this image's prediction")
            return original(self, batched_inputs)

        monkeypatch.setattr(OpenVocabMaskFormer, "forward", forward)

    return patch


def _model_wrong_size(ctx: Context, monkeypatch: Any) -> None:
    from mask_adapter.modeling.meta_arch.base import OpenVocabMaskFormer

    original = OpenVocabMaskFormer.forward

    def forward(self, batched_inputs):
        outputs = original(self, batched_inputs)
        if not self.training:
            for out in outputs:
                out["sem_seg"] = out["sem_seg"][:, :-1, :]  # one row short of the image
        return outputs

    monkeypatch.setattr(OpenVocabMaskFormer, "forward", forward)


# ---------------------------------------------------------------------------------------------------- training
def _synthetic(ctx: Context) -> None:
    """The synthetic shapes dataset (2 tiny images per split) registered under ctx.tmp."""
    from mask_adapter.data.catalog import register_all
    from mask_adapter.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(str(ctx.tmp / "d2"), n_train=2, n_val=1, size=(64, 80), seed=0)
    register_all(str(ctx.tmp / "d2"), overwrite=True)


def _train(ctx: Context, *opts: str, config: str = WARMUP, eval_only: bool = False, resume: bool = False,
           out: Path | None = None) -> list[str]:  # fmt: skip
    _synthetic(ctx)
    return ["--config-file", config, *(["--eval-only"] if eval_only else []), *(["--resume"] if resume else []),
            "OUTPUT_DIR", str(out or ctx.out), "SOLVER.MAX_ITER", "1", *opts]  # fmt: skip


def _nan_loss(ctx: Context, monkeypatch: Any) -> None:
    from mask_adapter.modeling.meta_arch.warmup import MaskAdapterWarmup

    original = MaskAdapterWarmup.losses

    def nan(self, *args, **kwargs):
        return {k: v * float("nan") for k, v in original(self, *args, **kwargs).items()}

    monkeypatch.setattr(MaskAdapterWarmup, "losses", nan)


def _truncated_last_checkpoint(ctx: Context, earlier: bool) -> list[str]:
    """OUTPUT_DIR as a run killed while writing model_final.pth would leave it without atomic writes: the tagged
    checkpoint cut in half, and (``earlier``) a complete checkpoint of an earlier iteration."""
    import torch

    ctx.out.mkdir()
    torch.save({"model": {"w": torch.zeros(256)}, "iteration": 0}, ctx.out / "model_0000000.pth")
    full = (ctx.out / "model_0000000.pth").read_bytes()
    (ctx.out / "model_final.pth").write_bytes(full[: len(full) // 2])
    if not earlier:
        (ctx.out / "model_0000000.pth").unlink()
    (ctx.out / "last_checkpoint").write_text("model_final.pth")
    return _train(ctx, "SOLVER.MAX_ITER", "3", resume=True)


def _check_modes(mode: int, *names: str, folder: Callable[[Context], Path] = lambda c: c.out):
    """Each output file ``names`` (glob patterns under ``folder``) exists with permission bits ``mode``."""

    def check(ctx: Context, stderr: str) -> None:
        for pattern in names:
            found = sorted(folder(ctx).glob(pattern))
            assert found, f"no output {pattern} in {folder(ctx)}"
            for path in found:
                assert path.stat().st_mode & 0o777 == mode, f"{path.name}: {oct(path.stat().st_mode & 0o777)}"

    return check


def _check_no_checkpoint_left(ctx: Context, stderr: str) -> None:
    out = ctx.disk / "out"
    left = sorted(p.name for p in out.iterdir() if p.suffix in (".pth", ".tmp") or p.name.startswith("."))
    assert left == [], f"partial checkpoint files left behind: {left}"
    assert not (out / "last_checkpoint").exists(), "last_checkpoint names a checkpoint that was not written"


def _collide(ctx: Context) -> list[str]:
    """a.jpg, a.png and a_1.jpg in one folder: their stems collide (a, a) or used to collide with a renamed one."""
    folder = ctx.tmp / "photos"
    folder.mkdir()
    for i, name in enumerate(("a.jpg", "a.png", "a_1.jpg")):
        Image.fromarray(_rgb(20, 24, seed=i)).save(folder / name)
    return _demo(ctx, inputs=(str(folder),))


def _check_collide(ctx: Context, stderr: str) -> None:
    from mask_adapter.apps.demo import output_stems

    names = sorted(p.name for p in ctx.out.iterdir())
    stems = ["a_jpg", "a_png", "a_1"]
    assert names == sorted(f"{s}{end}" for s in stems for end in ("_semantic.png", "_labels.png", "_labels.json"))
    paths = [str(ctx.tmp / "photos" / n) for n in ("a.jpg", "a.png", "a_1.jpg")]
    assert output_stems(paths) == stems and output_stems(paths[::-1]) == stems[::-1], "names depend on the order"


def _fifo_and_image(ctx: Context, with_image: bool) -> list[str]:
    fifo = ctx.tmp / "pipe.png"
    os.mkfifo(fifo)
    inputs = (str(fifo), _image(ctx, "in.png", lambda: Image.fromarray(_rgb(20, 24)))) if with_image else (str(fifo),)
    return _demo(ctx, inputs=inputs)


def _check_fifo_skipped(ctx: Context, stderr: str) -> None:
    _check_image("in", (20, 24))(ctx, stderr)
    assert re.search(r"input .*pipe\.png is not a regular file \(a FIFO, device or socket\); skipped", stderr)


def _narrow(ctx: Context) -> list[str]:
    thin = _image(ctx, "thin.png", lambda: Image.fromarray(_rgb(1, 50000)))
    strip = _image(ctx, "strip.png", lambda: Image.fromarray(_rgb(3, 1000)))
    good = _image(ctx, "good.png", lambda: Image.fromarray(_rgb(20, 24)))
    return _demo(ctx, inputs=(thin, strip, good))


def _check_narrow(ctx: Context, stderr: str) -> None:
    for stem, size in (("thin", (1, 2048)), ("strip", (3, 1000)), ("good", (20, 24))):
        labels = _labels(ctx, stem)
        assert labels.shape == size and int(labels.max()) < 3, (stem, labels.shape)
        assert Image.open(ctx.out / f"{stem}_semantic.png").size == size[::-1]


def _vocabulary_lines(ctx: Context, lines: str) -> str:
    path = ctx.tmp / "vocab.txt"
    path.write_text(lines, encoding="utf-8")
    return str(path)


def _sparse_ids_run(ctx: Context) -> list[str]:
    image = _image(ctx, "in.png", lambda: Image.fromarray(_rgb(20, 24)))
    vocab = _vocabulary_lines(ctx, "5:cat\n9:dog\n")
    return _demo(ctx, "--vocabulary-file", vocab, inputs=(image,), vocabulary="")


def _check_sparse_ids(ctx: Context, stderr: str) -> None:
    import json

    meta = json.loads((ctx.out / "in_labels.json").read_text(encoding="utf-8"))
    assert meta["classes"] == {"5": "cat", "9": "dog"} and meta["void"] == 255, meta
    values = set(np.unique(_labels(ctx, "in")).tolist())
    assert values and values <= {5, 9, 255}, values


def _word_and_file(ctx: Context, monkeypatch: Any) -> None:
    """The working folder holds a file named like the inline class (``cat``) and a classes.txt."""
    (ctx.tmp / "cat").write_text("0:not a class of this run\n")
    (ctx.tmp / "classes.txt").write_text("0:cat\n1:dog\n")
    monkeypatch.chdir(ctx.tmp)


def _demo_umask(ctx: Context) -> list[str]:
    return _demo(ctx, inputs=(_image(ctx, "in.png", lambda: Image.fromarray(_rgb(20, 24))),))


def _prepared_labels(ctx: Context) -> Path:
    return ctx.tmp / "d2" / "ADEChallengeData2016" / "annotations_detectron2" / "validation"


def _video(ctx: Context, damaged: bool = False, out: Path | None = None) -> list[str]:
    """A 6-frame 64x48 mp4 of seeded noise (``damaged``: its frame data zeroed: it opens but no frame decodes)."""
    import cv2

    path = ctx.tmp / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(6):
        writer.write(_rgb(48, 64, seed=i))
    writer.release()
    if damaged:
        data = bytearray(path.read_bytes())
        start = data.find(b"mdat") + 4
        data[start : start + (len(data) - start) // 2] = bytes((len(data) - start) // 2)
        path.write_bytes(bytes(data))
    return ["--video-input", str(path), "--output", str(out or ctx.out), "--vocabulary", "cat;dog"]


def _check_video(ctx: Context, stderr: str) -> None:
    import cv2

    assert sorted(p.name for p in ctx.out.iterdir()) == ["clip_semantic.mp4"]
    capture = cv2.VideoCapture(str(ctx.out / "clip_semantic.mp4"))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    assert (ctx.out / "clip_semantic.mp4").stat().st_mode & 0o777 == 0o644


def _check_no_video_left(ctx: Context, stderr: str) -> None:
    for folder in (ctx.out, ctx.disk / "out"):
        left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        assert left == [], f"files left behind: {left}"


def _training_checkpoint(ctx: Context, name: str = "trained.pth") -> Path:
    """A checkpoint as train_net.py writes it: weights (400 kB) plus trainer state and iteration."""
    import torch

    path = ctx.tmp / name
    weights = {"sem_seg_head.w": torch.arange(100000, dtype=torch.float32)}
    torch.save({"model": weights, "iteration": 5, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def _convert_same_file(ctx: Context) -> list[str]:
    path = _training_checkpoint(ctx)
    ctx.shared["before"] = path.read_bytes()
    return [str(path), str(path)]


def _check_unchanged(ctx: Context, stderr: str) -> None:
    assert (ctx.tmp / "trained.pth").read_bytes() == ctx.shared["before"], "the input checkpoint was changed"


def _check_disk_empty(ctx: Context, stderr: str) -> None:
    left = sorted(p.name for p in ctx.disk.rglob("*"))
    assert left == [], f"files left behind: {left}"


def _tiny_state(ctx: Context, name: str, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """The tiny model's weights, changed by ``edit``, saved as a detectron2 checkpoint ``name``."""
    import torch
    from detectron2.modeling import build_model

    from mask_adapter.config import build_config

    torch.manual_seed(0)
    state = dict(build_model(build_config(TINY, [])).state_dict())
    path = ctx.tmp / name
    torch.save({"model": edit(state)}, path)
    return str(path)


def _nan_weights(state: dict[str, Any]) -> dict[str, Any]:
    key = "sem_seg_head.predictor.class_embed.layers.0.weight"
    state[key] = state[key] * float("nan")
    return state


def _half_weights(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith("sem_seg_head.")}


def _check_partial_summary(ctx: Context, stderr: str) -> None:
    _check_image("in", (20, 24), classes=3)(ctx, stderr)
    summary = [line for line in stderr.splitlines() if "model tensors are not in" in line]
    assert summary and len(set(summary)) == 1, stderr[-3000:]  # (the runner sees it on stderr and in the log)
    assert re.search(r"\d+ of \d+ model tensors are not in .*half\.pth and keep their initial values: "
                     r"sem_seg_head\.\w+\.\* \(\d+\)", summary[0]), summary[0]  # fmt: skip
    assert len(stderr.splitlines()) < 40, "one line per missing tensor"


def _bomb_png(ctx: Context) -> str:
    """A PNG whose header says 20000x20000 (400 Mpixel) with almost no data: what a decompression bomb looks like
    to the reader (Pillow refuses such sizes before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)  # 8-bit grayscale
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 20001))
        + chunk(b"IEND", b"")
    )
    return _write(ctx, "bomb.png", data)


def _upload(ctx: Context) -> list[Any]:
    """An upload as Gradio stores it: a file in a folder of its own under the app's upload folder."""
    folder = ctx.tmp / "app_out" / "uploads" / "3f2a9c"
    folder.mkdir(parents=True)
    Image.fromarray(_rgb(20, 24)).save(folder / "photo.png")
    return _app(ctx, str(folder / "photo.png"), output_dir=str(ctx.tmp / "app_out"))


def _check_upload_gone(ctx: Context, stderr: str) -> None:
    _check_app((20, 24), _CAT_DOG_GRASS)(ctx, stderr)
    uploads = ctx.tmp / "app_out" / "uploads"
    assert not (uploads / "3f2a9c").exists(), "the upload (or its folder) was left on the server"
    again = ctx.shared["app"].segment(str(uploads / "3f2a9c" / "photo.png"), "cat;dog", "semantic", "generator")
    assert np.array(Image.open(again.label_map_path)).shape == (20, 24), "Segment again on the same upload failed"
    ctx.shared["app"].close()
    assert not uploads.exists()


def _train_process_on_disk(ctx: Context) -> list[str]:
    """train_net.py in a fresh process (its exit handlers run too) with OUTPUT_DIR on the row's small tmpfs."""
    argv = _train(ctx, "DATASETS.TEST", "()", out=ctx.disk / "out")
    ctx.shared["env"] = {"DETECTRON2_DATASETS": str(ctx.tmp / "d2")}
    return argv


def _missing_train_root(ctx: Context) -> list[str]:
    from mask_adapter.data.catalog import register_all

    register_all(str(ctx.tmp / "no_datasets_here"), overwrite=True)
    return ["--config-file", WARMUP, "OUTPUT_DIR", str(ctx.out), "SOLVER.MAX_ITER", "1",
            "DATASETS.TRAIN", "('openvocab_ade20k_sem_seg_train',)", "DATASETS.TEST", "()"]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- preparation
def _ade_raw(ctx: Context, corrupt: bool = False, out_of_range: bool = False) -> list[str]:
    from tests._raw_datasets import ade_inputs, save

    root = ctx.tmp / "d2"
    ade = ade_inputs(root)
    ade_inputs(root, "training", "ADE_train_00000001")
    bad = ade / "annotations" / "validation" / "ADE_val_00000001.png"
    if corrupt:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    if out_of_range:
        save(bad, np.full((8, 10), 200, np.uint8))
    return ["--root", str(root)]


def _check_no_prepared_files(ctx: Context, stderr: str) -> None:
    out = ctx.tmp / "d2" / "ADEChallengeData2016" / "annotations_detectron2"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert left == [], f"partial files left behind: {left}"


def _large_jpeg_file(ctx: Context) -> str:
    path = ctx.tmp / "large.jpg"
    Image.new("RGB", (8000, 6000), (90, 140, 200)).save(path, quality=80)
    return str(path)


def _flat_large_jpeg(ctx: Context) -> list[str]:
    return _demo(ctx, inputs=(_large_jpeg_file(ctx),))


# ---------------------------------------------------------------------------------------------------- web app
def _app(ctx: Context, image: str | None, vocabulary: str = "cat;dog;grass", task: str = "semantic",
         masks: str = "generator", **app_kwargs: Any) -> list[Any]:  # fmt: skip
    ctx.shared["app_kwargs"] = app_kwargs
    return [image, vocabulary, task, masks]


def _app_on(name: str, make_image: Callable[[], Image.Image], **kwargs: Any) -> Callable[[Context], list[Any]]:
    return lambda ctx: _app(ctx, _image(ctx, name, make_image), **kwargs)


def _tiny_checkpoint(ctx: Context) -> str:
    """Weights of the tiny model in a file: the app then counts as a real (not random) model."""
    import torch
    from detectron2.modeling import build_model

    from mask_adapter.config import build_config

    path = ctx.tmp / "tiny_fcclip.pth"
    torch.manual_seed(0)
    torch.save({"model": build_model(build_config(TINY, [])).state_dict()}, path)
    return str(path)


def _check_app(size_hw: tuple[int, int], names: list[str], legend: str = "") -> Callable[[Context, str], None]:
    """The overlay and label map have ``size_hw``, ids are classes of ``names`` (all pixels labelled: semantic with
    the generator's masks), the classes JSON lists ``names`` unchanged and the legend contains ``legend``."""

    def check(ctx: Context, stderr: str) -> None:
        import json

        result = ctx.shared["app_result"]
        assert result.overlay.shape == (*size_hw, 3) and result.overlay.dtype == np.uint8, result.overlay.shape
        labels = np.array(Image.open(result.label_map_path))
        assert labels.shape == size_hw and labels.dtype == np.uint8, (labels.shape, labels.dtype)
        assert set(np.unique(labels).tolist()) <= set(range(len(names))), np.unique(labels)
        meta = json.loads(Path(result.classes_path).read_text(encoding="utf-8"))
        assert [meta["classes"][str(i)] for i in range(len(names))] == names and len(meta["classes"]) == len(names)
        assert legend in result.legend, result.legend

    return check


# ---------------------------------------------------------------------------------------------------- the table
_VOCAB_5000 = [f"class {i}" for i in range(5000)]
_LONG_NAME = "a very long class name " * 40  # 920 characters: longer than CLIP's 77-token context
_UNICODE = ["chat noir", "Hund 🐕", "草地", "ciénaga"]
_CAT_DOG_GRASS = ["cat", "dog", "grass"]  # the app rows' default vocabulary
_BOM_VOCAB = ("cat", "chien", "草地")


def _vocabulary_file_run(ctx: Context, encoding: str, names: tuple[str, ...] = _BOM_VOCAB) -> list[str]:
    """The demo on a 20x24 image with ``--vocabulary-file`` of ``names`` (ids 0, 1, ...) saved in ``encoding``."""
    path = ctx.tmp / "vocab.txt"
    path.write_bytes("".join(f"{i}:{n}\r\n" for i, n in enumerate(names)).encode(encoding))
    image = _image(ctx, "in.png", lambda: Image.fromarray(_rgb(20, 24)))
    return _demo(ctx, "--vocabulary-file", str(path), inputs=(image,), vocabulary="")


CASES: tuple[Case, ...] = (
    # --- demo: image files
    Case(
        "missing-image",
        "demo",
        "--input of a file that does not exist",
        lambda c: _demo(c, inputs=(str(c.tmp / "nope.jpg"),)),
        error=r"no input images found in .*nope\.jpg",
    ),
    Case(
        "zero-byte-image",
        "demo",
        "a 0-byte .jpg file",
        lambda c: _demo(c, inputs=(_write(c, "empty.jpg", b""),)),
        error=r"none of the 1 input images could be read",
    ),
    Case(
        "truncated-jpeg",
        "demo",
        "a JPEG cut in half",
        lambda c: _demo(c, inputs=(_truncated_jpeg(c),)),
        error=r"none of the 1 input images could be read",
    ),
    Case(
        "not-an-image",
        "demo",
        "a text file named .png",
        lambda c: _demo(c, inputs=(_write(c, "notes.png", b"not an image"),)),
        error=r"none of the 1 input images could be read",
    ),
    Case(
        "unreadable-folder",
        "demo",
        "a folder whose 2 image files are both unreadable",
        lambda c: (_write(c, "a.png", b"x"), _write(c, "b.jpg", b""), _demo(c, inputs=(str(c.tmp),)))[-1],
        error=r"none of the 2 input images could be read",
    ),
    Case(
        "grayscale",
        "demo",
        "8-bit grayscale PNG 20x24",
        _demo_on("gray.png", lambda: Image.fromarray(_rgb(20, 24)[:, :, 0])),
        exit_code=0,
        result="overlay RGB and label map 20x24",
        check=_check_image("gray", (20, 24)),
    ),
    Case(
        "rgba",
        "demo",
        "RGBA PNG (alpha dropped)",
        _demo_on("rgba.png", lambda: Image.fromarray(np.dstack([_rgb(20, 24), _rgb(20, 24, 1)[:, :, :1]]))),
        exit_code=0,
        result="overlay RGB and label map 20x24",
        check=_check_image("rgba", (20, 24)),
    ),
    Case(
        "palette",
        "demo",
        "palette (P mode) PNG",
        _demo_on("palette.png", lambda: Image.fromarray(_rgb(20, 24)).convert("P")),
        exit_code=0,
        result="overlay RGB and label map 20x24",
        check=_check_image("palette", (20, 24)),
    ),
    Case(
        "16-bit",
        "demo",
        "16-bit grayscale PNG",
        _demo_on("gray16.png", lambda: Image.fromarray(_rgb(20, 24)[:, :, 0].astype(np.uint16) * 257)),
        exit_code=0,
        result="overlay RGB and label map 20x24",
        check=_check_image("gray16", (20, 24)),
    ),
    Case(
        "cmyk-jpeg",
        "demo",
        "CMYK JPEG",
        _demo_on("cmyk.jpg", lambda: Image.fromarray(_rgb(20, 24)).convert("CMYK")),
        exit_code=0,
        result="overlay RGB and label map 20x24",
        check=_check_image("cmyk", (20, 24)),
    ),
    Case(
        "exif-rotated",
        "demo",
        "JPEG stored 40x24 with EXIF orientation 6 (shown 24x40)",
        _demo_on("rotated.jpg", _exif_rotated),
        exit_code=0,
        result="label map follows the rotation: 40 rows x 24 columns",
        check=_check_image("rotated", (40, 24)),
    ),
    Case(
        "1x1",
        "demo",
        "a 1x1 pixel PNG",
        _demo_on("dot.png", lambda: Image.fromarray(_rgb(1, 1))),
        exit_code=0,
        result="overlay and label map 1x1",
        check=_check_image("dot", (1, 1)),
    ),
    Case(
        "8000x6000",
        "demo",
        "8000x6000 JPEG (48 Mpixel)",
        _flat_large_jpeg,
        exit_code=0,
        subprocess=True,
        result=f"one warning line, processed and written at 2048x1536 (--max-size), peak RSS < "
        f"{LARGE_IMAGE_MAX_RSS_MB} MB",
        check=_check_large,
    ),
    # --- demo: vocabularies
    Case(
        "empty-vocabulary",
        "demo",
        "--vocabulary ''",
        lambda c: _demo(c, vocabulary="") + ["--vocabulary", ""],
        error=r"inline vocabulary is empty",
    ),
    Case(
        "duplicate-classes",
        "demo",
        "--vocabulary 'cat;dog;cat'",
        lambda c: _demo(c, vocabulary="cat;dog;cat"),
        error=r"Duplicate class name 'cat' in the inline vocabulary \(classes 1 and 3\); give each class once",
    ),
    Case(
        "unicode-classes",
        "demo",
        "classes with accents, CJK and emoji",
        lambda c: _demo(
            c, inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),), vocabulary=";".join(_UNICODE)
        ),
        exit_code=0,
        result="label JSON lists the names unchanged",
        check=_check_vocabulary(lambda: list(_UNICODE), np.uint8),
    ),
    Case(
        "very-long-class-name",
        "demo",
        "a 920-character class name (beyond CLIP's context)",
        lambda c: _demo(
            c,
            inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),),
            vocabulary=f"cat;{_LONG_NAME.strip()}",
        ),
        exit_code=0,
        result="runs (prompt truncated by the tokenizer); name kept in the label JSON",
        check=_check_vocabulary(lambda: ["cat", _LONG_NAME.strip()], np.uint8),
    ),
    Case(
        "5000-classes",
        "demo",
        "a vocabulary file of 5,000 classes",
        lambda c: (
            (c.tmp / "vocab.txt").write_text("".join(f"{i}:{n}\n" for i, n in enumerate(_VOCAB_5000))),
            _demo(
                c,
                "--vocabulary-file",
                str(c.tmp / "vocab.txt"),
                inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),),
                vocabulary="",
            ),
        )[-1],
        exit_code=0,
        result="uint16 label map with ids < 5000, all names in the JSON",
        check=_check_vocabulary(lambda: list(_VOCAB_5000), np.uint16),
    ),
    Case(
        "vocabulary-utf8-bom",
        "demo",
        "a vocabulary file in UTF-8 with a byte-order mark (as Windows Notepad saves it)",
        lambda c: _vocabulary_file_run(c, "utf-8-sig"),
        exit_code=0,
        result="read as UTF-8: label JSON lists cat, chien, 草地",
        check=_check_vocabulary(lambda: list(_BOM_VOCAB), np.uint8),
    ),
    Case(
        "vocabulary-utf16",
        "demo",
        "a vocabulary file in UTF-16 (with its byte-order mark)",
        lambda c: _vocabulary_file_run(c, "utf-16"),
        exit_code=0,
        result="read as UTF-16: label JSON lists cat, chien, 草地",
        check=_check_vocabulary(lambda: list(_BOM_VOCAB), np.uint8),
    ),
    Case(
        "vocabulary-latin1",
        "demo",
        "a vocabulary file in Latin-1 (not UTF-8, no byte-order mark)",
        lambda c: _vocabulary_file_run(c, "latin-1", names=("cat", "chien", "café")),
        error=r"vocab\.txt is not UTF-8 text: byte 0xe9 at position \d+; save it as UTF-8",
    ),
    Case(
        "inline-word-and-file",
        "demo",
        "--vocabulary cat in a folder that holds a file named cat",
        lambda c: _demo(c, inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),), vocabulary="cat"),
        patch=_word_and_file,
        exit_code=0,
        result="inline: the one class cat (--vocabulary is never read as a file)",
        check=_check_vocabulary(lambda: ["cat"], np.uint8),
    ),
    Case(
        "inline-names-a-file",
        "demo",
        "--vocabulary classes.txt (an existing file given as inline classes)",
        lambda c: _demo(c, vocabulary="classes.txt"),
        patch=_word_and_file,
        error=r"--vocabulary classes\.txt names a file, but --vocabulary takes inline classes .*; pass the file with "
        r"--vocabulary-file$",
    ),
    Case(
        "vocabulary-file-ids",
        "demo",
        "a vocabulary file with ids 5:cat and 9:dog",
        _sparse_ids_run,
        exit_code=0,
        result="the label map holds the file's ids (5, 9; void 255) and the JSON maps 5 -> cat, 9 -> dog",
        check=_check_sparse_ids,
    ),
    Case(
        "label-map-66000-classes",
        "demo",
        "--save-label-map with a vocabulary file of 66,000 classes",
        lambda c: _demo(
            c,
            "--vocabulary-file",
            _vocabulary_lines(c, "".join(f"{i}:class {i}\n" for i in range(66000))),
            inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),),
            vocabulary="",
        ),
        error=r"the vocabulary has 66000 classes, but a label map \(16-bit PNG\) holds at most 65535 \(ids 0-65534, "
        r"65535 = void\)",
        check=_check_nothing_written,
    ),
    # --- demo: config
    Case(
        "missing-config",
        "demo",
        "--config-file that does not exist",
        lambda c: _demo(c, "--config-file", str(c.tmp / "nope.yaml")),
        error=r"config file not found: .*nope\.yaml",
    ),
    Case(
        "opts-key-typo",
        "demo",
        "--opts MODEL.MASK_ADAPTER.NUM_GT_MASK 3 (missing S)",
        lambda c: _demo(c, "--opts", "MODEL.MASK_ADAPTER.NUM_GT_MASK", "3"),
        error=r"unknown config key MODEL\.MASK_ADAPTER\.NUM_GT_MASK \(from the command line\); did you mean "
        r"MODEL\.MASK_ADAPTER\.NUM_GT_MASKS",
    ),
    Case(
        "config-file-key-typo",
        "demo",
        "a YAML file with a misspelled key",
        lambda c: _demo(c, "--config-file", _typo_yaml(c)),
        error=r"unknown config key MODEL\.MASK_ADAPTER\.NUM_GT_MASK \(from .*typo\.yaml\); did you mean",
    ),
    Case(
        "wrong-value-type",
        "demo",
        "--opts MODEL.MASK_ADAPTER.NUM_GT_MASKS many",
        lambda c: _demo(c, "--opts", "MODEL.MASK_ADAPTER.NUM_GT_MASKS", "many"),
        error=r"config key MODEL\.MASK_ADAPTER\.NUM_GT_MASKS \(from the command line\) needs a value of type int "
        r"like its default 4, got 'many'",
    ),
    # --- demo: checkpoints
    Case(
        "missing-checkpoint",
        "demo",
        "--weights of a file that does not exist",
        lambda c: _demo(c, "--weights", str(c.tmp / "nope.pth")),
        error=r"weights file not found: .*nope\.pth",
    ),
    Case(
        "random-bytes-checkpoint",
        "demo",
        "--weights of 4 kB of random bytes",
        lambda c: _demo(c, "--weights", _random_bytes(c)),
        error=r"random\.pth is not a PyTorch/safetensors checkpoint",
    ),
    Case(
        "random-bytes-trusted",
        "demo",
        "the same with --trust-pickle",
        lambda c: _demo(c, "--weights", _random_bytes(c), "--trust-pickle"),
        error=r"random\.pth is not a PyTorch/safetensors checkpoint",
    ),
    Case(
        "empty-checkpoint",
        "demo",
        "--weights of a 0-byte file",
        lambda c: _demo(c, "--weights", _write(c, "empty.pth", b"")),
        error=r"empty\.pth is empty \(0 bytes\)",
    ),
    Case(
        "truncated-checkpoint",
        "demo",
        "--weights of a torch.save file cut in half",
        lambda c: _demo(c, "--weights", _truncated_checkpoint(c)),
        error=r"truncated\.pth is truncated or corrupt .*; download or copy it again",
    ),
    Case(
        "pickle-runs-code",
        "demo",
        "a .pth whose unpickling would create a marker file",
        lambda c: _demo(c, "--weights", _code_checkpoint(c, ".pth")),
        error=r"contains pickled Python objects \(e\.g\. \w+\.open\) .* refused; if you trust the file, pass "
        r"--trust-pickle .*runs code from the file$",
        check=_check_marker_absent,
    ),
    Case(
        "pkl-runs-code",
        "demo",
        "a detectron2-style .pkl whose unpickling would create a marker file",
        lambda c: _demo(c, "--weights", _code_checkpoint(c, ".pkl")),
        error=r"contains pickled Python objects \(e\.g\. \w+\.open\) .* refused",
        check=_check_marker_absent,
    ),
    Case(
        "wrong-architecture",
        "demo",
        "a checkpoint of the tiny model with 6 instead of 10 queries",
        lambda c: _demo(c, "--weights", _other_architecture_checkpoint(c)),
        error=r"\d+ tensors of checkpoint .*six_queries\.pth do not fit the model; .*pass the config file that "
        r"matches MODEL\.WEIGHTS",
        check=_check_lists_tensors,
    ),
    Case(
        "nan-checkpoint",
        "demo",
        "--weights of the tiny model whose class-embedding weights are NaN",
        lambda c: _demo(
            c,
            "--weights",
            _tiny_state(c, "nan.pth", _nan_weights),
            inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),),
        ),  # fmt: skip
        error=r"checkpoint .*nan\.pth: tensor sem_seg_head\.predictor\.class_embed\.layers\.0\.weight holds \d+ NaN "
        r"or infinite values \(of \d+\); the weights are damaged",
        check=_check_nothing_written,
    ),
    Case(
        "empty-state-dict",
        "demo",
        "--weights of a checkpoint whose state dict is empty",
        lambda c: _demo(c, "--weights", _tiny_state(c, "empty_state.pth", lambda s: {})),
        error=r"checkpoint .*empty_state\.pth holds no model tensors \(an empty state dict\); loading it would leave "
        r"every weight random",
    ),
    Case(
        "partial-checkpoint",
        "demo",
        "--weights of a checkpoint without the sem_seg_head tensors",
        lambda c: _demo(
            c,
            "--weights",
            _tiny_state(c, "half.pth", _half_weights),
            inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),),
        ),  # fmt: skip
        exit_code=0,
        result="runs; ONE warning line counts the missing tensors by module (not one line per tensor)",
        check=_check_partial_summary,
    ),
    # --- demo: output folder
    Case(
        "output-under-a-file",
        "demo",
        "--output below an existing regular file",
        lambda c: (_write(c, "file", b"x"), _demo(c)[2:] + ["--output", str(c.tmp / "file" / "out")])[-1],
        error=r"cannot create output folder .*file/out: Not a directory",
    ),
    Case(
        "output-is-a-file",
        "demo",
        "--output naming an existing regular file",
        lambda c: (_write(c, "file", b"x"), _demo(c)[2:] + ["--output", str(c.tmp / "file")])[-1],
        error=r"--output .*file is an existing file; give a folder path",
    ),
    Case(
        "names-collide",
        "demo",
        "a.jpg, a.png and a_1.jpg in one folder (two share the stem a)",
        _collide,
        exit_code=0,
        result="3 result sets a_jpg, a_png, a_1 (names depend on the input set, not the order; a rerun writes the "
        "same names)",
        check=_check_collide,
    ),
    Case(
        "fifo-input",
        "demo",
        "a FIFO (named pipe) among the --input files",
        lambda c: _fifo_and_image(c, with_image=True),
        exit_code=0,
        result="one warning line naming the FIFO (skipped, never opened); the image after it is processed",
        check=_check_fifo_skipped,
    ),
    Case(
        "fifo-only",
        "demo",
        "a FIFO as the only --input",
        lambda c: _fifo_and_image(c, with_image=False),
        error=r"no input images found in .*pipe\.png",
    ),
    Case(
        "narrow-images",
        "demo",
        "images of 1x50000 and 3x1000 pixels, then a normal one",
        _narrow,
        exit_code=0,
        result="all 3 processed (no side resized below 1 pixel): label maps 1x2048 (--max-size), 3x1000, 20x24",
        check=_check_narrow,
    ),
    Case(
        "demo-umask-022",
        "demo",
        "outputs written under umask 022",
        _demo_umask,
        umask=0o022,
        exit_code=0,
        result="overlay, label map PNG and JSON are mode 0644 (as open() makes them)",
        check=_check_modes(0o644, "in_semantic.png", "in_labels.png", "in_labels.json"),
    ),
    Case(
        "demo-umask-027",
        "demo",
        "outputs written under umask 027",
        _demo_umask,
        umask=0o027,
        exit_code=0,
        result="overlay, label map PNG and JSON are mode 0640",
        check=_check_modes(0o640, "in_semantic.png", "in_labels.png", "in_labels.json"),
    ),
    Case(
        "video",
        "demo",
        "--video-input of a 6-frame mp4 (umask 022)",
        lambda c: _video(c),
        umask=0o022,
        exit_code=0,
        result="clip_semantic.mp4 with 6 frames, mode 0644, nothing else in the folder",
        check=_check_video,
    ),
    Case(
        "video-damaged-frames",
        "demo",
        "--video-input of an mp4 that opens but whose frames cannot be decoded",
        lambda c: _video(c, damaged=True),
        error=r"no frame of video .*clip\.mp4.* could be decoded \(damaged or empty\); nothing written",
        check=_check_no_video_left,
    ),
    Case(
        "video-read-only-output",
        "demo",
        "--video-input with --output on a read-only file system",
        lambda c: (c.disk.joinpath("out").exists(), _video(c, out=c.disk))[-1],
        disk="size=64k,ro",
        error=r"cannot write .*/disk/clip_semantic\.mp4: Read-only file system; choose a folder you can write to",
    ),
    Case(
        "video-disk-full",
        "demo",
        "--video-input with --output on a full disk (an 8 kB tmpfs)",
        lambda c: _video(c, out=c.disk / "out"),
        disk="size=8k",
        error=r"cannot write .*/disk/out/clip_semantic\.mp4: No space left on device; free disk space",
        check=_check_no_video_left,
    ),
    Case(
        "read-only-output",
        "demo",
        "--output on a read-only file system",
        lambda c: (
            _demo(c, inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),))[2:]
            + ["--output", str(c.disk)]
        ),
        disk="size=64k,ro",
        error=r"cannot write .*/disk/in_semantic\.png: Read-only file system; choose a folder you can write to",
    ),
    Case(
        "disk-full",
        "demo",
        "the disk fills up while writing the first output (ENOSPC)",
        lambda c: _demo(c, inputs=(_image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))),)),
        error=r"cannot write .*in_semantic\.png: No space left on device; free disk space",
        patch=_no_space,
        check=_check_nothing_written,
    ),
    Case(
        "no-traceback-process",
        "demo",
        "bad input in a fresh process (random-bytes checkpoint)",
        lambda c: _demo(c, "--weights", _random_bytes(c)),
        subprocess=True,
        error=r"random\.pth is not a PyTorch/safetensors checkpoint",
    ),
    Case(
        "debug-traceback",
        "demo",
        "the same with --debug",
        lambda c: _demo(c, "--weights", _random_bytes(c), "--debug"),
        subprocess=True,
        traceback=True,
    ),
    # --- train_net.py
    Case(
        "unregistered-dataset",
        "train_net",
        "DATASETS.TRAIN of a name that is not registered",
        lambda c: _train(c, "DATASETS.TRAIN", "('openvocab_ade20k_sem_seg_trian',)"),
        error=r"dataset 'openvocab_ade20k_sem_seg_trian' \(DATASETS\.TRAIN\) is not registered; did you mean "
        r"openvocab_ade20k_sem_seg_train",
    ),
    Case(
        "missing-dataset-root",
        "train_net",
        "a registered dataset whose files are not under the root",
        _missing_train_root,
        error=r"Dataset 'openvocab_ade20k_sem_seg_train': expected '.*no_datasets_here/ADEChallengeData2016/"
        r"images/training', which does not exist; run `python datasets/prepare_ade20k_sem_seg\.py`",
    ),
    Case(
        "train-missing-config",
        "train_net",
        "--config-file that does not exist",
        lambda c: ["--config-file", str(c.tmp / "nope.yaml")],
        error=r"config file not found: .*nope\.yaml",
    ),
    Case(
        "train-key-typo",
        "train_net",
        "KEY VALUE with a misspelled key",
        lambda c: _train(c, "SOLVER.MAX_ITERS", "3"),
        error=r"unknown config key SOLVER\.MAX_ITERS \(from the command line\); did you mean SOLVER\.MAX_ITER",
    ),
    Case(
        "train-wrong-type",
        "train_net",
        "SOLVER.BASE_LR fast",
        lambda c: _train(c, "SOLVER.BASE_LR", "fast"),
        error=r"config key SOLVER\.BASE_LR \(from the command line\) needs a value of type float",
    ),
    Case(
        "nan-loss",
        "train_net",
        "training whose loss becomes NaN at iteration 0",
        lambda c: _train(c, "SOLVER.MAX_ITER", "2"),
        patch=_nan_loss,
        error=r"Loss became infinite or NaN at iteration=0; lower SOLVER\.BASE_LR",
    ),
    Case(
        "train-missing-weights",
        "train_net",
        "--eval-only with MODEL.WEIGHTS that does not exist",
        lambda c: _train(c, "MODEL.WEIGHTS", str(c.tmp / "nope.pth"), eval_only=True),
        error=r"checkpoint not found: .*nope\.pth; give an existing file",
    ),
    Case(
        "train-corrupt-weights",
        "train_net",
        "--eval-only with MODEL.WEIGHTS of random bytes",
        lambda c: _train(c, "MODEL.WEIGHTS", _random_bytes(c), eval_only=True),
        error=r"is not a PyTorch/safetensors checkpoint",
    ),
    Case(
        "train-ims-per-batch-0",
        "train_net",
        "SOLVER.IMS_PER_BATCH 0",
        lambda c: _train(c, "SOLVER.IMS_PER_BATCH", "0"),
        error=r"SOLVER\.IMS_PER_BATCH is 0: the total batch size must be a positive multiple of the 1 training "
        r"process\(es\); set SOLVER\.IMS_PER_BATCH 2",
        check=_check_nothing_written,
    ),
    Case(
        "train-max-iter-0",
        "train_net",
        "SOLVER.MAX_ITER 0",
        lambda c: _train(c, "SOLVER.MAX_ITER", "0"),
        error=r"SOLVER\.MAX_ITER is 0: training needs at least 1 iteration; set SOLVER\.MAX_ITER to a positive number",
        check=_check_nothing_written,
    ),
    Case(
        "train-resume-truncated",
        "train_net",
        "--resume when the checkpoint last_checkpoint names is truncated (an earlier one is complete)",
        lambda c: _truncated_last_checkpoint(c, earlier=True),
        error=r"cannot resume: the last training checkpoint .*model_final\.pth \(named in .*last_checkpoint\) is "
        r"unusable: it is truncated .*; delete it and resume from the previous complete checkpoint "
        r"model_0000000\.pth: echo model_0000000\.pth > .*last_checkpoint, then run again with --resume$",
    ),
    Case(
        "train-resume-truncated-only",
        "train_net",
        "--resume when the only checkpoint is truncated",
        lambda c: _truncated_last_checkpoint(c, earlier=False),
        error=r"cannot resume: .*model_final\.pth .* is unusable: it is truncated .*; there is no earlier complete "
        r"checkpoint in .*: delete it and .*last_checkpoint to start training over$",
    ),
    Case(
        "train-disk-full-log",
        "train_net",
        "OUTPUT_DIR on a full disk (a 16 kB tmpfs: the log fills it)",
        lambda c: _train(c, "DATASETS.TEST", "()", out=c.disk / "out"),
        disk="size=16k",
        error=r"cannot write (the training log .*/disk/out/log\.txt|to the output folder .*/disk/out "
        r"\(OUTPUT_DIR\)): No space left on device; free disk space",
    ),
    Case(
        "train-disk-full-process",
        "train_net",
        "the same full disk (16 kB tmpfs) in a fresh process",
        _train_process_on_disk,
        subprocess=True,
        disk="size=16k",
        error=r"cannot write (the training log .*/disk/out/log\.txt|to the output folder .*/disk/out "
        r"\(OUTPUT_DIR\)): No space left on device; free disk space",
    ),
    Case(
        "train-disk-full-checkpoint",
        "train_net",
        "OUTPUT_DIR with room for the log but not the checkpoint (a 256 kB tmpfs)",
        lambda c: _train(c, "DATASETS.TEST", "()", out=c.disk / "out"),
        disk="size=256k",
        error=r"cannot write .*/disk/out/model_final\.pth: No space left on device; free disk space",
        check=_check_no_checkpoint_left,
    ),
    Case(
        "train-read-only-output",
        "train_net",
        "OUTPUT_DIR on a read-only file system",
        lambda c: _train(c, "DATASETS.TEST", "()", out=c.disk / "out"),
        disk="size=64k,ro",
        error=r"cannot write to the output folder .*/disk/out \(OUTPUT_DIR\): Read-only file system; choose a folder "
        r"you can write to",
    ),
    Case(
        "train-umask-022",
        "train_net",
        "a 1-iteration training under umask 022",
        lambda c: _train(c, "DATASETS.TEST", "()"),
        umask=0o022,
        exit_code=0,
        result="model_final.pth, last_checkpoint, metrics.json and config.yaml are mode 0644 (as open() makes them)",
        check=_check_modes(0o644, "model_final.pth", "last_checkpoint", "metrics.json", "config.yaml"),
    ),
    Case(
        "train-umask-027",
        "train_net",
        "the same under umask 027",
        lambda c: _train(c, "DATASETS.TEST", "()"),
        umask=0o027,
        exit_code=0,
        result="model_final.pth and last_checkpoint are mode 0640",
        check=_check_modes(0o640, "model_final.pth", "last_checkpoint"),
    ),
    # --- tools/evaluate_benchmarks.py
    Case(
        "eval-missing-root",
        "evaluate",
        "a benchmark whose files are not under the dataset root",
        _missing_root,
        error=r"1 of 1 benchmarks did not run: PAS-20 missing: .*no_datasets_here.*prepare_pascal_voc",
    ),
    Case(
        "eval-missing-label",
        "evaluate",
        "a prepared PAS-20 where one image has no label file",
        lambda c: _evaluate(c, unlabeled=True),
        exit_code=0,
        result="one warning line naming the image and the missing label; evaluated on the 1 labelled image",
        check=_check_unlabeled_image,
    ),
    Case(
        "eval-prediction-raises",
        "evaluate",
        "the model raises on one image",
        lambda c: _evaluate(c),
        patch=_model_raises_on("2007_000002"),
        error=r"PAS-20 failed: ImageEvaluationError: prediction failed on image .*2007_000002\.jpg \(RuntimeError: "
        r"simulated failure.*\); .*--skip-failed-images",
    ),
    Case(
        "eval-skip-failed",
        "evaluate",
        "the same with --skip-failed-images",
        lambda c: _evaluate(c, "--skip-failed-images"),
        patch=_model_raises_on("2007_000002"),
        exit_code=0,
        result="warning lists the file; benchmarks.json records it under failed_images",
        check=_check_skipped_image,
    ),
    Case(
        "eval-wrong-size",
        "evaluate",
        "predictions one row smaller than the image",
        lambda c: _evaluate(c),
        patch=_model_wrong_size,
        error=r"evaluation failed on image .*2007_000002\.jpg \(ValueError: .* differ in size",
    ),
    Case(
        "eval-unknown-benchmark",
        "evaluate",
        "--benchmarks A-999",
        lambda c: ["--config-file", TINY, "--benchmarks", "A-999", "--output", str(c.out)],
        error=r"Unknown benchmark 'A-999'; use one of A-847, A-150",
    ),
    Case(
        "eval-corrupt-weights",
        "evaluate",
        "--weights of random bytes",
        lambda c: ["--config-file", TINY, "--weights", _random_bytes(c), "--output", str(c.out)],
        error=r"is not a PyTorch/safetensors checkpoint",
    ),
    # --- datasets/prepare_*.py
    Case(
        "prepare-missing-root",
        "prepare",
        "prepare_ade20k_sem_seg.py --root of an empty folder",
        lambda c: ["--root", str(c.tmp / "nothing")],
        error=r"ADE20K annotations not found at '.*nothing/ADEChallengeData2016/annotations/training'; download",
    ),
    Case(
        "prepare-corrupt-label",
        "prepare",
        "an annotation PNG with a valid header and garbage after it",
        lambda c: _ade_raw(c, corrupt=True),
        error=r"ADE_val_00000001\.png.*corrupt",
    ),
    Case(
        "prepare-label-out-of-range",
        "prepare",
        "an ADE annotation with value 200 (> 150 classes)",
        lambda c: _ade_raw(c, out_of_range=True),
        error=r"label value 200",
    ),
    Case(
        "prepare-disk-full",
        "prepare",
        "the disk fills up while writing the first label (ENOSPC)",
        lambda c: _ade_raw(c),
        patch=_no_space,
        error=r"cannot write .*\.png: No space left on device",
        check=_check_no_prepared_files,
    ),
    Case(
        "prepare-umask-022",
        "prepare",
        "prepared label PNGs written under umask 022",
        lambda c: _ade_raw(c),
        umask=0o022,
        exit_code=0,
        result="every prepared label is mode 0644",
        check=_check_modes(0o644, "*.png", folder=_prepared_labels),
    ),
    # --- tools/convert_checkpoint.py and tools/export.py
    Case(
        "convert-same-file",
        "convert",
        "convert_checkpoint.py X.pth X.pth (a training checkpoint onto itself)",
        _convert_same_file,
        error=r"input and output are the same file .*trained\.pth: the conversion keeps the model weights only and "
        r"would replace the file, dropping its trainer state and iteration; write the output to another file$",
        check=_check_unchanged,
    ),
    Case(
        "convert-disk-full-pth",
        "convert",
        "convert_checkpoint.py to .pth on a full disk (a 64 kB tmpfs, 400 kB of weights)",
        lambda c: [str(_training_checkpoint(c)), str(c.disk / "out.pth")],
        disk="size=64k",
        error=r"cannot write .*/disk/out\.pth: No space left on device; free disk space",
        check=_check_disk_empty,
    ),
    Case(
        "convert-disk-full-safetensors",
        "convert",
        "convert_checkpoint.py to .safetensors on a full disk (a 64 kB tmpfs)",
        lambda c: [str(_training_checkpoint(c)), str(c.disk / "out.safetensors")],
        disk="size=64k",
        error=r"cannot write .*/disk/out\.safetensors: No space left on device; free disk space",
        check=_check_disk_empty,
    ),
    Case(
        "convert-umask-022",
        "convert",
        "convert_checkpoint.py to .safetensors under umask 022",
        lambda c: [str(_training_checkpoint(c)), str(c.out / "out.safetensors")],
        umask=0o022,
        exit_code=0,
        result="out.safetensors is mode 0644 (as open() makes it)",
        check=_check_modes(0o644, "out.safetensors"),
    ),
    Case(
        "export-disk-full",
        "export",
        "export.py --format torchscript with --output on a full disk (a 64 kB tmpfs)",
        lambda c: [
            "--config-file",
            TINY,
            "--weights",
            _tiny_checkpoint(c),
            "--format",
            "torchscript",
            "--output",
            str(c.disk / "adapter.pt"),
            "--vocabulary",
            "cat;dog",
            "--no-check",
        ],  # fmt: skip
        disk="size=64k",
        error=r"cannot write .*/disk/adapter\.pt: No space left on device; free disk space",
        check=_check_disk_empty,
    ),
    # --- demo/app.py: what a browser user can send to DemoApp.segment(image, vocabulary, task, mask source)
    Case(
        "app-no-image",
        "app",
        "Segment pressed before uploading an image",
        lambda c: _app(c, None),
        error=r"^no image: upload an image \(JPEG, PNG, BMP, TIFF, WebP\) first$",
    ),
    Case(
        "app-upload-gone",
        "app",
        "an upload no longer on the server (expired temporary file)",
        lambda c: _app(c, str(c.tmp / "gone.jpg")),
        error=r"^image gone\.jpg not found on the server; upload it again$",
    ),
    Case(
        "app-text-file",
        "app",
        "a text file uploaded as the image",
        lambda c: _app(c, _write(c, "notes.txt", b"these are notes, not pixels")),
        error=r"^notes\.txt is not an image this demo can read; upload a JPEG, PNG, BMP, TIFF or WebP file$",
    ),
    Case(
        "app-zero-byte-image",
        "app",
        "a 0-byte .jpg upload",
        lambda c: _app(c, _write(c, "empty.jpg", b"")),
        error=r"^empty\.jpg is empty \(0 bytes\); upload the image file again$",
    ),
    Case(
        "app-truncated-jpeg",
        "app",
        "a JPEG cut in half",
        lambda c: _app(c, _truncated_jpeg(c)),
        error=r"^truncated\.jpg is a damaged JPEG file \(truncated or corrupt\); upload the complete file again$",
    ),
    Case(
        "app-empty-vocabulary",
        "app",
        "an empty vocabulary box",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), vocabulary=""),
        error=r"^The inline vocabulary is empty; give classes like 'cat,kitten;dog;traffic light'$",
    ),
    Case(
        "app-only-separators",
        "app",
        "a vocabulary of only separators ' ;|, ; '",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), vocabulary=" ;|, ; "),
        error=r"^The inline vocabulary ';\|, ;' has only separators and no class names; give classes like "
        r"'cat,kitten;dog;traffic light'$",
    ),
    Case(
        "app-duplicate-classes",
        "app",
        "a class typed twice 'cat;dog;cat'",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), vocabulary="cat;dog;cat"),
        error=r"^Duplicate class name 'cat' in the inline vocabulary \(classes 1 and 3\); give each class once and "
        r"list its synonyms after commas$",
    ),
    Case(
        "app-repeated-synonyms",
        "app",
        "a name repeated as a synonym 'cat,cat;dog,cat'",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), vocabulary="cat,cat;dog,cat"),
        exit_code=0,
        result="label map 20x24 with ids 0-1; classes cat, dog",
        check=_check_app((20, 24), ["cat", "dog"]),
    ),
    Case(
        "app-unicode-classes",
        "app",
        "classes with accents, CJK and emoji",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), vocabulary=";".join(_UNICODE)),
        exit_code=0,
        result="label map 20x24 with ids 0-3; label JSON lists the names unchanged",
        check=_check_app((20, 24), list(_UNICODE), legend="4 classes present"),
    ),
    Case(
        "app-unknown-task",
        "app",
        "task 'depth' (a request not made by the page)",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), task="depth"),
        error=r"^unknown task 'depth'; choose one of semantic, panoptic, instance$",
    ),
    Case(
        "app-unknown-mask-source",
        "app",
        "mask source 'sam3'",
        lambda c: _app(c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), masks="sam3"),
        error=r"^unknown mask source 'sam3'; choose one of generator, sam, sam2$",
    ),
    Case(
        "app-grayscale",
        "app",
        "8-bit grayscale PNG 20x24",
        _app_on("gray.png", lambda: Image.fromarray(_rgb(20, 24)[:, :, 0])),
        exit_code=0,
        result="overlay RGB and label map 20x24, ids 0-2",
        check=_check_app((20, 24), _CAT_DOG_GRASS),
    ),
    Case(
        "app-rgba",
        "app",
        "RGBA PNG (alpha dropped)",
        _app_on("rgba.png", lambda: Image.fromarray(np.dstack([_rgb(20, 24), _rgb(20, 24, 1)[:, :, :1]]))),
        exit_code=0,
        result="overlay RGB and label map 20x24, ids 0-2",
        check=_check_app((20, 24), _CAT_DOG_GRASS),
    ),
    Case(
        "app-16-bit",
        "app",
        "16-bit grayscale PNG",
        _app_on("gray16.png", lambda: Image.fromarray(_rgb(20, 24)[:, :, 0].astype(np.uint16) * 257)),
        exit_code=0,
        result="overlay RGB and label map 20x24, ids 0-2",
        check=_check_app((20, 24), _CAT_DOG_GRASS),
    ),
    Case(
        "app-8000x6000",
        "app",
        "8000x6000 JPEG (48 Mpixel)",
        lambda c: _app(c, _large_jpeg_file(c)),
        exit_code=0,
        result="decoded at reduced scale and processed at 2048x1536 (--max-size, default 2048): overlay and label "
        "map 2048x1536, the legend says so",
        check=_check_app(
            (1536, 2048), _CAT_DOG_GRASS, legend="The image (8000x6000) was scaled to 2048x1536 (longer side 2048)"
        ),
    ),
    Case(
        "app-narrow-image",
        "app",
        "a 1x50000 pixel PNG",
        _app_on("thin.png", lambda: Image.fromarray(_rgb(1, 50000))),
        exit_code=0,
        result="processed at 1x2048 (--max-size; no side resized below 1 pixel): overlay and label map 1x2048",
        check=_check_app((1, 2048), _CAT_DOG_GRASS, legend="scaled to 2048x1"),
    ),
    Case(
        "app-decompression-bomb",
        "app",
        "a PNG whose header claims 20000x20000 pixels (a decompression bomb)",
        lambda c: _app(c, _bomb_png(c)),
        error=r"^bomb\.png is too large: 400,000,000 pixels, more than the limit of [\d,]+ pixels \(about [\d,]+ x "
        r"[\d,]+\) that guards against decompression bombs; upload a smaller image$",
    ),
    Case(
        "app-upload-deleted",
        "app",
        "an upload in the app's upload folder (where Gradio puts it)",
        _upload,
        exit_code=0,
        result="the upload and its folder are deleted once read; Segment again on it still works (kept in memory); "
        "close() removes the upload folder",
        check=_check_upload_gone,
    ),
    Case(
        "app-sam-without-checkpoint",
        "app",
        "SAM masks chosen on a real (non-random) model started without --sam-checkpoint",
        lambda c: _app(
            c, _image(c, "in.png", lambda: Image.fromarray(_rgb(20, 24))), masks="sam", weights=_tiny_checkpoint(c)
        ),
        error=r"^SAM masks need SAM weights: restart the app with --sam-checkpoint sam_vit_b_01ec64\.pth \(or "
        r"choose the generator masks\)$",
    ),
)
