"""Fuse a stage-1 Mask-Adapter checkpoint with a MAFT+ base checkpoint (100 queries, flat state dict).

Official CLI:
    python tools/weight_fuse_maftp.py \\
        --model_first_phase_path P1.pth --model_sem_seg_path maftp_l.pth --output_path OUT.pth
See mask_adapter/checkpoint/fusion.py for what is copied and what is refused.
"""

import sys

from mask_adapter.checkpoint.fusion import main

if __name__ == "__main__":
    sys.exit(main(generator="maftp"))
