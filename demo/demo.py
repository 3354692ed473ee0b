"""Mask-Adapter demo on images or a video (``python demo/demo.py --help``); the program is mask_adapter.apps.demo."""

from mask_adapter.apps.demo import cli

if __name__ == "__main__":
    raise SystemExit(cli())
