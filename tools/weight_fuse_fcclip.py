"""Fuse a stage-1 Mask-Adapter checkpoint with the FC-CLIP base checkpoint (250 queries, detectron2 dict).

Official CLI:
    python tools/weight_fuse_fcclip.py \\
        --model_first_phase_path P1.pth --model_sem_seg_path fcclip_cocopan.pth --output_path OUT.pth
See mask_adapter/checkpoint/fusion.py for what is copied and what is refused.
"""

import sys

from mask_adapter.checkpoint.fusion import main

if __name__ == "__main__":
    sys.exit(main(generator="fcclip"))
