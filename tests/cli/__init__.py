"""Tests of the cli part of the package."""
