"""The bad-input battery: every row of tests/bad_inputs_table.py, run through the real command-line entry point.

A rejected input must produce exactly one ``error: ...`` line on stderr matching the row's pattern, no traceback,
and the row's exit code; an accepted input must exit 0 and pass the row's check. In-process rows call the
programs' ``main`` through the shared ``run_cli`` (what ``python <script>`` runs); ``subprocess`` rows start the
real program in a fresh Python (marked slow). The table in docs/reliability.md is generated from the same rows.
"""

import contextlib
import functools
import io
import logging
import os
import re
import subprocess
import sys

import pytest

from mask_adapter.utils.cli import run_cli
from tests.bad_inputs_table import CASES, REPO, Case, Context

PREPARE_SCRIPT = "prepare_ade20k_sem_seg"  # the preparation script of the "prepare" rows


@pytest.fixture(scope="module")
def programs():
    """The entry points' ``main(argv)`` functions, by surface."""
    from mask_adapter.apps import demo
    from mask_adapter.apps import train as train_net
    from mask_adapter.apps.convert_checkpoint import main as convert
    from mask_adapter.apps.export import main as export
    from mask_adapter.evaluation.command import main as evaluate
    from tests._raw_datasets import script

    prepare = script(PREPARE_SCRIPT).main

    def train(argv):
        train_net.cli(argv)
        return 0

    apps = {}  # one DemoApp per set of constructor arguments, built on first use, for the whole module

    def app(argv, ctx: Context):
        """Rows of the web app's handler: ``make`` returns (image path, vocabulary, task, mask source) and puts the
        ``DemoApp`` arguments into ``ctx.shared["app_kwargs"]``; the result goes to ``ctx.shared["app_result"]``.
        The one-line ``AppInputError`` is what the page shows, so it counts as the error line (exit code 1)."""
        from mask_adapter.apps.web import AppInputError, DemoApp

        kwargs = ctx.shared.get("app_kwargs", {})
        key = tuple(sorted(kwargs.items()))
        if key not in apps:
            apps[key] = DemoApp(**kwargs)
        ctx.shared["app"] = apps[key]
        try:
            ctx.shared["app_result"] = apps[key].segment(*argv)
        except AppInputError as e:
            raise ValueError(str(e)) from None
        return 0

    yield {"demo": demo.main, "train_net": train, "evaluate": evaluate, "prepare": prepare, "app": app,
           "convert": convert, "export": export}  # fmt: skip
    for built in apps.values():
        built.close()


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


@pytest.fixture(autouse=True)
def default_registration():
    """Rows may register datasets under their own root; restore the default registration afterwards."""
    yield
    from mask_adapter.data.catalog import register_all

    register_all(None, overwrite=True)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + ("\nTraceback (logged)" if record.exc_info else ""))


def _run_in_process(case: Case, ctx: Context, programs, monkeypatch) -> tuple[int, str, str]:
    """(exit code, stderr, stderr + log messages)."""
    argv = case.make(ctx)
    if case.patch is not None:
        case.patch(ctx, monkeypatch)
    handler = _Messages()
    loggers = [logging.getLogger(), logging.getLogger("mask_adapter"), logging.getLogger("detectron2")]
    for log in loggers:
        log.addHandler(handler)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            program = programs[case.surface]
            code = run_cli(functools.partial(program, ctx=ctx) if case.surface == "app" else program, argv)
    finally:
        for log in loggers:
            log.removeHandler(handler)
    return code, stderr.getvalue(), stderr.getvalue() + "\n".join(handler.lines)


_RSS_WRAPPER = """
import resource, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
print("MAX_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""

_SCRIPTS = {"demo": "demo/demo.py", "train_net": "train_net.py", "evaluate": "tools/evaluate_benchmarks.py",
            "prepare": f"datasets/{PREPARE_SCRIPT}.py", "convert": "tools/convert_checkpoint.py",
            "export": "tools/export.py"}  # fmt: skip


def _run_subprocess(case: Case, ctx: Context) -> tuple[int, str, str]:
    argv = case.make(ctx)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(ctx.shared.get("env", {}))  # e.g. DETECTRON2_DATASETS of a row's own datasets
    cmd = [sys.executable, "-c", _RSS_WRAPPER, str(REPO / _SCRIPTS[case.surface]), *argv]
    proc = subprocess.run(cmd, cwd=ctx.tmp, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stderr, proc.stderr + proc.stdout


# In-process rows that take seconds (a 5,000-class text encoding, an 8000×6000 decode): deselected by -m "not slow".
_HEAVY_ROWS = frozenset({"5000-classes", "app-8000x6000"})


def _params():
    for case in CASES:
        marks = [pytest.mark.slow] if case.subprocess or case.id in _HEAVY_ROWS else []
        yield pytest.param(case, id=case.id, marks=marks)


@contextlib.contextmanager
def _small_disk(ctx: Context, options: str):
    """A tmpfs with ``options`` mounted at ``ctx.disk`` for one row (needs root; skipped with the reason)."""
    if not options:
        yield
        return
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs ({options}) for a full or read-only disk needs root (CI runs as root)")
    ctx.disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(ctx.disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(ctx.disk)], check=True)


@contextlib.contextmanager
def _umask(mask: int | None):
    previous = os.umask(mask) if mask is not None else None
    try:
        yield
    finally:
        if previous is not None:
            os.umask(previous)


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, tmp_path, programs, monkeypatch):
    ctx = Context(tmp=tmp_path)
    with _small_disk(ctx, case.disk), _umask(case.umask):
        if case.subprocess:
            code, stderr, text = _run_subprocess(case, ctx)
        else:
            code, stderr, text = _run_in_process(case, ctx, programs, monkeypatch)
        _check_row(case, ctx, code, stderr, text)


def _check_row(case: Case, ctx: Context, code: int, stderr: str, text: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == case.exit_code, (code, stderr[-3000:])
    if case.traceback:
        assert "Traceback (most recent call last)" in stderr and errors == [], stderr[-3000:]
        return
    assert "Traceback" not in text, text[-3000:]  # neither on stderr nor in the logs (stdout)
    if case.error:
        assert len(errors) == 1, stderr[-3000:]
        assert re.search(case.error, errors[0][len("error: ") :]), errors[0]
    else:
        assert errors == [], errors
    if case.check is not None:
        case.check(ctx, text)


def test_table_has_the_required_coverage():
    """>= 30 rows; the surfaces of the issue; both rejected and accepted inputs; unique ids."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 30
    assert {c.surface for c in CASES} >= {"demo", "train_net", "evaluate", "prepare", "app"}
    app = [c for c in CASES if c.surface == "app"]
    assert len(app) >= 8 and sum(bool(c.result) for c in app) >= 3
    assert sum(bool(c.result) for c in CASES) >= 8 and sum(bool(c.error) for c in CASES) >= 22


def test_reliability_doc_matches_the_table():
    from tests.make_reliability_doc import render

    committed = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/reliability.md is stale: run python -m tests.make_reliability_doc"
