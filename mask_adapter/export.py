"""Export of the adapter path for a fixed vocabulary to ONNX and TorchScript.

What is exported (:class:`AdapterClassifier`): the dense projection of the CLIP trunk feature, the Mask-Adapter
head, the activation-map pooling through the frozen CLIP heads and the cosine class logits against the text
embeddings of one vocabulary (with the void row and the clamped CLIP logit scale baked in as constants; MAFT+
models also carry their CDT). What is not: the CLIP image backbone, the text tower (the vocabulary is fixed at
export time), the mask generator (pixel decoder with deformable attention, transformer decoder), SAM, the
geometric ensemble with the generator's in-vocabulary logits and the Mask2Former post-processing.

Shapes:
    B   images;  N masks per image (dynamic);  H×W mask size (any)
    C_raw  channels of ``clip_vis_dense``, the CLIP trunk output (1536 ConvNeXt-L, 1024 ConvNeXt-B)
    h×w the CLIP feature grid (stride 32 of the padded image)
    D   CLIP embedding width;  C classes of the exported vocabulary (logits carry C + 1 columns, void last)

Graph inputs:  ``clip_dense`` (B, C_raw, h, w) float32;  ``masks`` (B, N, H, W) float32 in {0, 1}.
Graph outputs: ``logits`` (B, N, C + 1);  ``mask_embeddings`` (B, N, D).
"""

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .modeling.adapter.pooling import classification_logits, embeddings_from_activation_maps
from .modeling.backbone.clip import dense_projection, project_pooled
from .utils.atomic import atomic_save

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "AdapterClassifier",
    "example_inputs",
    "export_adapter",
    "export_onnx",
    "export_torchscript",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
INPUT_NAMES = ("clip_dense", "masks")
OUTPUT_NAMES = ("logits", "mask_embeddings")
# Symbolic names of the dynamic axes of the ONNX graph.
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "clip_dense": {0: "batch", 2: "grid_height", 3: "grid_width"},
    "masks": {0: "batch", 1: "num_masks", 2: "mask_height", 3: "mask_width"},
    "logits": {0: "batch", 1: "num_masks"},
    "mask_embeddings": {0: "batch", 1: "num_masks"},
}
DEFAULT_OPSET = 17


