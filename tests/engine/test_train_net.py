"""The command line: `train_net.py --num-gpus 2` on CPU (two gloo processes) and the official script names.

The two-process run trains the tiny stage-1 model for 4 iterations (one image per process), evaluates at the end and
checkpoints every 2 iterations; only the main process writes checkpoints, each exactly once.
"""

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mask_adapter.data.synthetic import make_synthetic_dataset
from tests import REPO


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """Run train_net.py --num-gpus 2 once; returns (output dir, completed process)."""
    root = tmp_path_factory.mktemp("d2")
    make_synthetic_dataset(str(root), n_train=4, n_val=2, size=(96, 128), seed=0)
    out = tmp_path_factory.mktemp("ddp_run")
    env = dict(os.environ, DETECTRON2_DATASETS=str(root), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        str(REPO / "train_net.py"),
        "--num-gpus",
        "2",
        "--dist-url",
        "auto",
        "--config-file",
        str(REPO / "configs/tiny/warmup_tiny.yaml"),
        "OUTPUT_DIR",
        str(out),
        "SEED",
        "0",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "SOLVER.MAX_ITER",
        "4",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "SOLVER.STEPS",
        "(100,)",
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON",
        "False",
        "MODEL.MASK_FORMER.TEST.PANOPTIC_ON",
        "False",
    ]
    proc = subprocess.run(cmd, cwd=str(out), env=env, capture_output=True, text=True, timeout=600)
    return out, proc


@pytest.mark.slow  # subprocess
def test_two_cpu_processes_train_evaluate_and_checkpoint_once(two_process_run):
    out, proc = two_process_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "Rank of current process: 0. World size: 2" in log
    saved = re.findall(r"Saving checkpoint to (\S+)", log)
    assert sorted(Path(p).name for p in saved) == [
        "model_0000001.pth",
        "model_0000003.pth",
        "model_final.pth",
    ]
    assert len(saved) == len(set(saved))  # each checkpoint written once
    rank1_logs = list(out.glob("log.txt.rank1"))
    assert rank1_logs and "Saving checkpoint" not in rank1_logs[0].read_text()
    assert {p.name for p in out.glob("*.pth")} == {
        "model_0000001.pth",
        "model_0000003.pth",
        "model_final.pth",
    }
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    # training metrics of the main process and the evaluation at the end (semantic segmentation of the val split)
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "total_loss" in r][-1] == 3
    assert any("sem_seg/mIoU" in r for r in rows)
    assert re.search(r"copypaste: mIoU,fwIoU,mACC,pACC", log)


@pytest.mark.parametrize("script", ["train_net_maskadapter.py", "train_net_fcclip.py", "train_net_maftp.py"])
def test_official_script_names_run_the_same_entry_point(script):
    from mask_adapter.apps import train as train_net

    namespace = runpy.run_path(str(REPO / script), run_name="not_main")
    assert namespace["command_line"] is train_net.command_line
