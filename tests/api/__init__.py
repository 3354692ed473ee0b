"""Tests of the Python API (mask_adapter.Segmenter, mask_adapter.api)."""
