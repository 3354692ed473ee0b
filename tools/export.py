#!/usr/bin/env python
"""Export the adapter path (head + mask pooling + class logits of a fixed vocabulary) to ONNX or TorchScript.

    python tools/export.py --config-file CONFIG.yaml --weights MODEL.pth --format onnx|torchscript [--output FILE]

Launcher of :mod:`mask_adapter.apps.export` (same as ``python -m mask_adapter.apps.export``); ``--help`` lists the
options.
"""

import sys

from mask_adapter.apps.export import command_line

if __name__ == "__main__":
    sys.exit(command_line())
