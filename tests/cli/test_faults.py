"""Faults during a run: kill -9 during training then --resume, interrupted checkpoint writes, the text-embedding
cache under concurrent writers and truncation, and per-image evaluation errors.

The kill test trains the tiny FC-CLIP in a subprocess (``train_net.py``, one checkpoint per iteration) and kills
it with SIGKILL in the middle of writing the checkpoint of a seeded random iteration k; ``--resume`` in a fresh
process must continue from checkpoint k-1 and reproduce the losses of an uninterrupted in-process run.
"""

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from mask_adapter.checkpoint import MaskAdapterCheckpointer
from mask_adapter.data.synthetic import make_synthetic_dataset
from mask_adapter.evaluation.guard import ImageEvaluationError, guard_evaluation
from tests import REPO
from tests.engine.test_training import COMMON_OPTS, FCCLIP, make_trainer, read_metrics
from tests.modeling.test_text_classifier import FakeTextTower, make_classifier

MAX_ITER = 6
TRAIN_OPTS = ["SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "1", "DATASETS.TEST", "()"]

# Child process: train_net.py with per-iteration metrics; with KILL_AT_ITERATION=k, torch.save of the checkpoint
# of iteration k writes half of its bytes, then the process kills itself with SIGKILL (no cleanup can run).
_CHILD = """
import io, os, signal, sys
import torch
from mask_adapter.engine import Trainer
Trainer.log_period = 1
Trainer.metrics_window = 1
kill_at = int(os.environ.get("KILL_AT_ITERATION", "-1"))
real_save = torch.save

def save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("iteration") == kill_at:
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = save
from mask_adapter.apps.train import command_line
sys.exit(command_line(sys.argv[1:]))
"""


def _train_process(out: Path, root: Path, *extra: str, kill_at: int = -1) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), DETECTRON2_DATASETS=str(root), OMP_NUM_THREADS="1",
               PYTHONWARNINGS="ignore", KILL_AT_ITERATION=str(kill_at))  # fmt: skip
    cmd = [sys.executable, "-c", _CHILD, "--config-file", FCCLIP, *extra,
           *COMMON_OPTS, *TRAIN_OPTS, "OUTPUT_DIR", str(out)]  # fmt: skip
    return subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_kill_during_checkpoint_write_then_resume_gives_the_same_losses(tmp_path, monkeypatch, one_thread):
    from mask_adapter.data.catalog import register_all
    from mask_adapter.engine import Trainer

    root = tmp_path / "d2"
    make_synthetic_dataset(str(root), n_train=2, n_val=2, size=(96, 128), seed=0)
    kill_at = random.Random(2025).randint(2, MAX_ITER - 2)  # the seeded "random" iteration

    # Uninterrupted reference run, in this process, with the same per-iteration metrics.
    monkeypatch.setattr(Trainer, "log_period", 1)
    monkeypatch.setattr(Trainer, "metrics_window", 1)
    register_all(str(root), overwrite=True)
    try:
        make_trainer(FCCLIP, tmp_path / "full", *TRAIN_OPTS).train()
    finally:
        register_all(None, overwrite=True)
    expected = read_metrics(tmp_path / "full")
    assert sorted(expected) == list(range(MAX_ITER))

    out = tmp_path / "killed"
    out.mkdir()
    proc = _train_process(out, root, kill_at=kill_at)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    # The checkpoint being written when the process died exists only as a temporary file ...
    assert f"model_{kill_at:07d}.pth" not in names
    assert any(n.startswith(f".model_{kill_at:07d}.pth.") and n.endswith(".tmp") for n in names), names
    # ... and last_checkpoint names the previous, complete one, which loads.
    assert (out / "last_checkpoint").read_text() == f"model_{kill_at - 1:07d}.pth"
    assert torch.load(out / f"model_{kill_at - 1:07d}.pth", weights_only=False)["iteration"] == kill_at - 1

    resumed = _train_process(out, root, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = read_metrics(out)
    assert sorted(after) == list(range(MAX_ITER))
    for i in range(kill_at, MAX_ITER):
        for key in ("loss_ce", "loss_cosine", "total_loss"):
            assert after[i][key] == pytest.approx(expected[i][key], abs=1e-6), (i, key)
    assert (out / "last_checkpoint").read_text() == "model_final.pth"


def test_interrupted_checkpoint_write_leaves_nothing_resume_would_pick(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    checkpointer = MaskAdapterCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000001", iteration=1)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    real_save = torch.save

    def fail_midway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    with torch.no_grad():
        model.weight.add_(1.0)
    monkeypatch.setattr(torch, "save", fail_midway)
    with pytest.raises(OSError, match=r"cannot write .*model_0000002\.pth: No space left on device; free disk"):
        checkpointer.save("model_0000002", iteration=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"

    fresh = nn.Linear(3, 2)
    loaded = MaskAdapterCheckpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert loaded["iteration"] == 1
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k]), k


# ---------------------------------------------------------------------------------------------------- text cache
_CACHE_WRITER = """
import os, sys, time
from tests.modeling.test_text_classifier import FakeTextTower, make_classifier
classifier = make_classifier(FakeTextTower(), cache_dir=sys.argv[1])
vocab = ["cat", "dog,puppy", "traffic light"]
key = classifier.cache_key(vocab)
value = classifier._encode(vocab)
open(sys.argv[2], "w").close()  # ready
while not os.path.exists(sys.argv[3]):  # start together
    time.sleep(0.005)
for _ in range(40):
    classifier._save_disk(key, value)
    hit = classifier._load_disk(key)
    assert hit is not None and hit.synonyms_per_class == [1, 2, 1], hit
print("ok")
"""


@pytest.mark.slow
def test_text_cache_two_processes_writing_at_once(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CACHE_WRITER, str(cache), str(tmp_path / f"ready{i}"), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        for i in range(2):
            while not (tmp_path / f"ready{i}").exists():
                assert procs[i].poll() is None, procs[i].communicate()
                time.sleep(0.05)
        go.touch()
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0 and stdout.strip() == "ok", stderr[-3000:]
    assert [p.name for p in cache.iterdir()] == [p.name for p in cache.glob("*.pt")] and len(list(cache.iterdir())) == 1

    class NoEncode(FakeTextTower):
        def encode_text(self, tokens):
            raise AssertionError("must load from the disk cache")

    vocab = ["cat", "dog,puppy", "traffic light"]
    expected = make_classifier(FakeTextTower())(vocab)
    loaded = make_classifier(NoEncode(), cache_dir=str(cache))(vocab)
    torch.testing.assert_close(loaded.embeddings, expected.embeddings)


def test_truncated_text_cache_is_rebuilt_with_one_warning(tmp_path, caplog):
    vocab = ["cat", "dog,puppy"]
    first = make_classifier(FakeTextTower(), cache_dir=str(tmp_path))(vocab)
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])

    tower = FakeTextTower()
    with caplog.at_level(logging.WARNING, logger="mask_adapter.modeling.text.classifier"):
        again = make_classifier(tower, cache_dir=str(tmp_path))(vocab)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"{entry} is unreadable" in warnings[0] and "rebuilding it" in warnings[0]
    assert tower.prompts_encoded == 3 * 14  # rebuilt: 3 synonyms x 14 templates
    torch.testing.assert_close(again.embeddings, first.embeddings)
    data = torch.load(entry, weights_only=True)  # the rebuilt entry replaced the truncated one
    torch.testing.assert_close(data["embeddings"], first.embeddings)


