"""Tests of the engine part of the package."""
