#!/usr/bin/env python
"""Speed and memory of inference: a thin command line over ``mask_adapter.utils.benchmark`` (see its docstring).

Usage: python tools/benchmark.py {adapter,e2e,text,gpu-check,stages,infer} [options]   (``--help`` lists them)
"""

import sys

from mask_adapter.utils.benchmark import cli

if __name__ == "__main__":
    sys.exit(cli())
