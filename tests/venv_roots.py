"""Build real venv-polluted project roots for the cleanup tests, and snapshot trees exactly.

A polluted root is what the issue describes: a git repo whose tracked bin/ holds
the project's 16 scripts, plus an untracked project file, a real venv/ folder,
links that point outside the root, and then `python -m venv` run in the root
itself. The expected artifacts are derived from what the venv added, not from
the classifier, so the tests can catch it being wrong.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXER = REPO / "tools" / "cleanup_root.py"
ARCHIVE_PREFIX = "_archive_venv_cleanup_"
PROJECT_SCRIPT_COUNT = 16  # as in the issue: bin/ also holds the project's own scripts
ROOT_VENV_TOP = ("pyvenv.cfg", "lib", "lib64", "include")


@dataclass(frozen=True)
class PollutedRoot:
    """A temporary project root and what its accidental venv added."""

    root: Path
    outside: Path  # a folder outside the root that links point to
    expected: frozenset[str]  # paths the venv made, relative to root

    def archives(self) -> list[Path]:
        """Archive folders in the root."""
        return sorted(self.root.glob(ARCHIVE_PREFIX + "*"))


def git(root: Path, *args: str) -> None:
    """Run git in root with a throwaway identity."""
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-C", str(root), *args],
                   check=True, capture_output=True)


def make_venv(path: Path, with_pip: bool = False) -> None:
    """A real venv made the way the accident made it."""
    options = [] if with_pip else ["--without-pip"]
    subprocess.run([sys.executable, "-m", "venv", *options, str(path)], check=True, capture_output=True)


def write(path: Path, text: str, mode: int = 0o644) -> None:
    """Create a file (and its folders) with a mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_project(root: Path, outside: Path) -> None:
    """The project as it was before the accident: tracked bin/ scripts and the usual neighbours."""
    for i in range(PROJECT_SCRIPT_COUNT):
        write(root / "bin" / f"task_{i:02d}.sh", f"#!/bin/sh\necho task {i}\n", 0o755)
    # Looks venv-made, but is tracked project content: must stay.
    write(root / "bin" / "run_tracked", f"#!{root}/bin/python3\nprint('tracked')\n", 0o755)
    write(root / "src" / "app.py", "print('app')\n")
    write(root / "manage.py", "print('manage')\n")
    git(root, "init", "-q")
    git(root, "add", "bin", "src", "manage.py")
    git(root, "commit", "-qm", "project")
    write(root / "notes.txt", "untracked project file\n")
    write(root / "bin" / "local_tool", "#!/usr/bin/env python3\nprint('untracked, not venv-made')\n", 0o755)
    write(outside / "data.txt", "outside the root\n")
    (root / "shared").symlink_to(outside)
    (root / "bin" / "outside-link").symlink_to(outside / "data.txt")
    make_venv(root / "venv")


def polluted_root(base: Path, with_pip: bool = False) -> PollutedRoot:
    """A project root in which `python -m venv <root>` was run by accident."""
    root, outside = base / "project", base / "outside"
    root.mkdir()
    make_project(root, outside)
    bin_before = set(os.listdir(root / "bin"))
    make_venv(root, with_pip)
    added = {f"bin/{n}" for n in set(os.listdir(root / "bin")) - bin_before}
    return PollutedRoot(root, outside, frozenset(added | set(ROOT_VENV_TOP)))


def tree_snapshot(root: Path, skip_archives: bool = True) -> dict[str, tuple]:
    """Every path under root with its type, mode, mtime and content digest or link target.

    Folder mtimes are left out: moving a file out of a folder changes them by design.
    """
    snap: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        if skip_archives:
            dirs[:] = [d for d in dirs if not d.startswith(ARCHIVE_PREFIX)]
        for name in dirs + files:
            path = Path(folder) / name
            snap[str(path.relative_to(root))] = _facts(path)
    return snap


def _facts(path: Path) -> tuple:
    """What an exact restore must bring back for one path."""
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path), st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode)
    return ("file", mode, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def run_fixer(*args: str | Path, python: str | Path = sys.executable,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The fixer as a user runs it: a subprocess from the repo (by default with no venv active)."""
    environ = env if env is not None else {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run([str(python), str(FIXER), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env=environ)
