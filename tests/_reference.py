"""Where the official reference tables are: tests/data/reference/, or $MASK_ADAPTER_REFERENCE_DIR.

The conformance tests need them; a missing folder fails those tests with ``MISSING_MESSAGE`` (it is not a skip).
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_ENV = "MASK_ADAPTER_REFERENCE_DIR"
REFERENCE_DIR = Path(os.environ.get(REFERENCE_ENV) or REPO.parent / "shared" / "reference")
MISSING_MESSAGE = (
    f"reference folder {REFERENCE_DIR} not found: put the official reference tables there "
    f"(<repository>/../shared/reference) or set {REFERENCE_ENV} to their folder"
)
