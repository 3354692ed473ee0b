"""Training with the Trainer on the synthetic shapes dataset (tiny configs, CPU).

Covered: stage 1 lowers its loss; stage 2 starts from a stage-1 checkpoint plus GENERATOR_WEIGHTS (no fusion step),
trains and reports mIoU; --resume continues the exact data stream and losses of an uninterrupted run; a NaN loss
stops training naming the iteration; a misspelled config key is named with a suggestion.

Note on the stage-1 loss test. The tiny CLIP has random weights: its text tower maps the synthetic class names to
nearly collinear embeddings (pairwise cosine 0.82-0.99) and its 4x4 stride-32 grid at 128 px gives few distinct
features. Even an oracle that picks the best pooling weights per ground-truth mask only reaches a cross-entropy of
about 1.0 nat (total loss ~2.0 with CLASS_WEIGHT 2), and on the 16-image stream the loss plateaus at ~ln(5) per
mask after the void embedding has been pushed away: class discrimination does not generalize without real CLIP
weights. So the test lets the model fit a two-image training set at a fixed scale, where a cross-entropy below
ln(5) (better than uniform over the 5 classes) needs the adapter to discriminate classes, not only the void to move.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from detectron2.engine import default_argument_parser
from detectron2.utils.env import seed_all_rng

from mask_adapter.apps import train as train_net  # the program behind train_net.py
from mask_adapter.config import build_config
from mask_adapter.data.catalog import register_all
from mask_adapter.data.synthetic import make_synthetic_dataset
from mask_adapter.data.train_loader import ResumableSampler
from mask_adapter.engine import Trainer, count_parameters
from tests import REPO

WARMUP = str(REPO / "configs/tiny/warmup_tiny.yaml")
FCCLIP = str(REPO / "configs/tiny/fcclip_tiny.yaml")
# Semantic evaluation only: the synthetic set has no instances JSON, and panoptic evaluation adds time.
COMMON_OPTS = [
    "SEED",
    "0",
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON",
    "False",
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON",
    "False",
    "DATALOADER.ASPECT_RATIO_GROUPING",
    "False",
    "SOLVER.STEPS",
    "(1000,)",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("d2")
    make_synthetic_dataset(str(root), n_train=2, n_val=2, size=(96, 128), seed=0)
    register_all(str(root), overwrite=True)
    yield root
    register_all(None, overwrite=True)


@pytest.fixture()
def per_iteration_metrics(monkeypatch):
    """metrics.json gets one line per iteration with that iteration's values (no smoothing window)."""
    monkeypatch.setattr(Trainer, "log_period", 1)
    monkeypatch.setattr(Trainer, "metrics_window", 1)


def make_trainer(config: str, out: Path, *opts: str, resume: bool = False) -> Trainer:
    cfg = build_config(config, COMMON_OPTS + ["OUTPUT_DIR", str(out)] + list(opts))
    cfg.freeze()
    seed_all_rng(cfg.SEED)  # as detectron2's default_setup does: the random tiny CLIP is built from it
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=resume)
    return trainer


