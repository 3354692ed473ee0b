"""The released-size e2e benchmark's machinery (package functions; no timing is asserted)."""

import pytest
import torch

from mask_adapter.utils import benchmark
from mask_adapter.utils.benchmark_e2e import (
    E2E_COLUMNS,
    STAGES,
    StageMeter,
    argmax_agreement,
    bf16_kernel_family,
    bf16_kernels_ran,
    onednn_verbose_log,
    outputs_identical,
    released_rows,
)
from tests import REPO


def test_bf16_kernel_family_names_one_family_and_is_in_the_header():
    assert bf16_kernel_family() in ("AMX", "AVX512-BF16", "none")
    assert f"bf16 kernels: {bf16_kernel_family()}" in benchmark.cpu_isa()


def test_bf16_kernels_ran_reads_the_bf16_executions_of_a_verbose_log():
    log = "\n".join(
        [
            "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support",
            "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16::blocked:ab::f0"
            " wei:bf16::blocked:ba::f0 dst:bf16::blocked:ab::f0,,,64x64:64x64,5.3",
            "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16::blocked:ab::f0,,,1",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv:avx512_core,forward,src:f32::blocked:abcd::f0,,,2",
            "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:bf16:p:blocked:aBcd16b::f0 dst:f32,,,0.1",
        ]
    )
    family, ran = bf16_kernels_ran(log)
    assert family == "AVX512-BF16"
    assert dict(ran) == {"matmul:brg_matmul:avx512_core_bf16": 2, "reorder:jit:uni": 1}  # the f32 conv is not bf16
    amx = log.replace("avx512_core_bf16", "avx512_core_amx")
    assert bf16_kernels_ran(amx)[0] == "AMX"
    assert bf16_kernels_ran(log.replace("avx512_core_bf16", "ref"))[0] == "other"
    assert bf16_kernels_ran("onednn_verbose,v1,info,cpu,runtime:OpenMP") == ("none ran", {})


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_onednn_verbose_log_captures_the_bf16_matmul_that_ran():
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 32)
    logs: list[str] = []
    with onednn_verbose_log(logs), torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(8, 32))
    assert out.dtype == torch.bfloat16 and len(logs) == 1
    family, ran = bf16_kernels_ran(logs[0])
    assert sum(ran.values()) >= 1
    if bf16_kernel_family() != "none":  # the CPU has a native bf16 family: oneDNN used it
        assert family == bf16_kernel_family()
    # outside the block nothing is logged any more and standard output is back
    layer(torch.randn(2, 32))
    assert len(logs) == 1


def test_onednn_verbose_log_runs_the_body_when_the_log_cannot_be_switched_on(monkeypatch):
    class Refusing:
        def __init__(self, level):
            pass

        def __enter__(self):
            raise RuntimeError("Failed to set MKLDNN into verbose mode")

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "verbose", Refusing)
    logs: list[str] = []
    ran = []
    with onednn_verbose_log(logs):
        ran.append(True)
    assert ran == [True] and logs == []


def test_argmax_agreement_is_the_share_of_equal_pixels():
    a = torch.zeros(3, 2, 2)
    a[0] = 1.0
    b = a.clone()
    b[2, 0, 0] = 5.0  # one of the four pixels changes class
    assert argmax_agreement({"sem_seg": a}, {"sem_seg": b}) == 0.75
    assert argmax_agreement({"sem_seg": a}, {"sem_seg": a}) == 1.0
    nan = argmax_agreement({}, {"sem_seg": a})
    assert nan != nan


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
        variants=("default", "no-skip", "bf16"),
    )
    assert all(set(r) == set(E2E_COLUMNS) for r in rows)
    for variant in ("reference", "default", "no-skip", "bf16"):
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
    # bf16: the default path under a bf16 autocast; agreement with the reference is reported, not required
    bf16 = totals["bf16"]
    assert 0.5 <= bf16["argmax_agreement"] <= 1.0 and totals["default"]["argmax_agreement"] == 1.0
    assert bf16["adapter_queries"] == totals["default"]["adapter_queries"]
    if torch.backends.mkldnn.is_available():
        assert bf16["kernels"].split(":")[0] in ("AMX", "AVX512-BF16", "other", "none ran")
    assert totals["default"]["kernels"] == ""
    with pytest.raises(KeyError):
        released_rows(models=["nope"], sizes=[64], void_share=0.0, repeats=1, configs={})


