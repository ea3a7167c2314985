"""Atomic writes: a file or folder appears under its final name complete, or not at all."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "replace_folder"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path` for binary writing; rename it over `path` on success.

    An exception (or Ctrl-C) inside the block removes the temporary file and
    leaves whatever was at `path` before untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _plain_mode(path, 0o666))  # mkstemp makes 0600: others could not read what we write
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replace_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it takes `path`'s place whole.

    A reader sees the old folder or the new one, never a mix of their files:
    on Linux the two are exchanged in one ``renameat2(RENAME_EXCHANGE)``;
    elsewhere the old folder is renamed aside first, so a reader may briefly
    find none. An exception inside the block removes the temporary folder and
    leaves `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, _plain_mode(path, 0o777))  # mkdtemp makes 0700
        yield tmp
        if not path.exists():
            os.rename(tmp, path)
            return
        if not _exchange(tmp, path):
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rename(path, aside / path.name)
            os.rename(tmp, path)
            tmp = aside
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back (a plain open() applies it the same way).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(path: Path, default: int) -> int:
    """The mode a plain write would leave: the replaced file's own, else `default` less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return default & ~_umask()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, some musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