def read_metrics(out: Path) -> dict[int, dict]:
    """iteration -> metrics of that iteration (training lines only)."""
    rows = {}
    with open(out / "metrics.json", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "total_loss" in row:
                rows[row["iteration"]] = row
    return rows


STAGE1_OPTS = (
    "SOLVER.BASE_LR",
    "0.01",
    "SOLVER.WEIGHT_DECAY",
    "0.0",
    "SOLVER.MAX_ITER",
    "60",
    "SOLVER.CHECKPOINT_PERIOD",
    "30",
    "TEST.EVAL_PERIOD",
    "30",
    "INPUT.MIN_SCALE",
    "1.0",
    "INPUT.MAX_SCALE",
    "1.0",
)


@pytest.fixture(scope="module")
def stage1_run(datasets_root, tmp_path_factory):
    """Stage 1 for 60 iterations; returns (output dir, per-iteration metrics)."""
    out = tmp_path_factory.mktemp("stage1")
    mp = pytest.MonkeyPatch()
    mp.setattr(Trainer, "log_period", 1)
    mp.setattr(Trainer, "metrics_window", 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = make_trainer(WARMUP, out, *STAGE1_OPTS)
        trainer.train()
    finally:
        mp.undo()
        torch.set_num_threads(previous)
    return out, read_metrics(out), trainer._last_eval_results


@pytest.mark.slow  # trains the tiny model for 60 iterations (stage1_run)
def test_stage1_lowers_the_loss(stage1_run):
    out, metrics, results = stage1_run
    losses = [metrics[i]["total_loss"] for i in sorted(metrics)]
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.85 * first, f"stage-1 loss did not go down: first 5 {first:.3f}, last 5 {last:.3f}"
    # loss = CLASS_WEIGHT 2 x cross-entropy; uniform over the 5 classes would give 2 ln 5 = 3.22.
    assert last < 0.9 * 2 * math.log(5), f"stage-1 cross-entropy not below chance: {last / 2:.3f} nats"
    assert (out / "model_final.pth").is_file()
    assert "mIoU" in results["sem_seg"]  # the oracle evaluation at the end of training


@pytest.mark.slow  # trains the tiny model for 60 iterations (stage1_run)
def test_best_stage1_checkpoint_is_kept(stage1_run):
    """EVAL_PERIOD 30 of 60: model_best.pth holds the better of the two evaluations; --resume still uses the last."""
    out = stage1_run[0]
    evals = {}
    with open(out / "metrics.json", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "sem_seg/mIoU" in row:
                evals[row["iteration"]] = row["sem_seg/mIoU"]
    assert len(evals) == 2
    best_iter = max(evals, key=lambda i: (evals[i], -i))
    best = torch.load(out / "model_best.pth", map_location="cpu", weights_only=False)
    assert best["iteration"] == best_iter
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    final = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    # The best score travels with the checkpoints, so a resumed run keeps comparing against it. model_final.pth is
    # written before the final evaluation, so it knows the first evaluation only.
    best_state = final["trainer"]["hooks"]["KeepLastCheckpointTag"]
    assert best_state["best_metric"] == pytest.approx(evals[min(evals)])


def save_generator_checkpoint(path: Path, datasets_root: Path) -> dict[str, torch.Tensor]:
    """A base-generator file as FC-CLIP ships it (detectron2 dict): a tiny FCCLIP model with other random weights."""
    cfg = build_config(FCCLIP, COMMON_OPTS)
    torch.manual_seed(123)
    state = {k: v.clone() for k, v in Trainer.build_model(cfg).state_dict().items()}
    torch.save({"model": state}, path)
    return state


@pytest.mark.slow  # trains the tiny model for 60 iterations (stage1_run)
def test_stage2_starts_from_stage1_and_generator_weights(stage1_run, datasets_root, tmp_path, capsys):
    stage1_dir = stage1_run[0]
    stage1 = torch.load(stage1_dir / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    generator = save_generator_checkpoint(tmp_path / "generator.pth", datasets_root)
    out = tmp_path / "stage2"
    trainer = make_trainer(
        FCCLIP,
        out,
        "MODEL.WEIGHTS",
        str(stage1_dir / "model_final.pth"),
        "MODEL.MASK_ADAPTER.GENERATOR_WEIGHTS",
        str(tmp_path / "generator.pth"),
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.CHECKPOINT_PERIOD",
        "1000",
    )
    loaded = trainer.model.state_dict()
    adapter_keys = [k for k in stage1 if k.startswith("mask_adapter.")]
    head_keys = [k for k in generator if k.startswith("sem_seg_head.")]
    assert adapter_keys and head_keys
    for k in adapter_keys:
        assert torch.equal(loaded[k], stage1[k]), k
    for k in head_keys + ["void_embedding.weight"]:  # fusion semantics: the generator's void replaces stage 1's
        assert torch.equal(loaded[k], generator[k]), k
    assert not torch.equal(stage1["void_embedding.weight"], generator["void_embedding.weight"])
    assert any(not torch.equal(loaded[k], generator[k]) for k in adapter_keys)

    trainer.train()
    assert trainer.iter == 3 and (out / "model_final.pth").is_file()
    assert 0.0 <= trainer._last_eval_results["sem_seg"]["mIoU"] <= 100.0  # evaluation at the end of training
    trained = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert any(not torch.equal(trained[k], stage1[k]) for k in adapter_keys)
    assert all(torch.equal(trained[k], generator[k]) for k in head_keys)  # the generator stays frozen

    # --eval-only through the command line entry point: parameter counts, then mIoU of the trained model.
    capsys.readouterr()
    args = default_argument_parser().parse_args(
        [
            "--config-file",
            FCCLIP,
            "--eval-only",
            "MODEL.WEIGHTS",
            str(out / "model_final.pth"),
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
        ]
        + COMMON_OPTS
    )
    results = train_net.main(args)
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("parameters:")]
    counts = count_parameters(trainer.model)
    assert line == [
        f"parameters: total {counts['total']:,} | trainable {counts['trainable']:,} | frozen (without text tower) "
        f"{counts['frozen_without_text_tower']:,}"
    ]
    assert counts["trainable"] == sum(v.numel() for k, v in trained.items() if k.startswith(("mask_adapter.", "void_")))
    assert results["sem_seg"]["mIoU"] == pytest.approx(trainer._last_eval_results["sem_seg"]["mIoU"])


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_resume_continues_like_an_uninterrupted_run(datasets_root, tmp_path, per_iteration_metrics, monkeypatch):
    """6 iterations with CHECKPOINT_PERIOD 3, versus resuming a fresh Trainer from the iteration-3 checkpoint.

    Seeded parts: the sampler order (TrainingSampler seeded with SEED), the augmentations (seeded per stream
    position), the mask sampling / IoU matching (per image from SEED, iteration and image id). Without skipping the
    consumed samples the resumed run would restart the data stream: checked as a negative control.
    """
    opts = ("SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3")
    full = tmp_path / "full"
    make_trainer(FCCLIP, full, *opts).train()
    expected = read_metrics(full)
    assert sorted(expected) == list(range(6))

    def resumed_run(out: Path) -> dict[int, dict]:
        out.mkdir()
        (out / "model_0000002.pth").write_bytes((full / "model_0000002.pth").read_bytes())
        (out / "last_checkpoint").write_text("model_0000002.pth")
        trainer = make_trainer(FCCLIP, out, *opts, resume=True)
        assert trainer.start_iter == 3
        trainer.train()
        return read_metrics(out)

    checkpoint = torch.load(full / "model_0000002.pth", map_location="cpu", weights_only=False)
    assert checkpoint["iteration"] == 2
    resumed = resumed_run(tmp_path / "resumed")
    assert sorted(resumed) == [3, 4, 5]
    for i in (3, 4, 5):
        for key in ("loss_ce", "loss_cosine", "total_loss"):
            assert resumed[i][key] == pytest.approx(expected[i][key], abs=1e-6), (i, key)
        assert resumed[i]["lr"] == expected[i]["lr"]

    monkeypatch.setattr(ResumableSampler, "skip", lambda self, n: None)
    restarted = resumed_run(tmp_path / "restarted")
    assert any(abs(restarted[i]["loss_ce"] - expected[i]["loss_ce"]) > 1e-4 for i in (3, 4, 5))


def first_batches(cfg_opts: list[str], n: int) -> list[list[torch.Tensor]]:
    cfg = build_config(FCCLIP, COMMON_OPTS + cfg_opts)
    loader = iter(Trainer.build_train_loader(cfg))
    return [[x["image"] for x in next(loader)] for _ in range(n)]


def test_data_stream_does_not_depend_on_workers(datasets_root):
    """With SEED set, batch j is a function of (SEED, rank, j): the same with 0 or 2 loader worker processes."""
    a = first_batches(["DATALOADER.NUM_WORKERS", "0"], 4)
    b = first_batches(["DATALOADER.NUM_WORKERS", "2"], 4)
    for batch_a, batch_b in zip(a, b):
        assert all(torch.equal(x, y) for x, y in zip(batch_a, batch_b))
    other_seed = first_batches(["SEED", "1"], 4)
    assert not all(torch.equal(x, y) for ba, bb in zip(a, other_seed) for x, y in zip(ba, bb))


def test_non_finite_loss_stops_training_with_the_iteration(datasets_root, tmp_path, monkeypatch):
    from detectron2.utils.events import get_event_storage

    from mask_adapter.modeling.meta_arch.warmup import MaskAdapterWarmup

    original = MaskAdapterWarmup.losses

    def nan_at_iteration_2(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        if get_event_storage().iter == 2:
            losses = {k: v * float("nan") for k, v in losses.items()}
        return losses

    monkeypatch.setattr(MaskAdapterWarmup, "losses", nan_at_iteration_2)
    trainer = make_trainer(WARMUP, tmp_path, "SOLVER.MAX_ITER", "5")
    with pytest.raises(FloatingPointError, match=r"Loss became infinite or NaN at iteration=2"):
        trainer.train()
    assert not (tmp_path / "model_final.pth").exists()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # the NaN step was not applied


def test_misspelled_config_key_is_named(tmp_path):
    with pytest.raises(
        KeyError,
        match=r"MODEL\.MASK_ADAPTER\.NUM_GT_MASK .*did you mean MODEL\.MASK_ADAPTER\.NUM_GT_MASKS",
    ):
        build_config(WARMUP, ["MODEL.MASK_ADAPTER.NUM_GT_MASK", "3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_BASE_: {WARMUP}\nMODEL:\n  MASK_ADAPTER:\n    NUM_GT_MASK: 3\n")
    with pytest.raises(KeyError, match=r"MODEL\.MASK_ADAPTER\.NUM_GT_MASK \(from .*bad\.yaml\).*NUM_GT_MASKS"):
        build_config(str(bad), [])
