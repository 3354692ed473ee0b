#!/usr/bin/env python
"""Time the Mask-Adapter head per image for N proposal masks, with and without chunking (CPU or CUDA).

Usage:
    python tools/benchmark_adapter.py [--counts 10,50,100,250] [--chunk 32] [--hw 21x28] [--channels 768]
        [--clip-dim 768] [--repeats 2] [--threads 0] [--device cpu] [--plot adapter_benchmark.png] [--quick]

Defaults are the released head (C = D = 768, K = 16) at the evaluation grid of an ADE20K image resized to 896
(h x w = 21 x 28, padded image 672 x 896), random weights, binary random masks, inference mode. ``--chunk`` is the
masks-per-call of ``MODEL.MASK_ADAPTER.INFERENCE_CHUNK``; "fast" is ``MODEL.MASK_ADAPTER.FAST_INFERENCE`` (fuse run
once per image and folded into the mask patchifier, about 4 % fewer MACs). The last column is the largest difference
from the reference output (unchunked, not fast). MACs are counted from the head's conv/linear layers (SPEC §11: about 8.75 GMACs per mask at 21 x 28); the
activation column is the largest tensor of one call, the ConvNeXt MLP hidden layer (masks x 4C x h x w, fp32).
``--quick`` runs N in {10, 50} once (about 10-30 s on 2 CPU cores).
"""

import argparse
import logging
import sys
import textwrap
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mask_adapter.modeling.adapter.head import MaskAdapterHead

__all__ = ["adapter_macs_per_mask", "benchmark", "format_table", "main"]

logger = logging.getLogger("benchmark_adapter")


def adapter_macs_per_mask(head: MaskAdapterHead, h: int, w: int) -> int:
    """Multiply-accumulates of the head for one mask on an h x w grid (masks enter at 4h x 4w).

    Args:
        head: the adapter head.
        h, w: the stride-32 grid.

    Returns:
        MACs of every Conv2d and Linear layer (norms and activations are not counted).
    """
    macs = 0
    sizes = {0: (2 * h, 2 * w), 3: (h, w), 6: (h, w)}  # mask_downscaling: stride 2, stride 2, 1x1
    for index, size in sizes.items():
        conv = head.mask_downscaling[index]
        macs += conv.weight.numel() * size[0] * size[1]
    for module in (head.fuse, head.final):
        macs += module.weight.numel() * h * w
    for block in (head.cnext1, head.cnext2, head.cnext3):
        macs += (
            (
                block.dwconv.weight.numel()
                + block.pwconv1.weight.numel()
                + block.pwconv2.weight.numel()
            )
            * h
            * w
        )
    return macs


def _time_call(
    head: nn.Module, feature: torch.Tensor, masks: torch.Tensor, chunk: int, repeats: int
) -> Tuple[float, torch.Tensor]:
    """Best wall time of ``repeats`` calls (seconds), and the output."""
    best, out = float("inf"), None
    for _ in range(repeats):
        if feature.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = head(feature, masks, chunk)
        if feature.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