# ---------------------------------------------------------------------------------------------------- evaluation
class _Model(nn.Module):
    """sem_seg = the image id; raises on the image named ``bad.jpg``."""

    def forward(self, inputs):
        if any(x["file_name"] == "bad.jpg" for x in inputs):
            raise RuntimeError("CUDA out of memory (simulated)")
        return [{"sem_seg": torch.full((1, 2, 2), float(x["image_id"]))} for x in inputs]


class _Evaluator:
    def reset(self):
        self.seen = []

    def process(self, inputs, outputs):
        for x, out in zip(inputs, outputs):
            if x["file_name"] == "wrong_size.jpg":
                raise ValueError("prediction (2, 2) and label (3, 2) differ in size")
            self.seen.append((x["file_name"], float(out["sem_seg"][0, 0, 0])))

    def evaluate(self):
        return {"seen": list(self.seen)}


_INPUTS = [{"file_name": n, "image_id": i} for i, n in enumerate(["a.jpg", "bad.jpg", "wrong_size.jpg", "b.jpg"])]


def _run(skip_failed: bool):
    from detectron2.evaluation import inference_on_dataset

    model, evaluator = guard_evaluation(_Model(), _Evaluator(), skip_failed)
    return inference_on_dataset(model, [[x] for x in _INPUTS], evaluator), evaluator


