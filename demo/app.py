"""Mask-Adapter in the browser (``python demo/app.py --help``); the program is mask_adapter.apps.web."""

from mask_adapter.apps.web import cli

if __name__ == "__main__":
    raise SystemExit(cli())
