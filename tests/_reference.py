"""Where the official reference tables are: ``tests/assets/reference`` (shipped with the repository).

The conformance tests need them; a missing folder fails those tests with ``MISSING_MESSAGE`` (it is not a skip).
"""

from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "assets" / "reference"
MISSING_MESSAGE = f"reference folder {REFERENCE_DIR} not found: the repository ships it; restore it with git checkout"
