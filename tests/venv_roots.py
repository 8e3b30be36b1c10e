"""Build real venv-polluted project roots for the cleanup tests, and snapshot trees exactly.

A polluted root is what the issue describes: a git repo whose tracked bin/ holds
the project's 16 scripts, plus an untracked project file, a real venv/ folder,
links that point outside the root, and then a venv made in the root itself: by
`python -m venv` of this python, or by one of ``CREATORS`` (pyenv's Python 3.8-3.13,
virtualenv, uv, and a pip or uv install of a wheel with data files into the venv).
The expected artifacts are derived from what the creator added, not from the
classifier, so the tests can catch it being wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uv

REPO = Path(__file__).resolve().parents[1]
FIXER = REPO / "tools" / "cleanup_root.py"
ARCHIVE_PREFIX = "_archive_venv_cleanup_"
PROJECT_SCRIPT_COUNT = 16  # as in the issue: bin/ also holds the project's own scripts
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


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
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-C", str(root), *args],
        check=True,
        capture_output=True,
    )


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
    return PollutedRoot(root, outside, added_by(root, lambda: make_venv(root, with_pip)))


def added_by(root: Path, make: Callable[[], None]) -> frozenset[str]:
    """What ``make`` added to root: new top-level entries and new files in the project's bin/."""
    top, in_bin = set(os.listdir(root)), set(os.listdir(root / "bin"))
    make()
    return frozenset({f"bin/{n}" for n in set(os.listdir(root / "bin")) - in_bin} | (set(os.listdir(root)) - top))


# --- every common creator, run as a user runs it --------------------------------------------------


@dataclass(frozen=True)
class Creator:
    """One way a venv lands in a project root; ``named`` starts the creator's name as the evidence must give it."""

    name: str
    named: str
    make: Callable[[Path, Path], None]  # (root, a scratch folder of its own for caches and wheels)


@dataclass(frozen=True)
class CreatorRoot(PollutedRoot):
    """A polluted root made by one creator."""

    creator: Creator


def pyenv_python(minor: int) -> str:
    """pyenv's newest python3.<minor> (else one on PATH). Where CI runs every creator must run: a missing
    one fails the test there; on a newcomer's machine (a Debian python3 alone) that creator is skipped, named."""
    found = sorted(
        PYENV_VERSIONS.glob(f"3.{minor}.*/bin/python3.{minor}"),
        key=lambda p: int(p.parts[-3].split(".")[2]) if p.parts[-3].split(".")[2].isdigit() else -1,
    )
    python = str(found[-1]) if found else shutil.which(f"python3.{minor}")
    if python is None:
        needed = f"python3.{minor} is needed to plant its venv: pyenv install 3.{minor}"
        if os.environ.get("CI"):
            raise RuntimeError(needed)
        pytest.skip(needed)
    return python


def run(command: list[str | Path], env: dict[str, str] | None = None) -> None:
    """Run a creator's command; its own error text when it fails."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {done.stdout}{done.stderr}")


def venv_of(minor: int, *options: str) -> Callable[[Path, Path], None]:
    """`python3.<minor> -m venv [options] <root>` (without pip: ensurepip only adds entry points, tested apart)."""
    return lambda root, _scratch: run([pyenv_python(minor), "-m", "venv", "--without-pip", *options, root])


def virtualenv(root: Path, _scratch: Path) -> None:
    """`virtualenv <root>`, seeding pip from the wheels it ships (no download)."""
    run([sys.executable, "-m", "virtualenv", "--quiet", "--no-periodic-update", root])


def uv_env(scratch: Path) -> dict[str, str]:
    """uv with a cache of its own, no user configuration and no Python download."""
    return {
        **os.environ,
        "UV_CACHE_DIR": str(scratch / "uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }


def uv_venv(root: Path, scratch: Path) -> None:
    """`uv venv --allow-existing <root>` (without --allow-existing uv refuses a folder that exists)."""
    run([uv.find_uv_bin(), "venv", "--quiet", "--allow-existing", "--python", sys.executable, root], uv_env(scratch))


def pip_installed(root: Path, scratch: Path) -> None:
    """`python -m venv <root>`, then `pip install` of a wheel with data files into it."""
    make_venv(root)
    pip_install(root, data_wheel(scratch))


def pip_install(root: Path, wheel: Path) -> None:
    """`pip install` of a local wheel into the venv made in root, with no index."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            root / "bin" / "python",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            wheel,
        ]
    )


