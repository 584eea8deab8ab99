"""Atomic file writes: a file is either replaced whole or left as it was.

Every file postfusion-bayes writes (network exports, ``batch`` results,
figures) goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder, flushed to disk (``fsync``) and then
renamed over the target with ``os.replace``, which is atomic on POSIX and
Windows. On any failure (a full disk, an error or Ctrl-C half-way) the
temporary file is removed and an existing file at the target is untouched.

The module knows nothing about the model, so both the engine and the
clinical modules import it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import IO, Any

from ..errors import ArgumentError

__all__ = ["atomic_write", "same_file"]


def same_file(a: str | PathLike[str], b: str | PathLike[str]) -> bool:
    """Return whether two paths name the same existing file (through any spelling or symlink).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     p = pathlib.Path(folder) / "a.csv"
    ...     _ = p.write_text("x")
    ...     same_file(p, pathlib.Path(folder) / "." / "a.csv"), same_file(p, pathlib.Path(folder) / "b.csv")
    (True, False)
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or cannot be a path)
        return False


def _temporary(path: Path) -> tuple[Path, int]:
    """Create a new temporary file beside ``path``: its path and an open descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return temporary, os.open(temporary, flags, 0o666)  # the mode a plain open() gives, after the umask
        except FileExistsError:  # pragma: no cover - a clash of 32 random bits
            continue


@contextlib.contextmanager
def atomic_write(path: str | PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None, overwrite: bool = True) -> Iterator[IO[Any]]:
    """Open a file for writing that replaces ``path`` only once it is complete.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    mode : {"w", "wb"}
        Text or binary.
    encoding : str, optional
        Text mode only (default UTF-8).
    newline : str, optional
        Text mode only, as for :func:`open`.
    overwrite : bool
        If False, raise ``FileExistsError`` rather than replace an existing
        file (checked before writing and again just before the rename).

    Yields
    ------
    file object
        A file open on a temporary file in the same folder as ``path``.

    Raises
    ------
    ArgumentError
        For a mode other than "w" or "wb".
    OSError
        When the folder cannot be written, or a write, ``fsync`` or the rename
        fails (e.g. ``ENOSPC`` on a full disk); the temporary file is then
        removed and any file at ``path`` keeps its old content.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = pathlib.Path(folder) / "out.txt"
    ...     _ = target.write_text("old")
    ...     try:
    ...         with atomic_write(target) as f:
    ...             _ = f.write("half of the new")
    ...             raise RuntimeError("failed half-way")
    ...     except RuntimeError:
    ...         pass
    ...     print(target.read_text(), sorted(p.name for p in pathlib.Path(folder).iterdir()))
    ...     with atomic_write(target) as f:
    ...         _ = f.write("new")
    ...     print(target.read_text())
    old ['out.txt']
    new
    """
    if mode not in ("w", "wb"):
        raise ArgumentError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(17, "file exists", str(path))
    binary = mode == "wb"
    temporary, descriptor = _temporary(path)
    try:
        if binary:
            stream: IO[Any] = os.fdopen(descriptor, "wb")
        else:
            stream = os.fdopen(descriptor, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(descriptor)
        _remove(temporary)
        raise
    try:
        existing = _mode(path)
        if existing is not None:  # keep the permissions of the file replaced
            with contextlib.suppress(OSError):
                os.chmod(temporary, existing)
        yield stream
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        if not overwrite and path.exists():
            raise FileExistsError(17, "file exists", str(path))
        os.replace(temporary, path)
    except BaseException:  # a failed write, a full disk, Ctrl-C: the old file stays as it was
        with contextlib.suppress(Exception):
            stream.close()  # may fail again flushing what is left (a full disk): the first error is the one raised
        _remove(temporary)
        raise


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return None


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
