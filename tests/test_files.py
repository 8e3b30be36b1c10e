"""infra_audit/core/files.py: a file is replaced whole, and what is not a regular file is never replaced."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra_audit.core import files


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """This process's umask set to ``mask`` for the block, then put back."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_file_is_replaced_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    files.write_atomically(target, b"new", 0o640)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"], "no temporary file left"


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_what_is_not_a_regular_file_is_refused_and_left_as_it_is(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    {"fifo": lambda: os.mkfifo(target), "symlink": lambda: target.symlink_to(victim), "folder": target.mkdir}[kind]()
    before = target.lstat()
    with pytest.raises(IsADirectoryError) as refused:
        files.write_atomically(target, b"new", 0o644)
    said = f"{target} is not a regular file: it is left as it is"
    assert (refused.value.errno, refused.value.strerror) == (errno.EISDIR, said), "callers print strerror"
    after = target.lstat()
    assert (after.st_ino, stat.S_IFMT(after.st_mode)) == (before.st_ino, stat.S_IFMT(before.st_mode))
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target", "victim"], "no temporary file left"


def test_without_a_mode_the_file_keeps_its_own_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.write_text("old")
    kept.chmod(0o600)
    files.write_atomically(kept, b"new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600, "a file the user made private stays private"
    with umask(0o077):
        files.write_atomically(tmp_path / "new", b"new")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o600


def test_a_folder_that_cannot_be_opened_to_sync_leaves_the_file_written(tmp_path: Path, monkeypatch) -> None:
    """A folder one may write in but not read (mode 0300) cannot be opened to fsync: the rename stands,
    and the write is no error."""
    real_open = os.open

    def no_reading_folders(path, flags, *args):
        if flags & os.O_DIRECTORY:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_reading_folders)
    files.write_atomically(tmp_path / "report.html", b"new")
    assert (tmp_path / "report.html").read_bytes() == b"new"


def test_a_new_file_gets_what_the_umask_allows_of_read_and_write(tmp_path):
    """No execute bit, for anyone: 0o666 less the umask, as open() would give it."""
    with umask(0o022):
        files.write_atomically(tmp_path / "new", b"x\n")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o644


def test_the_data_is_written_into_a_temporary_file_only_its_owner_can_read(tmp_path, monkeypatch):
    """The data (a .env holding a password) is in the temporary file before its final mode is set: until
    then, no one but its owner may read or write it, whatever the umask."""
    seen: list[int] = []
    real_fchmod = os.fchmod
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: seen.append(os.fstat(fd).st_mode) or real_fchmod(fd, mode))
    with umask(0o002):
        files.write_atomically(tmp_path / ".env", b"DB_URL=postgresql://u:secret@h/db\n", 0o644)
    assert [stat.S_IMODE(mode) for mode in seen] == [0o600]


def test_no_free_temporary_name_is_said_in_one_line_and_nothing_is_touched(tmp_path, monkeypatch):
    taken = tmp_path / ".report.html.taken.tmp"
    taken.write_text("somebody's")
    monkeypatch.setattr(files, "_temp_path", lambda target: taken)
    with pytest.raises(FileExistsError) as raised:
        files.write_atomically(tmp_path / "report.html", b"new")
    assert raised.value.errno == errno.EEXIST
    assert str(raised.value) == (
        f"[Errno 17] no free temporary name beside {tmp_path / 'report.html'}: clear {tmp_path} of .tmp files"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken.name] and taken.read_text() == "somebody's"


def test_a_files_sha256_is_of_all_of_it_read_in_chunks() -> None:
    data = os.urandom(2**20) * 2 + b"tail"  # past two chunks: every chunk counts, the short last one too
    assert files.sha256_of(io.BytesIO(data)).hexdigest() == hashlib.sha256(data).hexdigest()