class AdapterClassifier(nn.Module):
    """(CLIP trunk feature, binary masks) -> class logits for a fixed vocabulary, built from the model's modules.

    The computation is the model's adapter path (``OpenVocabMaskFormer.out_vocab_logits`` after binarisation)
    through the same functions: :func:`dense_projection`, ``MaskAdapterHead.forward_traceable``,
    :func:`embeddings_from_activation_maps` and :func:`classification_logits`.

    Args:
        adapter: the Mask-Adapter head (needs ``forward_traceable`` and ``num_output_maps``).
        trunk_head: CLIP ``visual.trunk.head``; head: CLIP ``visual.head`` (shared with the model, frozen).
        text: (T + 1, D) L2-normalised text rows of the vocabulary, void last.
        logit_scale: CLIP ``logit_scale`` (log space, scalar).
        synonyms_per_class: synonyms per class (sum T).
        dense_projection: ``pixelwise`` or ``maftp_scrambled`` (the model's adapter-input projection).
        cdt: MAFT+'s content-dependent transfer applied to the text rows per image, or None.
        class_names: the vocabulary ("name,synonym,..." per class), kept for the export metadata.
    """

    def __init__(
        self,
        *,
        adapter: nn.Module,
        trunk_head: nn.Module,
        head: nn.Module,
        text: Tensor,
        logit_scale: Tensor,
        synonyms_per_class: Sequence[int],
        dense_projection: str = "pixelwise",
        cdt: nn.Module | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if sum(synonyms_per_class) + 1 != text.shape[0]:
            raise ValueError(
                f"text has {text.shape[0]} rows but synonyms_per_class sums to {sum(synonyms_per_class)} (+1 void row expected)"
            )
        self.adapter = adapter
        self.trunk_head = trunk_head
        self.head = head
        self.cdt = cdt
        self.register_buffer("text", text.detach().clone())
        self.register_buffer("logit_scale", logit_scale.detach().clone().reshape(()))
        self.synonyms_per_class: tuple[int, ...] = tuple(int(n) for n in synonyms_per_class)
        self.dense_projection = dense_projection
        self.class_names: tuple[str, ...] = tuple(class_names)

    @classmethod
    def from_model(cls, model: nn.Module, class_names: Sequence[str] | None = None) -> "AdapterClassifier":
        """Wrap a built meta-architecture (``OpenVocabMaskFormer``) for export.

        Args:
            model: the model with its weights loaded.
            class_names: the vocabulary to bake in; default: the model's test vocabulary.

        Returns:
            The wrapper in eval mode; it shares the model's adapter and CLIP heads (no copy).
        """
        from .modeling.meta_arch.vocabulary import Vocabulary

        if getattr(model, "out_vocab_classifier", "adapter") != "adapter" or not hasattr(model, "mask_adapter"):
            raise ValueError(
                "the model has no mask adapter (MODEL.MASK_ADAPTER.OUT_VOCAB_CLASSIFIER is 'mask_pooling'): "
                "nothing to export; use a config with OUT_VOCAB_CLASSIFIER 'adapter'"
            )
        if class_names is not None:
            vocabulary = Vocabulary.from_names(list(class_names))
        else:
            vocabulary = model.test_vocabulary
            if vocabulary is None:
                raise ValueError(
                    "the model has no test vocabulary: pass a vocabulary (tools/export.py --vocabulary) or set "
                    "DATASETS.TEST to a registered dataset"
                )
        with torch.no_grad():
            text, synonyms_per_class = model.text_rows(vocabulary)
        visual = model.backbone.clip_model.visual
        return cls(
            adapter=model.mask_adapter,
            trunk_head=visual.trunk.head,
            head=visual.head,
            text=text,
            logit_scale=model.backbone.logit_scale,
            synonyms_per_class=synonyms_per_class,
            dense_projection=model.dense_projection,
            cdt=getattr(model, "cdt", None),
            class_names=vocabulary.class_names,
        ).eval()

    def _project(self, pooled: Tensor) -> Tensor:
        return project_pooled(self.trunk_head, self.head, pooled)

    def forward(self, clip_dense: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Classify N binary masks per image.

        Args:
            clip_dense: (B, C_raw, h, w) ``clip_vis_dense`` of the CLIP backbone.
            masks: (B, N, H, W) binary masks (N >= 1), any resolution.

        Returns:
            logits (B, N, C + 1), void last; mask embeddings (B, N, D).
        """
        dense = dense_projection(self.trunk_head, self.head, clip_dense, self.dense_projection)
        maps = self.adapter.forward_traceable(dense, masks)
        emb = embeddings_from_activation_maps(maps, clip_dense, self._project, self.adapter.num_output_maps)
        text = self.text if self.cdt is None else self.cdt(dense, self.text)
        return classification_logits(emb, text, self.logit_scale, self.synonyms_per_class), emb

    def metadata(self) -> dict[str, Any]:
        """What a user of the exported file needs: names and shapes of inputs/outputs and the vocabulary."""
        return {
            "inputs": {"clip_dense": "(B, C_raw, h, w) float32", "masks": "(B, N, H, W) float32 in {0, 1}"},
            "outputs": {"logits": "(B, N, C + 1), void last", "mask_embeddings": "(B, N, D)"},
            "clip_dense_channels": int(self.trunk_head.norm.weight.shape[0]),
            "embed_dim": int(self.text.shape[1]),
            "dense_projection": self.dense_projection,
            "cdt": self.cdt is not None,
            "synonyms_per_class": list(self.synonyms_per_class),
            "class_names": list(self.class_names),
        }


def example_inputs(
    module: AdapterClassifier, num_masks: int = 3, grid: tuple[int, int] = (4, 5), mask_stride: int = 8
) -> tuple[Tensor, Tensor]:
    """Seeded random inputs for tracing and checks.

    Args:
        module: the wrapper (its CLIP heads give C_raw).
        num_masks: N.
        grid: (h, w).
        mask_stride: masks are (mask_stride·h, mask_stride·w) (8: the generator's stride-4 masks).

    Returns:
        clip_dense (1, C_raw, h, w), masks (1, N, H, W) float 0/1.
    """
    g = torch.Generator().manual_seed(0)
    h, w = grid
    c_raw = module.metadata()["clip_dense_channels"]
    device = module.text.device
    clip_dense = torch.randn(1, c_raw, h, w, generator=g).to(device)
    masks = (torch.rand(1, num_masks, mask_stride * h, mask_stride * w, generator=g) > 0.5).float().to(device)
    return clip_dense, masks


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence the tracer's notes on traced Python values (the graph is shape-generic: the tests check N, B, h, w)
    and torch's deprecation notices for TorchScript and the TorchScript-based ONNX exporter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def export_onnx(module: AdapterClassifier, path: str, opset: int = DEFAULT_OPSET) -> str:
    """Write ``module`` as an ONNX graph with dynamic B, N, h, w and mask size (TorchScript-based exporter).

    Args:
        module: the wrapper.
        path: output ``.onnx`` file.
        opset: ONNX opset version.

    Returns:
        ``path``.
    """
    import onnx

    buffer = io.BytesIO()  # exported in memory (the adapter path is small), then written atomically
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(
            module,
            example_inputs(module),
            buffer,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=DYNAMIC_AXES,
            opset_version=opset,
            dynamo=False,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    meta = graph.metadata_props.add()
    meta.key, meta.value = "mask_adapter", json.dumps(module.metadata())
    return atomic_save(path, lambda f: f.write(graph.SerializeToString()))


def export_torchscript(module: AdapterClassifier, path: str) -> str:
    """Write ``module`` as a traced TorchScript file; the metadata travels as the extra file ``metadata.json``.

    Args:
        module: the wrapper.
        path: output ``.pt`` file.

    Returns:
        ``path``.
    """
    buffer = io.BytesIO()  # torch.jit.save onto a full disk aborts the process: write the bytes ourselves
    with _quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(module, example_inputs(module), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={"metadata.json": json.dumps(module.metadata())})
    return atomic_save(path, lambda f: f.write(buffer.getvalue()))


def export_adapter(
    model: nn.Module,
    path: str,
    fmt: str,
    class_names: Sequence[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> tuple[str, AdapterClassifier]:
    """Export the adapter path of ``model`` for one vocabulary.

    Args:
        model: a built meta-architecture with weights loaded (moved to CPU float32 for export).
        path: output file (its folder is created).
        fmt: ``onnx`` or ``torchscript``.
        class_names: vocabulary to bake in (default: the model's test vocabulary).
        opset: ONNX opset.

    Returns:
        (path, the exported wrapper).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    model = model.to("cpu").float().eval()
    module = AdapterClassifier.from_model(model, class_names)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "onnx":
        export_onnx(module, path, opset)
    else:
        export_torchscript(module, path)
    logger.info("exported the adapter path (%d classes) to %s", len(module.class_names), path)
    return path, module


def check_export(module: AdapterClassifier, path: str, fmt: str, mask_counts: Sequence[int] = (1, 7)) -> float:
    """Largest |difference| between the exported file (onnxruntime / torch.jit.load) and ``module``.

    Args:
        module: the wrapper that was exported.
        path: the exported file.
        fmt: ``onnx`` or ``torchscript``.
        mask_counts: the values of N to compare at.

    Returns:
        The max abs difference over both outputs and every N.
    """
    run = _runner(path, fmt)
    worst = 0.0
    for n in mask_counts:
        clip_dense, masks = example_inputs(module, num_masks=n, grid=(3, 4))
        with torch.no_grad():
            expected = module(clip_dense, masks)
        got = run(clip_dense, masks)
        worst = max([worst] + [float((torch.as_tensor(a) - b).abs().max()) for a, b in zip(got, expected)])
    return worst


def _runner(path: str, fmt: str) -> Callable[[Tensor, Tensor], list[Any]]:
    """A function running the exported file on (clip_dense, masks) and returning its two outputs."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

        def run_onnx(clip_dense: Tensor, masks: Tensor) -> list[Any]:
            return session.run(list(OUTPUT_NAMES), {"clip_dense": clip_dense.numpy(), "masks": masks.numpy()})

        return run_onnx
    with _quiet_tracing():
        loaded = torch.jit.load(path, map_location="cpu")

    def run_script(clip_dense: Tensor, masks: Tensor) -> list[Any]:
        with torch.no_grad():
            return list(loaded(clip_dense, masks))

    return run_script
