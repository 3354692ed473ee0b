"""The tiny random SAM shared by the demo and SAM-path tests (defined in the package for the demos' use too)."""

from mask_adapter.modeling.tiny_sam import build_tiny_sam  # noqa: F401
