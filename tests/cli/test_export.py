"""Export of the adapter path (mask_adapter/export.py, tools/export.py): ONNX in onnxruntime and TorchScript match
PyTorch for N in {1, 7, 250}, the wrapper equals the model's own adapter path, the CLI end to end and its errors."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mask_adapter.apps import export as export_cli
from mask_adapter.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    AdapterClassifier,
    check_export,
    example_inputs,
    export_adapter,
)
from mask_adapter.modeling.adapter.head import MaskAdapterHead
from mask_adapter.modeling.meta_arch.base import ForwardState
from mask_adapter.modeling.meta_arch.vocabulary import Vocabulary
from tests import REPO as REPO_PATH
from tests._builders import tiny_model

REPO = str(REPO_PATH)
TINY = {name: os.path.join(REPO, "configs", "tiny", f"{name}.yaml") for name in ("fcclip_tiny", "maftp_tiny")}
VOCAB = ["cat,kitten", "dog", "grass,lawn"]
TOL = 1e-4
# torch 2.14 marks TorchScript as deprecated; loading the exported file is what this module tests.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Give the adapter (and the CDT) weights far from their near-identity initialisation, so every layer counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("mask_adapter.", "cdt.", "void_embedding.")):
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 1 else 0.2))


def _tiny_model(name: str = "fcclip_tiny", seed: int = 3) -> torch.nn.Module:
    model = tiny_model(name, seed=0, classes=None)
    _perturb(model, seed)
    return model


@pytest.fixture(scope="module")
def wrapper() -> AdapterClassifier:
    return AdapterClassifier.from_model(_tiny_model(), VOCAB)


@pytest.fixture(scope="module")
def onnx_file(wrapper, tmp_path_factory) -> str:
    """The tiny FC-CLIP adapter path exported once for the ONNX tests (same weights as ``wrapper``)."""
    path = str(tmp_path_factory.mktemp("export") / "adapter.onnx")
    return export_adapter(_tiny_model(), path, "onnx", VOCAB)[0]


def _inputs(c_raw: int, n: int, grid=(3, 4), mask_size=(24, 30), batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clip_dense = torch.randn(batch, c_raw, *grid, generator=g)
    masks = (torch.rand(batch, n, *mask_size, generator=g) > 0.6).float()
    return clip_dense, masks


def _max_diff(got, expected) -> float:
    return max(float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in zip(got, expected))


# ------------------------------------------------------------------------------------------ traceable path
@pytest.mark.parametrize("chunk", [0, 2])
def test_forward_traceable_equals_forward(chunk):
    head = MaskAdapterHead(clip_dim=24, num_channels=16, num_output_maps=4).eval()
    with torch.no_grad():
        for block in (head.cnext1, head.cnext2, head.cnext3):
            block.gamma.fill_(1.0)
    feature = torch.randn(2, 24, 3, 5)
    masks = torch.rand(2, 5, 19, 37) > 0.5  # bool, odd size: resized to (4h, 4w) inside
    with torch.no_grad():
        expected = head(feature, masks, chunk)
        got = head.forward_traceable(feature, masks)
    assert got.shape == (2, 5 * 4, 3, 5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # image-major order: mask n of image b is channels n*K .. n*K+K-1 of row b
    single = head.forward_traceable(feature[1:], masks[1:, 3:4])
    torch.testing.assert_close(got[1:, 12:16], single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", ["fcclip_tiny", "maftp_tiny"])
def test_wrapper_equals_model_adapter_path(config):
    model = _tiny_model(config)
    module = AdapterClassifier.from_model(model, VOCAB)
    assert (module.cdt is not None) == (config == "maftp_tiny")
    clip_dense, masks = _inputs(model.backbone.clip_dense_channels, n=6, batch=2)
    with torch.no_grad():
        vocabulary = Vocabulary.from_names(VOCAB)
        text, synonyms_per_class = model.text_rows(vocabulary)
        state = ForwardState(
            images=None,
            features={},
            clip_dense=clip_dense,
            dense=model.backbone.dense_projection(clip_dense, model.dense_projection),
            text=text,
            synonyms_per_class=synonyms_per_class,
            vocabulary=vocabulary,
        )
        state.adapter_text = model.adapter_text(state)
        # mask logits whose sigmoid binarises (at MASK_THRESHOLD) exactly to ``masks``
        expected = model.out_vocab_logits(state, masks * 20.0 - 10.0)
        logits, embeddings = module(clip_dense, masks)
    assert logits.shape == (2, 6, len(VOCAB) + 1)
    assert embeddings.shape == (2, 6, model.backbone.embed_dim)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert logits.std() > 0.1  # perturbed weights: the logits are not a constant


def test_wrapper_needs_an_adapter():
    model = tiny_model("fcclip_tiny", "MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER", "mask_pooling", classes=None)
    with pytest.raises(ValueError, match="the model has no mask adapter"):
        AdapterClassifier.from_model(model, VOCAB)


# ------------------------------------------------------------------------------------------ exported files
def test_onnx_matches_pytorch_for_dynamic_n(wrapper, onnx_file):
    path = onnx_file
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.graph.output] == list(OUTPUT_NAMES)
    assert graph.graph.input[1].type.tensor_type.shape.dim[1].dim_param == "num_masks"
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["mask_adapter"])
    assert meta["class_names"] == VOCAB and meta["synonyms_per_class"] == [2, 1, 2]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    c_raw = meta["clip_dense_channels"]
    for n in (1, 7, 250):
        clip_dense, masks = _inputs(c_raw, n, seed=n)
        with torch.no_grad():
            expected = wrapper(clip_dense, masks)
        got = session.run(list(OUTPUT_NAMES), {"clip_dense": clip_dense.numpy(), "masks": masks.numpy()})
        assert got[0].shape == (1, n, len(VOCAB) + 1)
        assert got[1].shape == (1, n, wrapper.text.shape[1])
        assert _max_diff(got, expected) <= TOL, n


def test_onnx_dynamic_batch_and_grid(wrapper, onnx_file):
    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    clip_dense, masks = _inputs(wrapper.metadata()["clip_dense_channels"], 5, grid=(6, 2), mask_size=(48, 16), batch=2)
    with torch.no_grad():
        expected = wrapper(clip_dense, masks)
    got = session.run(None, {"clip_dense": clip_dense.numpy(), "masks": masks.numpy()})
    assert got[0].shape == (2, 5, len(VOCAB) + 1)
    assert _max_diff(got, expected) <= TOL


def test_torchscript_matches_pytorch_for_dynamic_n(wrapper, tmp_path):
    path, _ = export_adapter(_tiny_model(), str(tmp_path / "adapter.pt"), "torchscript", VOCAB)
    extra = {"metadata.json": ""}
    loaded = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    assert json.loads(extra["metadata.json"])["class_names"] == VOCAB
    c_raw = wrapper.metadata()["clip_dense_channels"]
    for n in (1, 7, 250):
        clip_dense, masks = _inputs(c_raw, n, seed=n)
        with torch.no_grad():
            expected = wrapper(clip_dense, masks)
            got = loaded(clip_dense, masks)
        assert got[0].shape == (1, n, len(VOCAB) + 1)
        assert _max_diff([g.numpy() for g in got], expected) <= TOL, n


def test_check_export_detects_a_different_file(wrapper, onnx_file):
    assert check_export(wrapper, onnx_file, "onnx") <= TOL
    other = AdapterClassifier.from_model(_tiny_model(seed=99), VOCAB)
    assert check_export(other, onnx_file, "onnx") > 1e-2


def test_maftp_onnx_with_cdt_matches(tmp_path):
    path, module = export_adapter(_tiny_model("maftp_tiny"), str(tmp_path / "maftp.onnx"), "onnx", VOCAB)
    assert module.cdt is not None and module.dense_projection == "maftp_scrambled"
    assert check_export(module, path, "onnx", mask_counts=(1, 7, 250)) <= TOL


def test_example_inputs_shapes(wrapper):
    clip_dense, masks = example_inputs(wrapper, num_masks=4, grid=(2, 3))
    assert clip_dense.shape == (1, wrapper.metadata()["clip_dense_channels"], 2, 3)
    assert masks.shape == (1, 4, 16, 24)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}


# ------------------------------------------------------------------------------------------ command line
def _checkpoint(tmp_path) -> str:
    path = str(tmp_path / "tiny.pth")
    torch.save({"model": _tiny_model(seed=11).state_dict()}, path)
    return path


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--format", "tflite"], "error: unknown --format 'tflite'; choose one of onnx, torchscript"),
        (["--weights", "/nonexistent/model.pth"], "error: weights file not found: /nonexistent/model.pth; "),
    ],
)
def test_cli_bad_arguments_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "model.pth").write_bytes(b"")  # never read: the arguments are checked before the model is built
    base = ["--config-file", TINY["fcclip_tiny"], "--weights", str(tmp_path / "model.pth")]
    code = export_cli.main(base + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith(message), err


def test_cli_bad_vocabulary_one_line(tmp_path, capsys):
    (tmp_path / "model.pth").write_bytes(b"")
    argv = ["--config-file", TINY["fcclip_tiny"], "--weights", str(tmp_path / "model.pth"), "--vocabulary", "cat;;dog"]
    assert export_cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: Class 2 of the inline vocabulary 'cat;;dog' is empty; remove the extra ';'"]


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    weights = _checkpoint(tmp_path)
    out = tmp_path / "cli.onnx"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "export.py"),
        "--config-file",
        TINY["fcclip_tiny"],
        "--weights",
        weights,
        "--format",
        "onnx",
        "--output",
        str(out),
        "--vocabulary",
        ";".join(VOCAB),
    ]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert "exported file matches PyTorch" in proc.stderr
    # the file holds the checkpoint's weights: a model built with other weights and then loaded gives the same logits
    reference = AdapterClassifier.from_model(_tiny_model(seed=11), VOCAB)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    clip_dense, masks = _inputs(reference.metadata()["clip_dense_channels"], 7)
    with torch.no_grad():
        expected = reference(clip_dense, masks)
    assert _max_diff(session.run(None, {"clip_dense": clip_dense.numpy(), "masks": masks.numpy()}), expected) <= TOL
