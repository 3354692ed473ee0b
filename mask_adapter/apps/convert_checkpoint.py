"""Convert a checkpoint between torch (.pth) and safetensors, keeping the model state dict only.

Usage:
    python tools/convert_checkpoint.py IN.pth OUT.safetensors      # released, fused, trained or MAFT+ flat files
    python tools/convert_checkpoint.py IN.safetensors OUT.pth

The output holds every tensor of the model state dict under its original key (tensors that share memory are
written as copies); the .safetensors metadata records the source file name and a fused file's fusion marker.
Optimizer / scheduler state and other entries are dropped (listed in the log). Every tool, the demo and
train_net.py load .safetensors files like .pth ones (MODEL.WEIGHTS, --weights).
"""

import argparse
import logging
import sys
from collections.abc import Sequence

from mask_adapter.checkpoint import convert_checkpoint
from mask_adapter.utils.cli import run_cli

logger = logging.getLogger("convert_checkpoint")


def build_parser() -> argparse.ArgumentParser:
    description, epilog = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", help="checkpoint to read (.pth / .pt torch file, or .safetensors)")
    p.add_argument("output", help="file to write: *.safetensors or *.pth")
    p.add_argument(
        "--trust-pickle", action="store_true", help="allow inputs with pickled objects (only files you trust)"
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Returns:
        0 on success; 1 on a refused input or an output that cannot be written (one "error: ..." line on stderr,
        the traceback with --debug); 2 for a malformed command line.
    """
    logging.basicConfig(level=logging.INFO, format="[convert_checkpoint] %(message)s")

    def convert(arguments: Sequence[str]) -> int:
        args = build_parser().parse_args(arguments)
        result = convert_checkpoint(args.input, args.output, allow_pickle=args.trust_pickle)
        logger.info("wrote %s: %d tensors", args.output, result["tensors"])
        if result["dropped"]:
            logger.info("not written (not part of the model state dict): %s", ", ".join(result["dropped"]))
        return 0

    return run_cli(convert, argv)


if __name__ == "__main__":
    sys.exit(main())
