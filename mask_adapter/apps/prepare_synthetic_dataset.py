"""Write the tiny synthetic COCO-panoptic "shapes" dataset used by tests and smoke training.

Usage: python tools/prepare_synthetic_dataset.py [--root DIR] [--n-train 16] [--n-val 4] [--min-size 96]
[--max-size 160] [--seed 0]. The splits are registered as ``synthetic_shapes_panoptic_{train,val}`` under
``$DETECTRON2_DATASETS/synthetic_shapes`` (see mask_adapter/data/synthetic.py for the layout).
"""

import argparse
import logging
import os
import sys

from mask_adapter.data.synthetic import make_synthetic_dataset

__all__ = ["command_line", "make_synthetic_dataset", "main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"), help="dataset root")
    parser.add_argument("--n-train", type=int, default=16)
    parser.add_argument("--n-val", type=int, default=4)
    parser.add_argument("--min-size", type=int, default=96)
    parser.add_argument("--max-size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = make_synthetic_dataset(args.root, args.n_train, args.n_val, (args.min_size, args.max_size), args.seed)
    logging.getLogger(__name__).info("synthetic shapes dataset written to %s", out["root"])
    return 0


def command_line(argv: list[str] | None = None) -> int:
    """The program: INFO logging, then :func:`main`; returns the exit code."""
    logging.basicConfig(level=logging.INFO)
    return main(argv)


if __name__ == "__main__":
    sys.exit(command_line())