def test_failing_image_stops_the_evaluation_with_its_file_name():
    with pytest.raises(ImageEvaluationError) as e:
        _run(skip_failed=False)
    assert str(e.value) == (
        "prediction failed on image bad.jpg (RuntimeError: CUDA out of memory (simulated)); fix or remove the file, "
        "or pass --skip-failed-images (TEST.SKIP_FAILED_IMAGES True) to evaluate without it"
    )


def test_skip_failed_images_continues_and_lists_them(caplog):
    with caplog.at_level(logging.WARNING, logger="mask_adapter.evaluation.guard"):
        results, evaluator = _run(skip_failed=True)
    assert results == {"seen": [("a.jpg", 0.0), ("b.jpg", 3.0)]}
    assert evaluator.failures == [
        ("bad.jpg", "RuntimeError: CUDA out of memory (simulated)"),
        ("wrong_size.jpg", "ValueError: prediction (2, 2) and label (3, 2) differ in size"),
    ]
    summary = [r.getMessage() for r in caplog.records if "left out of the metrics" in r.getMessage()]
    assert summary == [
        "2 images failed and were left out of the metrics: bad.jpg (RuntimeError: CUDA out of memory (simulated)); "
        "wrong_size.jpg (ValueError: prediction (2, 2) and label (3, 2) differ in size)"
    ]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_open_gives(tmp_path, umask, mode):
    """New files: 0o666 minus the umask (mkstemp alone gives 0600); a replaced file keeps its own mode."""
    from mask_adapter.utils.atomic import atomic_output_path, atomic_write_text, current_umask

    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_text(str(tmp_path / "new.txt"), "x")
        with atomic_output_path(str(tmp_path / "named.bin")) as tmp:
            Path(tmp).write_bytes(b"y")
        (tmp_path / "kept.txt").write_text("old")
        os.chmod(tmp_path / "kept.txt", 0o604)
        atomic_write_text(str(tmp_path / "kept.txt"), "new")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "named.bin").stat().st_mode & 0o777 == mode
    assert (tmp_path / "kept.txt").stat().st_mode & 0o777 == 0o604 and (tmp_path / "kept.txt").read_text() == "new"


def test_wrapped_write_error_is_one_line_and_leaves_nothing(tmp_path):
    """A library that turns the failed write into another exception (torch.save: RuntimeError) still gives the
    one-line OutputWriteError, and neither the target nor a temporary file remains."""
    import errno

    from mask_adapter.utils.atomic import OutputWriteError, atomic_output_path, atomic_save

    def failing_writer(f):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    with pytest.raises(OutputWriteError, match=r"^cannot write .*a\.pth: No space left on device; free disk space"):
        atomic_save(str(tmp_path / "a.pth"), failing_writer)
    with pytest.raises(OutputWriteError, match=r"^cannot write .*b\.pt: No space left on device"):
        with atomic_output_path(str(tmp_path / "b.pt")) as tmp:
            Path(tmp).write_bytes(b"partial")
            failing_writer(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