def uv_pip_installed(root: Path, scratch: Path) -> None:
    """`uv venv <root>`, then `uv pip install` of a wheel with data files into it."""
    uv_venv(root, scratch)
    run(
        [
            uv.find_uv_bin(),
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--python",
            root / "bin" / "python",
            data_wheel(scratch),
        ],
        uv_env(scratch),
    )


CREATORS = (
    *(Creator(f"venv-3.{minor}", f"python -m venv (Python 3.{minor}.", venv_of(minor)) for minor in range(8, 14)),
    *(
        Creator(
            f"venv-3.{minor}-copies-system",
            f"python -m venv (Python 3.{minor}.",
            venv_of(minor, "--copies", "--system-site-packages"),
        )
        for minor in (8, 13)
    ),
    Creator("virtualenv", "virtualenv ", virtualenv),
    Creator("uv", "uv ", uv_venv),
    Creator("pip-install", "python -m venv (Python ", pip_installed),
    Creator("uv-pip-install", "uv ", uv_pip_installed),
)
CREATOR_BY_NAME = {c.name: c for c in CREATORS}


def creator_root(base: Path, creator: Creator, tracked_gitignore: bytes | None = None) -> CreatorRoot:
    """The project, with a tracked .gitignore when asked, then the creator run in its root."""
    root, outside, scratch = base / "project", base / "outside", base / "scratch"
    root.mkdir()
    scratch.mkdir()
    make_project(root, outside)
    if tracked_gitignore is not None:
        (root / ".gitignore").write_bytes(tracked_gitignore)
        git(root, "add", "-f", ".gitignore")  # -f: a '*' in it ignores itself
        git(root, "commit", "-qm", "ignore build output")
    return CreatorRoot(root, outside, added_by(root, lambda: creator.make(root, scratch)), creator)


def data_wheel(folder: Path, package: str = "mantool") -> Path:
    """A wheel that installs what `pip install ipython` adds beside the venv: a man page (share/), a
    configuration file (etc/) and a shell script (bin/, no Python entry point: pip leaves its shebang).
    Built here, so the test needs no package index."""
    name = f"{package}-1.0"
    files = {
        f"{package}/__init__.py": (b"", 0o644),
        f"{name}.data/data/share/man/man1/{package}.1": (f".TH {package.upper()} 1\n".encode(), 0o644),
        f"{name}.data/data/etc/{package}/{package}.toml": (b"level = 1\n", 0o644),
        f"{name}.data/scripts/{package}-report": (b"#!/bin/sh\necho report\n", 0o755),
        f"{name}.dist-info/METADATA": (f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n".encode(), 0o644),
        f"{name}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            0o644,
        ),
    }
    record = "".join(f"{path},sha256={record_digest(data)},{len(data)}\n" for path, (data, _) in files.items())
    files[f"{name}.dist-info/RECORD"] = ((record + f"{name}.dist-info/RECORD,,\n").encode(), 0o644)
    wheel = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, (data, mode) in files.items():
            info = zipfile.ZipInfo(path)
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, data)
    return wheel


def record_digest(data: bytes) -> str:
    """sha256 as a wheel's RECORD writes it."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def git_status(root: Path) -> list[str]:
    """`git status --porcelain` of root, untracked files one by one: what git shows the user (without
    refreshing its index: the tests compare trees byte for byte)."""
    done = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    return done.stdout.splitlines()


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


@contextmanager
def running(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, ready: bool = False
) -> Iterator[subprocess.Popen]:
    """A process that runs (reading its stdin) while the body does, killed after. ready: the body starts once the
    process printed its first line, its sign that what the test needs it to hold is in place."""
    with subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE if ready else None, cwd=cwd
    ) as process:
        try:
            if ready:
                process.stdout.readline()
            yield process
        finally:
            process.kill()


def without_venv(**extra: str) -> dict[str, str]:
    """This process's environment with no venv active (VIRTUAL_ENV would say where a child runs from), plus extra."""
    return {**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, **extra}


def run_fixer(
    *args: str | Path, python: str | Path = sys.executable, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The fixer as a user runs it: a subprocess from the repo (by default with no venv active)."""
    environ = env if env is not None else without_venv()
    return subprocess.run(
        [str(python), str(FIXER), *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120, env=environ
    )
