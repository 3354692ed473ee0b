#!/usr/bin/env python
"""Upper-bound analysis: classify every ground-truth mask by crop, mask pooling and the adapter.

Launcher of :mod:`mask_adapter.apps.analyze_gt_masks` (same as ``python -m mask_adapter.apps.analyze_gt_masks``); ``--help`` lists the options.
"""

import sys

from mask_adapter.apps.analyze_gt_masks import command_line

if __name__ == "__main__":
    sys.exit(command_line())
