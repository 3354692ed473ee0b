#!/usr/bin/env python
"""Convert a checkpoint between torch (.pth) and safetensors, keeping the model state dict only.

    python tools/convert_checkpoint.py IN.pth OUT.safetensors
    python tools/convert_checkpoint.py IN.safetensors OUT.pth

Launcher of :mod:`mask_adapter.apps.convert_checkpoint` (same as ``python -m mask_adapter.apps.convert_checkpoint``).
"""

import sys

from mask_adapter.apps.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
