"""Tests of the evaluation part of the package."""
