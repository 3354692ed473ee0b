"""Achieved GFLOP/s of each stage of a released-size model against the machine's fp32 matmul rate.

One model (the ``default`` variant of ``benchmark_e2e``, random weights) and one image size. Three forwards after a
warm-up (the warm-up also encodes the vocabulary):

1. FLOPs per stage with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention: 2 per
   multiply-accumulate), plus what the counter does not know: the in-place ``addmm_`` (the adapter's inference
   path accumulates its second MLP layer with it; 2 per multiply-accumulate) and 8 FLOPs per output element of
   bilinear sampling (``grid_sample``) and bilinear resizing (4 products and 4 sums); elementwise work is not counted.
2. Wall time per stage (``StageMeter``), without any counter or profiler active.
3. ``torch.profiler``: the aten operators that took the most self CPU time inside each stage.

The fp32 rate of a 4096² matmul is measured three times in the same process (before each forward) with the same
threads; ``pct_of_matmul`` is the stage's GFLOP/s over the best of the three. A stage made of large GEMMs and
convolutions can approach 100 %; a stage dominated by gathers, resampling or elementwise work is bound by memory
traffic instead and sits far below.
"""

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .benchmark_e2e import (
    RELEASED_CONFIGS,
    StageHooks,
    StageMeter,
    _build,
    _image,
    _instrument,
    released_config_files,
    split_postprocessing,
)

__all__ = ["STAGE_COLUMNS", "RATE_STAGES", "bilinear_flop_mapping", "FlopMeter", "stage_rates"]

STAGE_COLUMNS = ("model", "size", "stage", "seconds", "gflop", "gflops", "pct_of_matmul", "top_ops")
# Stages of ``benchmark_e2e``'s hooks reported here; "post-processing upsampling+other" is derived (whole
# post-processing minus its semantic and panoptic parts, minus the certificate's adapter pass).
RATE_STAGES = (
    "clip trunk",
    "pixel decoder",
    "transformer decoder",
    "adapter",
    "post-processing upsampling+other",
    "post-processing semantic",
    "post-processing panoptic",
)
BILINEAR_FLOPS_PER_OUTPUT = 8


def bilinear_flop_mapping() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas it lacks: bilinear sampling and resizing (8 FLOPs per output element) and the
    in-place ``addmm_`` (2 per multiply-accumulate, as ``addmm``)."""
    aten = torch.ops.aten

    def addmm_inplace(
        self_shape: Sequence[int], mat1: Sequence[int], mat2: Sequence[int], *args: Any, **kwargs: Any
    ) -> int:
        return 2 * int(mat1[0]) * int(mat1[1]) * int(mat2[1])

    def per_output(*args: Any, out_shape: Sequence[int] = (), **kwargs: Any) -> int:
        count = 1
        for dim in out_shape:
            count *= int(dim)
        return BILINEAR_FLOPS_PER_OUTPUT * count

    return {aten.grid_sampler_2d: per_output, aten.upsample_bilinear2d: per_output, aten.addmm_: addmm_inplace}


class FlopMeter(StageHooks):
    """Stage hooks counting FLOPs per stage instead of seconds.

    Nested stages of different names both count the inner work (the outer total includes it), as the seconds do.
    """

    def __init__(self) -> None:
        self.flops: dict[str, int] = defaultdict(int)
        self._active: list[str] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        from torch.utils.flop_counter import FlopCounterMode

        if name in self._active:
            yield
            return
        self._active.append(name)
        counter = FlopCounterMode(display=False, custom_mapping=bilinear_flop_mapping())
        try:
            with counter:
                yield
        finally:
            self._active.remove(name)
            self.flops[name] += counter.get_total_flops()


class _Delegate(StageHooks):
    """Forwards ``stage`` to whichever meter is current (the hooks are installed once)."""

    def __init__(self, meter: StageHooks) -> None:
        self.meter = meter

    def stage(self, name: str) -> Any:
        return self.meter.stage(name)


class _ProfileMeter(StageHooks):
    """Labels each stage with ``torch.profiler.record_function`` so operators can be attributed to it."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with torch.profiler.record_function(f"stage::{name}"):
            yield