def test_flop_meter_counts_matmuls_and_bilinear_resizing_per_stage():
    from mask_adapter.utils.benchmark_stages import FlopMeter

    meter = FlopMeter()
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    outer = meter.wrap("outer", lambda: meter.wrap("inner", torch.mm)(a, b) + torch.mm(a, b))
    assert outer().shape == (8, 4)
    assert meter.flops["inner"] == 2 * 8 * 16 * 4
    assert meter.flops["outer"] == 2 * meter.flops["inner"]  # the outer stage includes the inner one
    with meter.stage("resize"):
        torch.nn.functional.interpolate(torch.randn(1, 3, 4, 4), size=(8, 10), mode="bilinear", align_corners=False)
    assert meter.flops["resize"] == 8 * 3 * 8 * 10
    acc = torch.zeros(8, 4)
    with meter.stage("in place"):
        acc.addmm_(a, b)
    assert meter.flops["in place"] == 2 * 8 * 16 * 4


@pytest.mark.slow  # four tiny-model forwards and a cold text encoding
def test_stage_rates_on_the_tiny_model_cover_every_stage():
    from mask_adapter.utils.benchmark_stages import RATE_STAGES, STAGE_COLUMNS, stage_rates

    rows, best = stage_rates(
        model="tiny",
        size=64,
        matmul_rate=lambda: benchmark.matmul_gflops(256),
        report=lambda _line: None,
        configs={"tiny": REPO / "configs" / "tiny" / "fcclip_tiny.yaml"},
    )
    assert best > 0
    assert [r["stage"] for r in rows] == [*RATE_STAGES, "total (forward)"]
    assert all(set(r) == set(STAGE_COLUMNS) for r in rows)
    by = {r["stage"]: r for r in rows}
    for stage in ("clip trunk", "pixel decoder", "transformer decoder", "adapter"):
        assert by[stage]["gflop"] > 0 and by[stage]["seconds"] > 0 and by[stage]["top_ops"]
    assert by["post-processing upsampling+other"]["gflop"] > 0  # the bilinear upsampling of the masks
    # the stages are disjoint parts of the timed forward
    assert by["total (forward)"]["seconds"] >= sum(by[s]["seconds"] for s in RATE_STAGES)


def test_released_configs_are_the_shipped_official_files():
    from mask_adapter.model_zoo import config_root
    from mask_adapter.utils.benchmark_e2e import released_config_files

    files = released_config_files()
    assert sorted(files) == ["fcclip-L+adapter", "maftp-B+adapter"]
    assert files["fcclip-L+adapter"] == config_root() / (
        "mixed-mask-training/fc-clip/fcclip/fcclip_convnext_large_eval_ade20k.yaml"
    )
    assert all(path.is_file() for path in files.values())


def test_reference_variant_runs_the_official_style_pixel_and_transformer_decoders():
    from mask_adapter.modeling.ops import MSDeformAttn
    from mask_adapter.modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder
    from mask_adapter.utils.benchmark_e2e import _build

    config = REPO / "configs" / "tiny" / "fcclip_tiny.yaml"
    for variant, expected in (("reference", True), ("default", False)):
        modules = list(_build(config, variant, [], "cpu").modules())
        sampling = [m.reference_sampling for m in modules if isinstance(m, MSDeformAttn)]
        full = [m.full_attention_masks for m in modules if isinstance(m, MultiScaleMaskedTransformerDecoder)]
        assert sampling and set(sampling) == {expected}, variant
        assert full and set(full) == {expected}, variant
