"""Durable file writes (a file is replaced whole or not at all, and a rename is on disk only once
its folder is synced), and a file's sha256 on every Python the package runs on."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

_TEMP_TRIES = 8
_CHUNK_BYTES = 1 << 20


def _temp_path(target: Path) -> Path:
    """A fresh random name beside target (same folder, so the rename is atomic)."""
    return target.with_name(f".{target.name}.{os.urandom(8).hex()}.tmp")


def write_atomically(target: Path, data: bytes, mode: int | None = None, owner: tuple[int, int] | None = None) -> None:
    """Replace target with data: exclusive temporary file, fsync, rename; never through a planted link.
    ``mode`` None keeps the mode of the file replaced, or gives a new one what the umask allows.

    Raises PermissionError for a folder it may not write in, FileExistsError when every temporary
    name it tried was taken, and any other OSError as it comes; a temporary file is never left. A
    target that is not a regular file (a device, a FIFO, a link, a folder) is refused, never replaced.
    """
    try:
        kind = os.lstat(target).st_mode
    except FileNotFoundError:
        kind = stat.S_IFREG | (0o666 & ~_umask())
    if mode is None:
        mode = stat.S_IMODE(kind)
    if not stat.S_ISREG(kind):
        raise IsADirectoryError(errno.EISDIR, f"{target} is not a regular file: it is left as it is")
    for _ in range(_TEMP_TRIES):
        temporary = _temp_path(target)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue  # somebody's file (or link) has that name: leave it, take another
        break
    else:
        raise FileExistsError(
            errno.EEXIST, f"no free temporary name beside {target}: clear {target.parent} of .tmp files"
        )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            os.fchmod(handle.fileno(), stat.S_IMODE(mode))
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries, so a crash after ``os.replace`` leaves the new name, not the old
    (best effort: a folder this user may write in but not read cannot be opened to sync; the rename stands)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(handle: BinaryIO) -> hashlib._Hash:
    """The sha256 of what is left to read in ``handle``, read in chunks: ``hashlib.file_digest`` is Python 3.11's,
    and the package runs from 3.9."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
        digest.update(chunk)
    return digest