def _derived(values: dict[str, float]) -> dict[str, float]:
    """Per reported stage, from the raw hook totals (post-processing split as in ``benchmark_e2e``)."""
    split = split_postprocessing(values)
    return {k: split.get(k, 0.0) for k in RATE_STAGES}


def _top_ops(prof: Any, top: int) -> dict[str, str]:
    """Per stage: its ``top`` aten operators by self CPU time, as "op 62 %; ..." (share of the stage's op time)."""
    per_stage: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent, stage = event.cpu_parent, None
        while parent is not None:
            if parent.name.startswith("stage::"):
                stage = parent.name[len("stage::") :]  # innermost stage
                break
            parent = parent.cpu_parent
        if stage is not None:
            per_stage[stage][event.name] += event.self_cpu_time_total
    out: dict[str, str] = {}
    for stage, ops in per_stage.items():
        total = sum(ops.values()) or 1.0
        ranked = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
        out[stage] = "; ".join(f"{name[len('aten::') :]} {100 * t / total:.0f} %" for name, t in ranked)
    # post-processing's own operators (outside semantic / panoptic) are the upsampling and the rest
    if "post-processing" in out:
        out["post-processing upsampling+other"] = out.pop("post-processing")
    return out


def stage_rates(
    *,
    model: str = RELEASED_CONFIGS[0][0],
    size: int = 256,
    device: str = "cpu",
    top: int = 3,
    matmul_rate: Callable[[], float],
    report: Callable[[str], None] = print,
    configs: dict[str, Path] | None = None,
    extra_opts: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], float]:
    """Rows (``STAGE_COLUMNS``) per stage of ``model`` at ``size`` and the best matmul rate (GFLOP/s) they use.

    ``matmul_rate()`` measures the reference rate in GFLOP/s (``benchmark.matmul_gflops`` of a 4096² fp32 matmul
    from the command line); it is called before each of the three measured forwards.
    """
    known = configs if configs is not None else released_config_files()
    net = _build(known[model], "default", extra_opts, device)
    delegate = _Delegate(StageMeter(torch.device(device)))
    undo = _instrument(net, delegate, {"in_postprocess": False, "text_cached": False})
    image = _image(size, device)
    rates: list[float] = []
    try:
        with torch.no_grad():
            report(f"{model} {size}px: warm-up")
            net([{"image": image}])
            rates.append(matmul_rate())
            flops = FlopMeter()
            delegate.meter = flops
            report(f"{model} {size}px: counting FLOPs")
            net([{"image": image}])
            rates.append(matmul_rate())
            timer = StageMeter(torch.device(device))
            delegate.meter = timer
            start = time.perf_counter()
            net([{"image": image}])
            total = time.perf_counter() - start
            report(f"{model} {size}px: timed forward {total:.1f} s")
            rates.append(matmul_rate())
            delegate.meter = _ProfileMeter()
            report(f"{model} {size}px: profiling")
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                net([{"image": image}])
    finally:
        for u in reversed(undo):
            u()
    best = max(rates)
    seconds, counted = _derived(timer.seconds), _derived({k: float(v) for k, v in flops.flops.items()})
    ops = _top_ops(prof, top)
    rows = []
    for stage in RATE_STAGES:
        gflop = counted[stage] / 1e9
        rate = gflop / seconds[stage] if seconds[stage] > 0 else 0.0
        rows.append(
            {"model": model, "size": f"{size}x{round(size * 4 / 3)}", "stage": stage, "seconds": seconds[stage],
             "gflop": gflop, "gflops": rate, "pct_of_matmul": 100 * rate / best, "top_ops": ops.get(stage, "")}
        )  # fmt: skip
    gflop_all = sum(counted.values()) / 1e9
    rows.append(
        {"model": model, "size": f"{size}x{round(size * 4 / 3)}", "stage": "total (forward)", "seconds": total,
         "gflop": gflop_all, "gflops": gflop_all / total, "pct_of_matmul": 100 * gflop_all / total / best,
         "top_ops": ""}
    )  # fmt: skip
    return rows, best
