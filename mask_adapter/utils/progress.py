"""Progress of long jobs: a tqdm bar with ETA on a terminal, periodic log lines otherwise, nothing when quiet.

Used by dataset preparation, evaluation over a dataset, text-embedding computation of large vocabularies and the
demo over many images or a video. ``--quiet`` on the command lines calls :func:`set_quiet` (or
:func:`quiet_progress`), which silences every progress report of the process; a job may also pass ``quiet=True``.
"""

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TextIO, TypeVar

from tqdm import tqdm

__all__ = ["Progress", "eval_progress", "progress", "quiet_progress", "set_quiet", "is_quiet"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (True) or restore (False) the progress reports of the whole process."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """Whether progress reports are silenced process-wide."""
    return _QUIET


@contextlib.contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """Within the block, progress reports are silenced (``quiet=True``) or enabled; the previous state returns."""
    previous = _QUIET
    set_quiet(quiet)
    try:
        yield
    finally:
        set_quiet(previous)


class Progress(Generic[T]):
    """An iterable reporting its progress; ``len()`` works when the total is known (detectron2 loaders need it).

    Args: as :func:`progress`.
    """

    def __init__(
        self,
        iterable: Iterable[T],
        desc: str = "",
        total: int | None = None,
        *,
        quiet: bool | None = None,
        unit: str = "it",
        min_total: int = 0,
        log_lines: bool = True,
        log_fraction: float = 0.1,
        log_seconds: float = 30.0,
        stream: TextIO | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, NotImplementedError):  # generators, iterable-style loaders
                total = None
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.quiet = quiet
        self.unit = unit
        self.min_total = min_total
        self.log_lines = log_lines
        self.log_fraction = log_fraction
        self.log_seconds = log_seconds
        self.stream = stream
        self.log = log or logger

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"progress {self.desc!r} has no known total")
        return self.total

    def mode(self) -> str:
        """``"quiet"``, ``"bar"`` (tqdm, the stream is a terminal) or ``"log"`` (periodic log lines)."""
        quiet = _QUIET if self.quiet is None else self.quiet
        if quiet or (self.total is not None and self.total < self.min_total):
            return "quiet"
        stream = self.stream if self.stream is not None else sys.stderr
        isatty = getattr(stream, "isatty", None)
        if isatty is not None and isatty():
            return "bar"
        return "log" if self.log_lines else "quiet"

    def __iter__(self) -> Iterator[T]:
        mode = self.mode()
        if mode == "quiet":
            return iter(self.iterable)
        if mode == "bar":
            stream = self.stream if self.stream is not None else sys.stderr
            bar = tqdm(self.iterable, desc=self.desc, total=self.total, unit=self.unit, file=stream, dynamic_ncols=True)
            return iter(bar)
        return self._logged()

    def _logged(self) -> Iterator[T]:
        """Yield the items, logging "desc: i/total (p%), rate, ETA" every ``log_fraction`` or ``log_seconds``."""
        start = last = time.monotonic()
        step = max(1, int(self.total * self.log_fraction)) if self.total else 0
        done = 0
        for item in self.iterable:
            yield item
            done += 1
            now = time.monotonic()
            if (step and done % step == 0 and done != self.total) or now - last >= self.log_seconds:
                last = now
                self.log.info("%s", self._line(done, now - start))
        self.log.info(
            "%s: %d %s done in %s", self.desc, done, self.unit, tqdm.format_interval(time.monotonic() - start)
        )

    def _line(self, done: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else 0.0
            return (
                f"{self.desc}: {done}/{self.total} {self.unit} ({100.0 * done / self.total:.0f}%), "
                f"{rate:.2f} {self.unit}/s, ETA {tqdm.format_interval(eta)}"
            )
        return f"{self.desc}: {done} {self.unit}, {rate:.2f} {self.unit}/s"


def progress(
    iterable: Iterable[T],
    desc: str = "",
    total: int | None = None,
    *,
    quiet: bool | None = None,
    unit: str = "it",
    min_total: int = 0,
    log_lines: bool = True,
    log_fraction: float = 0.1,
    log_seconds: float = 30.0,
    stream: TextIO | None = None,
    log: logging.Logger | None = None,
) -> Progress[T]:
    """Iterate over ``iterable`` while reporting progress.

    On a terminal (``stream.isatty()``): a tqdm bar with rate and ETA. Otherwise: INFO log lines
    ``"desc: 40/400 image (10%), 3.20 image/s, ETA 01:52"`` about every ``log_fraction`` of the total or every
    ``log_seconds`` (whichever comes first), and a final ``"desc: 400 image done in 02:05"``. Nothing when quiet.

    Args:
        iterable: the items (lazily consumed, in order).
        desc: label of the job.
        total: number of items (default: ``len(iterable)`` when it has one).
        quiet: True silences this job, False reports even under :func:`set_quiet`; None follows the process.
        unit: name of one item.
        min_total: report nothing when the known total is below this (short jobs).
        log_lines: False reports only on a terminal (for loops whose caller already logs, e.g. detectron2's
            ``inference_on_dataset``).
        log_fraction, log_seconds: spacing of the log lines.
        stream: where the bar goes (default ``sys.stderr``); its ``isatty()`` chooses bar or log lines.
        log: logger of the log lines (default this module's).

    Returns:
        An iterable with ``len()`` when the total is known.
    """
    return Progress(
        iterable,
        desc,
        total,
        quiet=quiet,
        unit=unit,
        min_total=min_total,
        log_lines=log_lines,
        log_fraction=log_fraction,
        log_seconds=log_seconds,
        stream=stream,
        log=log,
    )


def eval_progress(loader: Iterable[T], dataset: str) -> Progress[T]:
    """Progress of an evaluation loop over a detectron2 test loader (one batch per image).

    A bar on a terminal in the main process only; no extra log lines, since detectron2's ``inference_on_dataset``
    already logs progress with an ETA every few seconds.
    """
    from detectron2.utils import comm

    return progress(
        loader, f"eval {dataset}", unit="image", log_lines=False, quiet=None if comm.is_main_process() else True
    )