@torch.inference_mode()
def benchmark(
    counts: Sequence[int],
    *,
    chunk: int = 32,
    hw: Sequence[int] = (21, 28),
    channels: int = 768,
    clip_dim: int = 768,
    repeats: int = 2,
    device: str = "cpu",
) -> List[Dict[str, float]]:
    """Time the head for each mask count, unchunked (chunk 0) and with ``chunk`` masks per call, each with the
    reference input path and with FAST_INFERENCE (fuse once per image, folded into the mask patchifier).

    Returns:
        One row per (N, chunk): n, chunk, seconds per image, ms per mask, GMACs per image, GMAC/s, the
        activation size in GB, and the max |difference| from the reference (unchunked, not fast) output.
    """
    torch.manual_seed(0)
    h, w = hw
    head = MaskAdapterHead(clip_dim=clip_dim, num_channels=channels).eval().to(device)
    feature = torch.randn(1, clip_dim, h, w, device=device)
    macs = adapter_macs_per_mask(head, h, w)
    head(feature, torch.ones(1, 2, 32 * h, 32 * w, dtype=torch.bool, device=device))  # warm-up
    rows = []
    for n in counts:
        masks = torch.rand(1, n, 32 * h, 32 * w, device=device) > 0.5
        reference = None
        settings = [(False, c) for c in (0, chunk)] + [(True, c) for c in (0, chunk)]
        for fast, c in settings:
            if c and c >= n:
                continue  # identical to the unchunked call
            head.fast_inference = fast
            seconds, out = _time_call(head, feature, masks, c, repeats)
            reference = out if reference is None else reference
            diff = float((out - reference).abs().max())
            per_call = n if c == 0 else c
            rows.append(
                {
                    "n": n,
                    "chunk": c,
                    "fast": fast,
                    "seconds": seconds,
                    "ms_per_mask": 1000.0 * seconds / n,
                    "gmacs": macs * n / 1e9,
                    "gmacs_per_s": macs * n / 1e9 / seconds,
                    "activation_gb": per_call * 4 * channels * h * w * 4 / 1e9,
                    "max_abs_diff": diff,
                }
            )
            logger.info("N=%d chunk=%d fast=%s: %.3f s", n, c, fast, seconds)
    return rows


def format_table(rows: Sequence[Dict[str, float]], header: str) -> str:
    """Markdown table of :func:`benchmark` rows."""
    lines = [
        header,
        "",
        "| N | chunk | fast | s / image | ms / mask | GMACs / image | GMAC/s | MLP activation (GB) | max diff vs reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['chunk'] or 'none'} | {'yes' if r['fast'] else 'no'} | {r['seconds']:.3f} | {r['ms_per_mask']:.1f} | {r['gmacs']:.0f} | "
            f"{r['gmacs_per_s']:.0f} | {r['activation_gb']:.3f} | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[Dict[str, float]], path: str, title: str) -> None:
    """Seconds per image against N, one line per chunk setting, written to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for c, fast in sorted({(r["chunk"], r["fast"]) for r in rows}):
        sel = [r for r in rows if r["chunk"] == c and r["fast"] == fast]
        ax.plot(
            [r["n"] for r in sel],
            [r["seconds"] for r in sel],
            marker="o",
            label=f"chunk {c or 'none'}" + (", fast" if fast else ""),
        )
    ax.set_xlabel("masks per image (N)")
    ax.set_ylabel("seconds per image")
    ax.set_title(textwrap.fill(title, width=70), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="10,50,100,250", help="comma-separated mask counts N")
    p.add_argument(
        "--chunk", type=int, default=32, help="masks per adapter call in the chunked runs"
    )
    p.add_argument("--hw", default="21x28", help="stride-32 grid h x w (21x28 = ADE20K at 896)")
    p.add_argument("--channels", type=int, default=768, help="adapter width C")
    p.add_argument("--clip-dim", type=int, default=768, help="dense CLIP feature width D")
    p.add_argument(
        "--repeats", type=int, default=2, help="timed calls per setting (the best is kept)"
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--plot", default="", help="write a PNG plot to this path")
    p.add_argument("--quick", action="store_true", help="N in {10, 50}, one repeat")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark, print the table, optionally plot; returns the exit code."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    counts = [10, 50] if args.quick else [int(x) for x in args.counts.split(",")]
    repeats = 1 if args.quick else args.repeats
    hw = tuple(int(x) for x in args.hw.lower().split("x"))
    if len(hw) != 2:
        raise ValueError(f"--hw must look like 21x28, got {args.hw!r}")
    rows = benchmark(
        counts,
        chunk=args.chunk,
        hw=hw,
        channels=args.channels,
        clip_dim=args.clip_dim,
        repeats=repeats,
        device=args.device,
    )
    header = (
        f"Mask-Adapter head, C={args.channels}, D={args.clip_dim}, h x w = {hw[0]} x {hw[1]}, {args.device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, best of {repeats}"
    )
    print(format_table(rows, header))  # the table is the output of this tool
    if args.plot:
        plot(rows, args.plot, header)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
