"""Fuse a stage-1 Mask-Adapter checkpoint with the FC-CLIP base checkpoint (250 queries, detectron2 dict).

Official CLI:
    python tools/weight_fuse_fcclip.py \\
        --model_first_phase_path P1.pth --model_sem_seg_path fcclip_cocopan.pth --output_path OUT.pth
See tools/_fusion.py for what is copied and what is refused.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/ is not a package

from _fusion import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(generator="fcclip"))
