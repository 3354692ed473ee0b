"""Fuse a stage-1 Mask-Adapter checkpoint with a base generator checkpoint; --generator fcclip|maftp.

The official README documents this name, but the file is missing from the official tree. Usage:
    python tools/weight_fuse.py --generator fcclip \\
        --model_first_phase_path P1.pth --model_sem_seg_path BASE.pth --output_path OUT.pth
See mask_adapter/checkpoint/fusion.py for what is copied and what is refused.
"""

import sys

from mask_adapter.checkpoint.fusion import main

if __name__ == "__main__":
    sys.exit(main(generator=None))
