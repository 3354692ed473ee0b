"""Atomic file writes: a file is either absent, its previous version, or complete; never half written.

Every output of the project goes through :func:`atomic_write`: demo overlays and label maps, prepared dataset
labels, checkpoints and ``last_checkpoint``, the text-embedding cache, benchmark JSON/CSV. The data goes to a
temporary file in the target's folder (named ``.<name>.<random>.tmp``, so no tool takes it for a checkpoint or an
image), is flushed and fsync'ed, then renamed over the target with ``os.replace`` (atomic on POSIX and Windows
within one file system). On any error the temporary file is removed and an :class:`OutputWriteError` names the
target, the reason (e.g. "No space left on device") and the fix.

The file gets the permissions a plain ``open(path, "w")`` would give: a new file ``0o666`` minus the process umask
(0644 under the usual umask 022), a replaced file keeps the mode it had. (``tempfile.mkstemp`` alone would make
every output 0600, private to its owner whatever the umask.)
"""

import contextlib
import errno
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = [
    "OutputWriteError",
    "atomic_save",
    "atomic_output_path",
    "atomic_save_image",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "ensure_output_dir",
    "os_error_cause",
    "output_write_error",
]


class OutputWriteError(OSError):
    """An output file or folder cannot be written; the message names the path, the reason and the fix.

    Built as ``OutputWriteError(errno, message)``; ``str()`` is the message alone (no ``[Errno N]`` prefix).
    """

    def __str__(self) -> str:
        return self.strerror if self.strerror else super().__str__()


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _fix(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space or choose another output folder"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to"
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a parent of the path is a file; choose another output folder"
    return "check the path or choose another output folder"


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore at once (other threads may briefly see umask 0o022)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _open_mode(path: str) -> int:
    """The permission bits ``open(path, "w")`` would leave: the existing file's, or 0o666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def output_write_error(error: OSError, what: str) -> OutputWriteError:
    """One :class:`OutputWriteError` line for a failed write: ``cannot write <what>: <reason>; <fix>``."""
    return OutputWriteError(error.errno, f"cannot write {what}: {_reason(error)}; {_fix(error)}")


def ensure_output_dir(path: str) -> str:
    """Create the folder ``path`` (and parents) if needed; one :class:`OutputWriteError` line if impossible."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputWriteError(
            errno.ENOTDIR, f"output folder {path} is an existing file; give a folder path (created if missing)"
        )
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputWriteError(e.errno, f"cannot create output folder {path}: {_reason(e)}; {_fix(e)}") from None
    return path


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Context manager yielding a file object; on a clean exit its content replaces ``path`` atomically.

    Args:
        path: the target file; its folder must exist.
        mode: "wb" (bytes) or "w" (text).
        encoding: for text mode.

    Raises:
        OutputWriteError: the file cannot be written (the target is left as it was; no temporary file remains).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    folder, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    except OSError as e:
        raise OutputWriteError(e.errno, f"cannot write {path}: {_reason(e)}; {_fix(e)}") from None
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": encoding, "newline": ""})) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _open_mode(path))
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        if isinstance(e, OutputWriteError):
            raise
        raise OutputWriteError(e.errno, f"cannot write {path}: {_reason(e)}; {_fix(e)}") from None
    except BaseException as e:
        _remove_quietly(tmp)
        cause = os_error_cause(e)
        if cause is not None:  # e.g. torch.save's RuntimeError raised while handling the file's OSError
            raise OutputWriteError(cause.errno, f"cannot write {path}: {_reason(cause)}; {_fix(cause)}") from None
        raise


def os_error_cause(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or one it was raised from or while handling (libraries such as
    torch.save turn a failed ``write`` into a RuntimeError); None if there is none."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def atomic_output_path(path: str) -> Iterator[str]:
    """For writers that take a file name rather than a file object (``torch.onnx.export``, ``torch.jit.save``,
    ``safetensors.save_file``): yields a temporary path in the target's folder (``.<name>.<random>.tmp<suffix>``,
    same suffix, so format detection by extension keeps working); on a clean exit the file is fsync'ed, given the
    mode ``open()`` would give and renamed to ``path``. On any error it is removed; write errors (also those a
    library wraps in another exception) become one :class:`OutputWriteError` line.
    """
    folder, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1]
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{suffix}")
        os.close(fd)
    except OSError as e:
        raise output_write_error(e, path) from None
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if hasattr(os, "chmod"):
            os.chmod(tmp, _open_mode(path))
        os.replace(tmp, path)
    except BaseException as e:
        _remove_quietly(tmp)
        if isinstance(e, OutputWriteError):
            raise
        cause = os_error_cause(e)
        if cause is not None:
            raise output_write_error(cause, path) from None
        raise


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def atomic_save(path: str, write: Callable[[IO[bytes]], Any]) -> str:
    """Atomically write the bytes that ``write(file_object)`` produces (e.g. ``lambda f: image.save(f, "PNG")``,
    ``lambda f: torch.save(obj, f)``). Returns ``path``."""
    with atomic_write(path, "wb") as f:
        write(f)
    return path


def atomic_write_text(path: str, text: str) -> str:
    """Atomically write ``text`` (UTF-8). Returns ``path``."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return path


def atomic_write_json(path: str, obj: Any, **json_kwargs: Any) -> str:
    """Atomically write ``obj`` as JSON (UTF-8; ``json_kwargs`` go to ``json.dumps``). Returns ``path``."""
    return atomic_write_text(path, json.dumps(obj, **json_kwargs))


def atomic_save_image(path: str, image: Any, **save_kwargs: Any) -> str:
    """Atomically write a PIL image; the format comes from the file extension (``.png``, ``.jpg`` ...)."""
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"unknown image file extension {ext!r} of {path}; use .png or .jpg")
    return atomic_save(path, lambda f: image.save(f, format=fmt, **save_kwargs))
