"""Process allocator setting for CPU inference at full image size: keep freed memory for reuse.

glibc's ``malloc`` serves every request above its mmap threshold (adaptive, at most 32 MB on 64-bit) with a fresh
``mmap`` and gives it back to the kernel on ``free``. Post-processing at the evaluation size allocates several
Q×H×W tensors per image (250 mask maps at 672×896 are 600 MB each) and frees them again, so every such tensor
page-faults and zeroes all its pages afresh: at 672×896 the mask upsampling, sigmoid and panoptic merge spend
most of their time in the kernel instead of computing. ``keep_freed_memory()`` switches glibc to serve large
requests from its heap and to keep freed memory for the next request (``mallopt(M_MMAP_MAX, 0)``,
``mallopt(M_TRIM_THRESHOLD, huge)``): the same values, fewer page faults. The cost: the process keeps its
peak memory resident until it exits instead of returning freed memory between images.

It changes the whole process, so the library never calls it on import and the ``main(argv)`` functions (also
called from Python) do not either; the programs' entry points (demo, batch inference, benchmark evaluation,
benchmarks) call it unless ``--release-freed-memory`` is given. Without glibc
(macOS, Windows, musl) it does nothing and returns False.
"""

import ctypes
import logging
import platform

__all__ = ["keep_freed_memory"]

logger = logging.getLogger(__name__)

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes (an int)


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory in the process (glibc only).

    Returns:
        True if glibc accepted both settings; False elsewhere (nothing changed).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    if ok:
        logger.debug("malloc keeps freed memory for reuse (M_MMAP_MAX 0, M_TRIM_THRESHOLD %d)", _NEVER_TRIM)
    return ok
