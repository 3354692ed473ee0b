"""Command-line error handling shared by every entry point (demo, train_net.py, tools/, datasets/prepare_*.py).

A bad input (missing file, unknown config key, corrupt checkpoint, unwritable output folder, ...) ends the program
with ONE line ``error: <problem>; <fix>`` on stderr and exit code 1, without a traceback. ``--debug`` re-raises
the exception, so the traceback is shown. Programming errors (any other exception type) always show their
traceback: they are bugs, not bad input.

Usage in a script::

    parser = argparse.ArgumentParser(...)
    add_debug_flag(parser)
    ...
    if __name__ == "__main__":
        sys.exit(run_cli(main))      # main(argv) raises on bad input; run_cli turns that into one line + exit 1
"""

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "USER_ERRORS",
    "add_debug_flag",
    "add_memory_flag",
    "apply_memory_flag",
    "error_message",
    "run_cli",
]

# Exit code of a run stopped by bad input (argparse uses 2 for malformed command lines).
EXIT_BAD_INPUT = 1
# Exception types that signal bad input. The package raises them with one-line messages naming the fix.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    OSError,
    ImportError,
    FloatingPointError,
)


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--debug`` (show the full traceback of an error instead of one line) to ``parser``."""
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback instead of one line")
    return parser


def add_memory_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--release-freed-memory`` (glibc's default of returning large freed blocks to the kernel) to ``parser``;
    without it the program keeps freed memory for reuse (``mask_adapter.utils.memory.keep_freed_memory``)."""
    parser.add_argument(
        "--release-freed-memory",
        action="store_true",
        help="return freed memory to the system after each image (lower resident memory between images; slower "
        "CPU post-processing at full size, whose large tensors then page-fault afresh every time)",
    )
    return parser


def apply_memory_flag(argv: Sequence[str] | None = None) -> bool:
    """For a program's entry point: keep freed memory for reuse unless ``--release-freed-memory`` is among the
    arguments (default ``sys.argv[1:]``); True if the setting took effect. ``main(argv)`` functions, which are also
    called from Python, leave the process's allocator alone."""
    from .memory import keep_freed_memory

    args = sys.argv[1:] if argv is None else argv
    return False if "--release-freed-memory" in args else keep_freed_memory()


def error_message(error: BaseException) -> str:
    """The message of ``error`` as printed after ``error: `` (KeyError without its quotes; type name if empty).

    Our own messages put the problem and the fix on the first line; further lines (e.g. a bounded list of
    mismatched tensors) are kept, indented.
    """
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        text = error.args[0]
    else:
        text = str(error)
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return "\n".join([lines[0]] + ["  " + line.strip() for line in lines[1:]])


# Loggers that log an exception's traceback before re-raising it (detectron2's training loop).
_TRACEBACK_LOGGERS = ("detectron2.engine.train_loop",)


class _DropTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], USER_ERRORS):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def _no_logged_tracebacks() -> Iterator[None]:
    """While bad input is reported in one line, the loggers that re-raise keep their message but not the
    traceback of that error (bugs keep theirs)."""
    flt = _DropTraceback()
    loggers = [logging.getLogger(name) for name in _TRACEBACK_LOGGERS]
    for log in loggers:
        log.addFilter(flt)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(flt)


def run_cli(
    main: Callable[[Sequence[str] | None], Any],
    argv: Sequence[str] | None = None,
    *,
    debug: bool | None = None,
) -> int:
    """Run ``main(argv)`` as a program: bad input -> one ``error:`` line on stderr and exit code 1.

    Args:
        main: the entry point; raises one of ``USER_ERRORS`` on bad input; returns an exit code or anything else
            (taken as success).
        argv: arguments (default ``sys.argv[1:]``).
        debug: re-raise instead of printing one line; default: whether ``--debug`` is among the arguments.

    Returns:
        The exit code: ``main``'s int result, 0 for any other result, ``EXIT_BAD_INPUT`` on bad input,
        130 on Ctrl-C.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if debug is None:
        debug = "--debug" in args
    try:
        with contextlib.ExitStack() as stack:
            if not debug:
                stack.enter_context(_no_logged_tracebacks())
            result = main(args)
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {error_message(e)}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return 130
    return result if isinstance(result, int) else 0
