"""The released-size e2e benchmark's machinery (package functions; no timing is asserted)."""

import pytest
import torch

from mask_adapter.utils import benchmark
from mask_adapter.utils.benchmark_e2e import (
    E2E_COLUMNS,
    STAGES,
    StageMeter,
    bf16_kernel_family,
    outputs_identical,
    released_rows,
)
from tests import REPO


def test_bf16_kernel_family_names_one_family_and_is_in_the_header():
    assert bf16_kernel_family() in ("AMX", "AVX512-BF16", "none")
    assert f"bf16 kernels: {bf16_kernel_family()}" in benchmark.cpu_isa()


def test_gpu_check_without_cuda_is_one_clear_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert benchmark.main(["gpu-check", "--csv", "unused.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no CUDA device is present; gpu-check needs a machine with a CUDA GPU"]


def test_void_share_out_of_range_is_a_usage_error(capsys):
    assert benchmark.main(["e2e", "--released", "--void-share", "1.5"]) == 2
    assert "error: --void-share must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_stage_meter_counts_nested_calls_of_a_stage_once():
    meter = StageMeter(torch.device("cpu"))
    inner = meter.wrap("a", lambda: torch.ones(10).sum())
    outer = meter.wrap("a", lambda: inner() + inner())
    assert float(outer()) == 20.0
    assert list(meter.seconds) == ["a"] and meter.seconds["a"] > 0
    assert meter.peak_mb["a"] >= 0


def test_outputs_identical_compares_argmax_and_panoptic():
    sem = torch.tensor([[[0.6, 0.1]], [[0.4, 0.9]]])
    pan = (torch.tensor([[1, 0]], dtype=torch.int32), [{"id": 1, "isthing": False, "category_id": 0, "area": 1}])
    a = {"sem_seg": sem, "panoptic_seg": pan}
    assert outputs_identical(a, {"sem_seg": sem * 0.5 + 0.1, "panoptic_seg": pan})
    assert not outputs_identical(a, {"sem_seg": sem.flip(0), "panoptic_seg": pan})
    other = (pan[0], [{**pan[1][0], "category_id": 1}])
    assert not outputs_identical(a, {"sem_seg": sem, "panoptic_seg": other})


@pytest.mark.slow  # four tiny-model forwards and a cold text encoding (tens of seconds on a loaded 2-core machine)
def test_released_rows_on_the_tiny_model_have_every_stage_and_identical_totals():
    rows = released_rows(
        models=["tiny"],
        sizes=[64],
        void_share=0.8,
        repeats=1,
        empty_void_masks=True,
        report=lambda _line: None,
        configs={"tiny": REPO / "configs" / "tiny" / "fcclip_tiny.yaml"},
        variants=("default", "no-skip"),
    )
    assert all(set(r) == set(E2E_COLUMNS) for r in rows)
    for variant in ("reference", "default", "no-skip"):
        stages = [r["stage"] for r in rows if r["variant"] == variant]
        assert stages == [*STAGES, "total"]
    totals = {r["variant"]: r for r in rows if r["stage"] == "total"}
    assert totals["reference"]["identical"] is True and totals["default"]["identical"] is True
    assert totals["reference"]["adapter_queries"] == totals["no-skip"]["adapter_queries"] == "10/10"
    assert totals["no-skip"]["identical"] is True
    run, queries = map(int, totals["default"]["adapter_queries"].split("/"))
    assert queries == 10 and run < 10  # void queries skipped (8 voided, masks mostly empty)
    timed = {r["stage"]: r["seconds_median"] for r in rows if r["variant"] == "default"}
    assert timed["clip trunk"] > 0 and timed["adapter"] > 0 and timed["post-processing semantic"] > 0
    with pytest.raises(KeyError):
        released_rows(models=["nope"], sizes=[64], void_share=0.0, repeats=1, configs={})
