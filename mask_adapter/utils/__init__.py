"""Small helpers shared by the package: atomic output files, command-line errors, progress, registries."""

import os

__all__ = ["PathLike"]

# A file or folder argument: a string or any ``os.PathLike`` (``pathlib.Path``).
PathLike = str | os.PathLike
