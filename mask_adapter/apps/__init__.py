"""Command-line programs of the project, importable and testable; the files in ``tools/``, ``demo/`` and the
repository root are thin launchers of these (``python tools/X.py`` == ``python -m mask_adapter.apps.X``)."""
