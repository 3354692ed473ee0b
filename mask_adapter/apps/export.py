"""Export the adapter path (Mask-Adapter head + mask pooling + class logits of a fixed vocabulary) to ONNX or TorchScript.

Usage:
    python tools/export.py --config-file CONFIG.yaml --weights MODEL.pth --format onnx|torchscript \\
        [--output FILE] [--vocabulary "cat;dog,puppy;grass" | KEY | FILE] [--opset 17] [--no-check] [--debug] \\
        [KEY VALUE ...]

The graph takes the CLIP trunk feature ``clip_dense`` (B, C_raw, h, w) and binary ``masks`` (B, N, H, W) with
B, N, h, w, H and W dynamic, and returns ``logits`` (B, N, C + 1) and ``mask_embeddings`` (B, N, D); see
``mask_adapter/export.py`` and GETTING_STARTED.md ("Export") for what is and is not exported. The vocabulary
defaults to the classes of the config's first test dataset. After writing, the file is run once (onnxruntime or
torch.jit.load) and compared with PyTorch (``--no-check`` skips this). Bad arguments end with one ``error:`` line
(``--debug`` shows the traceback).
"""

import argparse
import logging
import os
import sys
import warnings

__all__ = ["command_line", "main", "parse_args"]

logger = logging.getLogger("mask_adapter.export")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--format`` is checked in :func:`main` for a one-line error)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="model config (YAML)")
    parser.add_argument("--weights", required=True, help="checkpoint file (train_net.py output or released model)")
    parser.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    parser.add_argument("--output", default="", help="output file; default: OUTPUT_DIR/export/mask_adapter.{onnx,pt}")
    parser.add_argument(
        "--vocabulary",
        default=None,
        help="classes baked into the export: inline 'cat;dog,puppy;grass', a shipped vocabulary key or an "
        "'id:name,synonym' file; default: the config's first test dataset",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    parser.add_argument("--no-check", action="store_true", help="skip running the exported file once")
    parser.add_argument("--trust-pickle", action="store_true", help="allow checkpoints with pickled objects")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


def _vocabulary(spec: str | None) -> list[str] | None:
    """Class strings of ``--vocabulary`` (None: the model's test vocabulary)."""
    if spec is None:
        return None
    from mask_adapter.data.vocabulary import VOCABULARY_KEYS, load_vocabulary, parse_inline_vocabulary

    if spec in VOCABULARY_KEYS or os.path.isfile(spec):
        return [c.strip() for c in load_vocabulary(spec)]
    return parse_inline_vocabulary(spec)


def run(args: argparse.Namespace) -> str:
    """Build the model, load ``--weights``, export and check; returns the written file."""
    from mask_adapter.export import EXPORT_FORMATS

    if args.format not in EXPORT_FORMATS:
        raise ValueError(f"unknown --format {args.format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if not os.path.isfile(args.weights):
        raise FileNotFoundError(
            f"weights file not found: {args.weights}; pass a checkpoint saved by train_net.py or a downloaded "
            "released model (README, model zoo)"
        )
    if not os.path.isfile(args.config_file):
        raise FileNotFoundError(f"config file not found: {args.config_file}")
    class_names = _vocabulary(args.vocabulary)

    import torch
    from detectron2.modeling import build_model

    from mask_adapter.checkpoint import MaskAdapterCheckpointer
    from mask_adapter.config import build_config
    from mask_adapter.export import check_export, export_adapter

    cfg = build_config(args.config_file, list(args.opts) + ["MODEL.DEVICE", "cpu"])
    output = args.output or os.path.join(cfg.OUTPUT_DIR, "export", "mask_adapter" + SUFFIXES[args.format])
    torch.manual_seed(0)
    model = build_model(cfg)
    MaskAdapterCheckpointer(model, allow_pickle=args.trust_pickle).load(args.weights)
    path, module = export_adapter(model.eval(), output, args.format, class_names, args.opset)
    if not args.no_check:
        diff = check_export(module, path, args.format)
        logger.info("exported file matches PyTorch: max |difference| %.2e (N = 1, 7)", diff)
        if diff > 1e-4:
            raise RuntimeError(f"the exported file differs from PyTorch by {diff:.2e} (> 1e-4): please report it")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; returns the exit code: 0, 1 for a refused input or an output that cannot be written
    (one "error: ..." line; the traceback with --debug), 2 for a malformed command line."""
    from mask_adapter.utils.cli import run_cli

    def export(arguments: list[str]) -> int:
        print(run(parse_args(arguments)))
        return 0

    return run_cli(export, argv)


def command_line(argv: list[str] | None = None) -> int:
    """The program: INFO logging on stderr, then :func:`main`; returns the exit code."""
    # fvcore (imported by detectron2) scripts a function at import; the deprecation notice is not for users.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return main(argv)


if __name__ == "__main__":
    sys.exit(command_line())
