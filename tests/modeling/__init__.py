"""Tests of the modeling part of the package."""
