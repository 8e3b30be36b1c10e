"""Classify what a virtualenv accidentally created in a project root left behind.

`python -m venv .`, `virtualenv .` or `uv venv .` run in a project root writes pyvenv.cfg, lib/,
lib64, include/, files inside bin/ (where the project keeps its own scripts), and, by creator and
version, a `.gitignore` holding `*` and a `CACHEDIR.TAG`; `pip install` into that venv adds
`share/`, `etc/` and more. The audit test and tools/cleanup_root.py both ask this module, so the
check and the fix can never disagree. It classifies by evidence, never by names alone: only a
`<root>/pyvenv.cfg` with a `home` key proves a venv was made here (its other keys name the creator),
and every entry must also have the shape or content its creator gives it, or be listed with its
sha256 in a RECORD of the venv's site-packages. Venv-looking entries without that proof are
suspects: reported, never moved. Only the names creators write and the paths a RECORD lists are
ever looked at, so venv/, .venv/, src/, scripts/, .git, *.py and archive folders are never
classified. Git-tracked paths are project content (it asks git, the one outside call); a tracked
`.gitignore` a creator overwrote is reported apart, with git's fix. Read-only: symlinks are never
followed (lstat, readlink) and unreadable entries are skipped or reported, not raised.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from infra_audit.core.errors import GitError
from infra_audit.core.files import sha256_of
from infra_audit.core.text import printable

GIT_TIMEOUT_S = 20
HEAD_BYTES = 16 * 1024  # enough for a shebang and the VIRTUAL_ENV line of activate scripts
CFG_BYTES = 64 * 1024
RECORD_BYTES = 16 * 1024 * 1024  # pip's own RECORD is 75 kB; a bigger one is no RECORD
NO_PROOF = "; no pyvenv.cfg with 'home' proves a venv was made here, so it is only a suspect"
# Without proof only these are venv-looking enough to report (from the issue).
SUSPECT_WITHOUT_PROOF = frozenset({"pyvenv.cfg", "lib", "lib64", "bin/activate", ".gitignore"})
# The .gitignore each creator writes into the venv's folder, byte for byte: '*' hides every file from git.
CREATOR_GITIGNORES = {
    b"# Created by venv; see https://docs.python.org/3/library/venv.html\n*\n": "python -m venv (Python 3.13+)",
    b"# created by virtualenv automatically\n*\n": "virtualenv",
    b"*": "uv",
}
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"  # https://bford.info/cachedir/
# bin/ files virtualenv and uv (whose scripts are virtualenv's) write that name neither this root nor an
# interpreter: recognised by name, by the creator pyvenv.cfg names, and by what they must hold.
COMPANION_CREATORS = ("virtualenv", "uv")
COMPANIONS = {
    "activate.ps1": b"VIRTUAL_ENV",
    "activate.nu": b"VIRTUAL_ENV",
    "deactivate.bat": b"VIRTUAL_ENV",
    "deactivate.csh": b"VIRTUAL_ENV",
    "deactivate.nu": b"VIRTUAL_ENV",
    "pydoc.bat": b"-m pydoc",
}
# Never classified, whatever a RECORD says: the repository and the fixer's own archives.
NEVER = (".git",)
ARCHIVE_PREFIX = "_archive_venv_cleanup_"

PY_DIR = re.compile(r"python\d+\.\d+t?")  # lib/python3.11, include/python3.13t
INTERPRETER = re.compile(r"(?:python|pypy)(?:\d+(?:\.\d+)?t?)?|\U0001d70bthon")  # 3.13 adds 𝜋thon
ACTIVATE = re.compile(r"(?i)(?:de)?activate(?:\.\w+|_this\.py)?")
EXEC_LINE = re.compile(rb"'''exec' (?:\"([^\"]+)\"|(\S+))")  # pip's form for long/space paths


@dataclass(frozen=True)
class Artifact:
    """One root entry (or bin/ file) and why we think the venv made it."""

    path: str
    kind: str
    evidence: str


@dataclass(frozen=True)
class Scan:
    """What a root holds: proven venv artifacts, unproven suspects, and tracked files a venv overwrote
    (their fix is git's, never the fixer's)."""

    root: Path
    venv_home: str | None
    artifacts: tuple[Artifact, ...]
    suspects: tuple[Artifact, ...]
    creator: str | None = None  # as pyvenv.cfg names it: 'uv 0.5.1', 'virtualenv 20.28.0', 'python -m venv (...)'
    overwritten: tuple[Artifact, ...] = ()

    @property
    def clean(self) -> bool:
        """True when there is nothing to move, nothing to review and nothing to give back."""
        return not self.artifacts and not self.suspects and not self.overwritten


@dataclass(frozen=True)
class _Creator:
    """Who made the venv, as pyvenv.cfg shows it: ``kind`` for the rules, ``name`` for people."""

    kind: str  # 'venv', 'virtualenv' or 'uv'
    name: str  # 'uv 0.5.1', 'python -m venv (Python 3.13.0)'
    shown_by: str  # the pyvenv.cfg line (or its absence) that names it


@dataclass(frozen=True)
class _Installed:
    """A file pip (or uv) installed outside site-packages: its RECORD digest, and which RECORD says so."""

    sha256: str  # urlsafe base64 without padding, as RECORD writes it
    record: str  # root-relative path of the RECORD
    installer: str


@dataclass(frozen=True)
class _Candidate:
    """A venv-shaped entry before the proof is applied.

    movable: venv-made if a venv is proven (shape fits, nothing tracked under it).
    shaped: looks like a venv entry at all (what makes it a suspect without proof).
    """

    artifact: Artifact
    movable: bool
    shaped: bool = True


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run git in root, bounded, reading only; FileNotFoundError when git is not installed."""
    hidden = {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CEILING_DIRECTORIES"}  # they point git elsewhere
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    # C: so "not a git repository" can be recognised (only plumbing that never writes the index is run here)
    env.update(LC_ALL="C", GIT_DISCOVERY_ACROSS_FILESYSTEM="1")
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, timeout=GIT_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took over {GIT_TIMEOUT_S}s in {root}; retry when git is responsive") from exc


def git_tracked(root: Path) -> frozenset[str]:
    """Tracked paths relative to root; empty when no ``.git`` lies in root or above it.

    Where one does, git must answer: without it, a tracked ``bin/activate`` would look like a leftover
    and move. So a missing git, or a repository git cannot read, is a GitError, and nothing moves.
    """
    try:
        proc = _git(root, "ls-files", "-z")
    except FileNotFoundError:
        return _untracked_unless_in_a_repository(root, "is not installed (not on PATH)")
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        first = message.splitlines()[0] if message else f"exit code {proc.returncode}"
        if "not a git repository" in message:
            return _untracked_unless_in_a_repository(root, f"says: {first}")
        raise GitError(f"git ls-files failed in {root}: {first}")
    return frozenset(os.fsdecode(p) for p in proc.stdout.split(b"\0") if p)


def git_changed(root: Path, rel: str) -> str | None:
    """Which copy of tracked ``rel`` the working one differs from: ``HEAD`` (the last commit; so a change
    already staged counts too), ``the index`` before the first commit; None when it equals it. git must answer.

    Read only: git's object ids are compared (``ls-tree``/``ls-files`` for git's copy, ``hash-object`` for
    the working one, through the filters ``git diff`` applies). ``git diff`` itself would refresh the
    project's index, whatever ``GIT_OPTIONAL_LOCKS`` says.
    """
    try:
        committed = _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode == 0
        listed = _git(root, *(("ls-tree", "HEAD") if committed else ("ls-files", "--stage")), "-z", "--", rel)
        working = _git(root, "hash-object", "--", rel)
    except FileNotFoundError as exc:
        raise GitError(
            f"git is not installed (not on PATH), so {root / rel} cannot be compared with git's copy; "
            "install git, then run again"
        ) from exc
    for proc in (listed, working):
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            said = message.splitlines()[0] if message else proc.returncode
            raise GitError(f"git {proc.args[3]} failed in {root}: {said}")
    # ls-tree: "MODE TYPE ID\tPATH"; ls-files --stage: "MODE ID STAGE\tPATH"; nothing when git has no copy
    fields = listed.stdout.split(b"\t", 1)[0].split()
    kept = fields[2 if committed else 1] if fields else None
    return None if kept == working.stdout.strip() else "HEAD" if committed else "the index"


def _untracked_unless_in_a_repository(root: Path, git_problem: str) -> frozenset[str]:
    """Nothing is tracked where no ``.git`` lies in root or any folder above it; else git had to answer."""
    folder = Path(os.path.realpath(root))
    for place in (folder, *folder.parents):
        if os.path.lexists(place / ".git"):
            raise GitError(
                f"{place / '.git'} makes {root} part of a git repository, but git {git_problem}; "
                "without git's list of tracked files nothing can move safely: install git or "
                "repair the repository, then run again"
            )
    return frozenset()


def scan_root(root: Path, tracked: frozenset[str] | None = None) -> Scan:
    """Classify the venv leftovers of root; tracked=None asks git, when there is anything to ask about."""
    root = Path(root)
    if tracked is None:
        first = scan_root(root, frozenset())
        if first.clean:  # nothing venv-like: what git tracks only ever takes away (a machine without git passes)
            return first
        tracked = git_tracked(root)
    home, creator, cfg = _pyvenv_cfg(root, tracked)
    gitignore, overwritten = _gitignore(root, tracked)
    candidates = cfg + gitignore + _lib(root, "lib", tracked) + _lib64(root, tracked) + _include(root, tracked)
    if home is None or creator is None:
        unproven = [
            c
            for c in candidates + _bin_files(root, tracked, None, {})
            if c.shaped and c.artifact.path in SUSPECT_WITHOUT_PROOF
        ]
        return Scan(root, None, (), tuple(_unproven(c) for c in unproven), overwritten=overwritten)
    installed = _installed(root)
    candidates += _cachedir_tag(root, tracked, creator) + _uv_lock(root, tracked, creator)
    candidates += _pip_installed(root, tracked, installed)
    candidates += _collapse_bin(_bin_files(root, tracked, creator, installed))
    artifacts = tuple(c.artifact for c in candidates if c.movable)
    return Scan(
        root, home, artifacts, tuple(c.artifact for c in candidates if not c.movable), creator.name, overwritten
    )


def in_use(
    root: Path, artifacts: Iterable[str], prefix: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why the venv made in ``root`` is not orphaned: the Python running this lives there
    (``sys.prefix``, or ``prefix``), it is the active venv (``VIRTUAL_ENV``), or another process runs
    from its ``artifacts`` (root-relative paths); None when none of these.

    Archiving it would pull the interpreter from under its user: ``python`` and ``pytest`` gone.
    """
    here = os.path.realpath(root)
    active = (environ if environ is not None else os.environ).get("VIRTUAL_ENV")
    if os.path.realpath(prefix if prefix is not None else sys.prefix) == here:
        return "the python running this comes from it"
    if active and os.path.realpath(active) == here:
        return "it is the active venv: VIRTUAL_ENV"
    return process_using(here, artifacts)


def process_using(venv: str, artifacts: Iterable[str]) -> str | None:
    """A running process that runs from the venv at ``venv`` (a real path): one started as one of its
    ``artifacts`` (``bin/python``), one whose environment names it (VIRTUAL_ENV), or one holding one of
    them open or mapped (a C extension in ``lib/``). A project script of ``bin/`` that git tracks is
    no artifact: running it is not running the venv. Best effort, from /proc: other users' processes
    may not be readable."""
    places = tuple(os.path.join(venv, artifact) for artifact in artifacts)
    for pid in filter(str.isdigit, _names(Path("/proc")) or []):
        if int(pid) == os.getpid():
            continue
        environ = _environ(pid)  # read once: both its VIRTUAL_ENV and its PATH are needed
        if _activated(environ, venv) or any(_within(path, places) for path in _process_paths(pid, environ)):
            return f"process {pid} ({_program(pid)}) runs from it"
    return None


def _within(path: str, places: tuple[str, ...]) -> bool:
    return any(path == place or path.startswith(place + "/") for place in places)


def _environ(pid: str) -> dict[bytes, bytes]:
    """The environment process ``pid`` was started with; empty when it cannot be read (another user's)."""
    with contextlib.suppress(OSError):
        return dict(item.partition(b"=")[::2] for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    return {}


def _activated(environ: dict[bytes, bytes], venv: str) -> bool:
    """Whether a process was started with VIRTUAL_ENV naming the venv (a shell's activated venv)."""
    active = environ.get(b"VIRTUAL_ENV")
    return active is not None and os.path.realpath(os.fsdecode(active)) == venv


def _process_paths(pid: str, environ: dict[bytes, bytes]) -> Iterator[str]:
    """The paths process ``pid`` runs from: its program as started, its open and mapped files."""
    proc = f"/proc/{pid}"
    with contextlib.suppress(OSError):
        program = _started_as(
            proc, os.fsdecode(Path(f"{proc}/cmdline").read_bytes().split(b"\0", 1)[0]), environ.get(b"PATH", b"")
        )
        if program:  # its folder resolved, not the program: bin/python is a link to the base python
            yield os.path.join(os.path.realpath(os.path.dirname(program)), os.path.basename(program))
    with contextlib.suppress(OSError):
        for line in Path(f"{proc}/maps").read_text(errors="replace").splitlines():
            yield line.split(None, 5)[-1]
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"{proc}/fd"):
            with contextlib.suppress(OSError):
                yield os.readlink(f"{proc}/fd/{fd}")


def _started_as(proc: str, program: str, path: bytes) -> str | None:
    """The path a process's first word named: as written, else under its cwd, else (``python3``, from
    a PATH with the venv's bin/ first, or ``#!/usr/bin/env python3``) found on its own ``path``."""
    if not program or os.path.isabs(program):
        return program or None
    if "/" in program:  # only then its cwd, which another user's process does not show
        return os.path.join(os.readlink(f"{proc}/cwd"), program)
    for folder in os.fsdecode(path).split(os.pathsep) if path else ():
        found = os.path.join(folder, program)
        if not os.path.isabs(folder):  # PATH=bin:... is read from the process's own folder
            found = os.path.join(os.readlink(f"{proc}/cwd"), found)
        if os.path.isfile(found) and os.access(found, os.X_OK):
            return found
    return None


def _program(pid: str) -> str:
    """A process's program name, for a person to recognise it (never its arguments: they may hold a password)."""
    with contextlib.suppress(OSError):
        return printable(Path(f"/proc/{pid}/comm").read_text(errors="replace").strip())
    return "?"


def in_use_advice(root: Path, why: str) -> str:
    """One line: the venv in ``root`` is in use, and the steps that make archiving it safe."""
    venv = root / ".venv"
    return (
        f"the venv made in {root} is in use ({why}): archiving it would pull the python from under what runs "
        f"on it. To make it safe: python3 -m venv {shlex.quote(str(venv))}, reinstall the project there "
        f"({shlex.quote(str(venv / 'bin/pip'))} install ...), deactivate it and restart what ran on it from "
        f"there, then run {shlex.quote(str(venv / 'bin/python'))} tools/cleanup_root.py --root {shlex.quote(str(root))}"
    )


def describe_artifact(artifact: Artifact) -> str:
    """One human line: '<path> (<kind>): <evidence>'."""
    return f"{artifact.path} ({artifact.kind}): {artifact.evidence}"


def describe(scan: Scan) -> list[str]:
    """Lines for every artifact, every suspect, then every overwritten tracked file, for the audit and the fixer."""
    return [describe_artifact(a) for a in scan.artifacts + scan.suspects + scan.overwritten]


def _cand(path: str, kind: str, evidence: str, movable: bool, shaped: bool = True) -> _Candidate:
    """Shorthand for one candidate finding."""
    return _Candidate(Artifact(path, kind, evidence), movable, shaped)


def _unproven(candidate: _Candidate) -> Artifact:
    """Re-word a candidate as a suspect when no venv is proven (pyvenv.cfg says its own why)."""
    a = candidate.artifact
    return a if a.path == "pyvenv.cfg" else Artifact(a.path, a.kind, a.evidence + NO_PROOF)


def _lstat(path: Path) -> os.stat_result | None:
    """lstat that answers None for missing or unreachable entries."""
    try:
        return os.lstat(path)
    except OSError:
        return None


def _readlink(path: Path) -> str:
    """A link's target as text; '?' if it vanished or cannot be read."""
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _kind(st: os.stat_result) -> str:
    """Contract kind of an entry, judged without following links."""
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _is_real_dir(path: Path) -> bool:
    """A directory that is not a symlink."""
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _names(path: Path) -> list[str] | None:
    """Sorted entries of a real directory (callers lstat first); None when unreadable."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def _head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """First bytes of a regular file, never through a symlink; b'' when unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return b""
    try:
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _tracked_under(rel: str, tracked: frozenset[str]) -> int:
    """How many tracked paths are rel itself or below it."""
    prefix = rel + "/"
    return sum(1 for t in tracked if t == rel or t.startswith(prefix))


def _parse_cfg(text: str) -> dict[str, str]:
    """pyvenv.cfg keys, read the way site.py reads them."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip().lower(): value.strip() for key, _, value in pairs}


def _pyvenv_cfg(root: Path, tracked: frozenset[str]) -> tuple[str | None, _Creator | None, list[_Candidate]]:
    """The proof: the 'home' of an untracked regular <root>/pyvenv.cfg, the creator it names, and its candidate."""
    st = _lstat(root / "pyvenv.cfg")
    if st is None or "pyvenv.cfg" in tracked:
        return None, None, []
    kind = _kind(st)
    if not stat.S_ISREG(st.st_mode):
        return (
            None,
            None,
            [_cand("pyvenv.cfg", kind, f"is a {kind}, not a file; not read, so it proves no venv", False)],
        )
    cfg = _parse_cfg(_head(root / "pyvenv.cfg", CFG_BYTES).decode("utf-8", "replace"))
    home = cfg.get("home")
    if not home:
        why = "has no 'home' key (or is unreadable), so it proves no venv; suspect"
        return None, None, [_cand("pyvenv.cfg", "file", why, False)]
    creator = _creator(cfg)
    evidence = f"venv config written by {creator.name} ({creator.shown_by}; home = {home})"
    return home, creator, [_cand("pyvenv.cfg", "file", evidence, True)]


def _creator(cfg: dict[str, str]) -> _Creator:
    """The tool pyvenv.cfg names: uv and virtualenv write their own key with their version; else python -m venv."""
    for tool in ("uv", "virtualenv"):
        if cfg.get(tool):
            return _Creator(tool, f"{tool} {cfg[tool]}", f"its line {tool} = {cfg[tool]}")
    version = cfg.get("version") or cfg.get("version_info")
    name = f"python -m venv (Python {version})" if version else "python -m venv"
    return _Creator("venv", name, "no uv or virtualenv line")


def _gitignore(root: Path, tracked: frozenset[str]) -> tuple[list[_Candidate], tuple[Artifact, ...]]:
    """A ``.gitignore`` holding exactly what a creator writes: untracked, a leftover (a suspect without proof);
    tracked and differing from git's copy, overwritten (Python 3.13 and uv write it over the project's)."""
    st = _lstat(root / ".gitignore")
    if st is None or not stat.S_ISREG(st.st_mode):
        return [], ()
    writer = CREATOR_GITIGNORES.get(_head(root / ".gitignore", 1024))
    if writer is None:
        return [], ()
    hides = "'*' makes git ignore every new file in the root"
    if ".gitignore" not in tracked:
        return [_cand(".gitignore", "file", f"holds exactly what {writer} writes: {hides}", True)], ()
    source = git_changed(root, ".gitignore")
    if source is None:
        return [], ()  # the project tracks this very text: its own choice
    fix = shlex.join(["git", "-C", str(root), "checkout", *(["HEAD"] if source == "HEAD" else []), "--", ".gitignore"])
    evidence = (
        f"git-tracked, overwritten with what {writer} writes: {hides}; fix: {fix} (gives back the copy of "
        f"{source}; the fixer never rewrites a tracked file)"
    )
    return [], (Artifact(".gitignore", "file", evidence),)


def _cachedir_tag(root: Path, tracked: frozenset[str], creator: _Creator) -> list[_Candidate]:
    """A cache directory tag (virtualenv, uv): the signature line, then only comments. Backup tools that honour
    it skip the folder it lies in: here, the whole project."""
    st = _lstat(root / "CACHEDIR.TAG")
    if st is None or "CACHEDIR.TAG" in tracked or not stat.S_ISREG(st.st_mode):
        return []
    first, *rest = _head(root / "CACHEDIR.TAG", 1024).splitlines() or [b""]
    if first != CACHEDIR_SIGNATURE or not all(line.startswith(b"#") for line in rest if line.strip()):
        return []
    named = re.search(rb"created by ([^.\n]+)", b"\n".join(rest))
    who = f"'created by {os.fsdecode(named.group(1))}'" if named else f"the bare signature, as {creator.name} writes it"
    return [_cand("CACHEDIR.TAG", "file", f"cache directory tag ({who}): backup tools skip the whole root", True)]


def _uv_lock(root: Path, tracked: frozenset[str], creator: _Creator) -> list[_Candidate]:
    """The empty ``.lock`` uv takes on a venv it installs into (``uv pip install``, ``uv sync``)."""
    st = _lstat(root / ".lock")
    if creator.kind != "uv" or st is None or ".lock" in tracked or not stat.S_ISREG(st.st_mode) or st.st_size:
        return []
    return [_cand(".lock", "file", f"empty: the lock uv takes on the venv it installs into ({creator.name})", True)]


def _installed(root: Path) -> dict[str, _Installed]:
    """Root-relative path -> RECORD entry, for every file pip or uv installed into this venv outside its lib/
    (bin/ scripts, share/ man pages, etc/ configuration), from the RECORDs of lib/pythonX.Y/site-packages."""
    installed: dict[str, _Installed] = {}
    base = os.path.abspath(root)
    for site in _site_packages(root):
        for info in _names(site) or []:
            if not info.endswith(".dist-info") or not _is_real_dir(site / info):
                continue
            record = site / info / "RECORD"
            installer = _head(site / info / "INSTALLER", 256).decode("utf-8", "replace").strip() or "an installer"
            rows = csv.reader(io.StringIO(_head(record, RECORD_BYTES).decode("utf-8", "replace")))
            for row in rows:
                if len(row) < 2 or not row[1].startswith("sha256="):
                    continue
                path = os.path.normpath(os.path.join(site, row[0]))
                rel = os.path.relpath(path, base)
                if rel.startswith(("..", "lib/", "lib64/")) or os.path.isabs(rel):
                    continue
                installed[rel] = _Installed(row[1][len("sha256=") :], os.path.relpath(record, base), installer)
    return installed


def _site_packages(root: Path) -> list[Path]:
    """The venv's real lib/pythonX.Y/site-packages folders (never through a link)."""
    if not _is_real_dir(root / "lib"):
        return []
    folders = [root / "lib" / n for n in _names(root / "lib") or [] if PY_DIR.fullmatch(n)]
    return [f / "site-packages" for f in folders if _is_real_dir(f) and _is_real_dir(f / "site-packages")]


def _record_digest(path: Path) -> str | None:
    """A regular file's sha256 as RECORD writes it; None for anything else or an unreadable file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            digest = sha256_of(handle).digest()
    except OSError:
        return None
    finally:
        os.close(fd)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _installed_evidence(root: Path, rel: str, installed: dict[str, _Installed]) -> str | None:
    """Why pip made this file: a RECORD lists it with this very content; None when none does."""
    entry = installed.get(rel)
    if entry is None or _record_digest(root / rel) != entry.sha256:
        return None
    return f"installed by {entry.installer}: listed with its sha256 in {entry.record}"


def _pip_installed(root: Path, tracked: frozenset[str], installed: dict[str, _Installed]) -> list[_Candidate]:
    """Top-level entries that only a RECORD explains (share/, etc/, ...): movable when every file below is
    listed with its content; a suspect when the venv's installer put files in but other files are there too."""
    known = {"pyvenv.cfg", ".gitignore", "CACHEDIR.TAG", ".lock", "bin", "lib", "lib64", "include"}
    tops = sorted({rel.split("/", 1)[0] for rel in installed} - known)
    return [
        c
        for top in tops
        if top not in NEVER and not top.startswith(ARCHIVE_PREFIX)
        for c in [_installed_entry(root, top, tracked, installed)]
        if c is not None
    ]


def _installed_entry(
    root: Path, top: str, tracked: frozenset[str], installed: dict[str, _Installed]
) -> _Candidate | None:
    """One top-level entry a RECORD points into, judged file by file."""
    st = _lstat(root / top)
    if st is None:
        return None
    listed, changed, other = _listed_files(root, top, installed)
    if not listed and not changed:
        return None  # none of the installer's files is here (removed since): what is left is the project's
    named = listed + changed
    records = sorted({installed[rel].record for rel in named})
    evidence = (
        f"{len(named)} file(s) installed by {installed[named[0]].installer}, each listed with its sha256 in "
        f"{', '.join(records)}"
    )
    n_tracked = _tracked_under(top, tracked)
    if not changed and not other and not n_tracked:
        return _cand(top, _kind(st), evidence, True)
    why = [
        f"{n} {what}"
        for n, what in (
            (len(changed), "changed since (content differs from its RECORD)"),
            (len(other), "other file(s)"),
            (n_tracked, "git-tracked path(s)"),
        )
        if n
    ]
    return _cand(top, _kind(st), f"{evidence}, but {' and '.join(why)} under it; not movable", False)


def _listed_files(root: Path, top: str, installed: dict[str, _Installed]) -> tuple[list[str], list[str], list[str]]:
    """Files under ``top`` (itself, if a file) whose content a RECORD lists, those a RECORD names with other
    content, and all other entries; never through a link (a link, an empty or unreadable folder is an other)."""
    listed: list[str] = []
    changed: list[str] = []
    other: list[str] = []
    pending = [top]
    while pending:
        rel = pending.pop()
        st = _lstat(root / rel)
        if st is not None and stat.S_ISDIR(st.st_mode):
            names = _names(root / rel)
            if not names:
                other.append(rel)
            pending += [f"{rel}/{name}" for name in names or []]
        elif rel in installed:
            (listed if _record_digest(root / rel) == installed[rel].sha256 else changed).append(rel)
        else:
            other.append(rel)
    return sorted(listed), sorted(changed), other


def _only_site_packages(path: Path) -> bool:
    """lib/ shape: one or more pythonX.Y/ folders, each holding only site-packages/."""
    names = _names(path)
    return bool(names) and all(
        PY_DIR.fullmatch(n)
        and _is_real_dir(path / n)
        and _names(path / n) == ["site-packages"]
        and _is_real_dir(path / n / "site-packages")
        for n in names
    )


def _only_headers(path: Path) -> bool:
    """include/ shape: empty, pythonX.Y/ folders, or site/ holding only pythonX.Y/ folders."""
    names = _names(path)
    if names is None:
        return False
    return all(
        _is_real_dir(path / n) and (PY_DIR.fullmatch(n) or (n == "site" and _only_py_dirs(path / n))) for n in names
    )


def _only_py_dirs(path: Path) -> bool:
    """Every entry is a real pythonX.Y/ folder."""
    names = _names(path)
    return names is not None and all(PY_DIR.fullmatch(n) and _is_real_dir(path / n) for n in names)


def _shaped_dir(
    root: Path, rel: str, tracked: frozenset[str], shape: Callable[[Path], bool], evidence: str
) -> list[_Candidate]:
    """A real, untracked-or-mixed directory whose content has the venv shape."""
    path = root / rel
    if rel in tracked or not _is_real_dir(path):
        return []
    if _names(path) is None:
        return [_cand(rel, "dir", "could not be listed; left for review", False, shaped=False)]
    if not shape(path):
        return []
    n_tracked = _tracked_under(rel, tracked)
    if n_tracked:
        return [_cand(rel, "dir", f"{evidence}, but {n_tracked} git-tracked path(s) under it; not movable", False)]
    return [_cand(rel, "dir", evidence, True)]


def _lib(root: Path, rel: str, tracked: frozenset[str]) -> list[_Candidate]:
    """lib/ (or a real lib64/) holding only pythonX.Y/site-packages."""
    return _shaped_dir(root, rel, tracked, _only_site_packages, "holds only pythonX.Y/site-packages")


def _include(root: Path, tracked: frozenset[str]) -> list[_Candidate]:
    """include/ that is empty or holds only the venv's pythonX.Y/ header folders."""
    return _shaped_dir(root, "include", tracked, _only_headers, "empty or only pythonX.Y/ header folders")


def _lib64(root: Path, tracked: frozenset[str]) -> list[_Candidate]:
    """lib64: the venv's symlink to lib (recorded, never followed), or a lib-shaped folder."""
    st = _lstat(root / "lib64")
    if st is None or "lib64" in tracked:
        return []
    if not stat.S_ISLNK(st.st_mode):
        return _lib(root, "lib64", tracked)
    target = _readlink(root / "lib64")
    if target in {"lib", "lib/", str(root.absolute() / "lib")}:
        return [_cand("lib64", "symlink", f"symlink -> {target}, as venv makes it", True)]
    return [_cand("lib64", "symlink", f"symlink -> {target}, not to lib; left for review", False, shaped=False)]


def _bin_prefixes(root: Path) -> set[bytes]:
    """'<root>/bin/' as venv writes it into shebangs (absolute, and resolved in case of links)."""
    return {os.fsencode(os.path.join(r, "bin", "")) for r in (root.absolute(), os.path.realpath(root))}


def _shebang_interpreter(head: bytes) -> bytes | None:
    """The interpreter a script starts, including pip's /bin/sh '''exec' form."""
    lines = head.split(b"\n", 2)
    if not lines[0].startswith(b"#!"):
        return None
    words = lines[0][2:].split()
    if words[:1] == [b"/bin/sh"] and len(lines) > 1:
        match = EXEC_LINE.match(lines[1])
        return (match.group(1) or match.group(2)) if match else None
    return words[0] if words else None


def _activates_this_root(head: bytes, prefixes: set[bytes]) -> bool:
    """Whether an activation script is this root's venv's: venv writes the root's path into ``activate``,
    ``.csh`` and ``.fish``; ``Activate.ps1`` and ``activate_this.py`` find it from where they lie
    (pyvenv.cfg, ``__file__``). A project's ``bin/activate.prod`` pointing elsewhere is not a leftover."""
    if b"pyvenv.cfg" in head or b"__file__" in head:
        return True
    roots = (prefix[: -len(b"bin/")] for prefix in prefixes)
    return any(re.search(re.escape(root.rstrip(b"/")) + rb"""["'\s)]""", head) for root in roots)


def _bin_evidence(path: Path, st: os.stat_result, prefixes: set[bytes], creator: _Creator | None) -> str | None:
    """Why the venv's creator made this bin/ entry, or None when it is the project's."""
    name = path.name
    if stat.S_ISLNK(st.st_mode):
        return f"interpreter symlink -> {_readlink(path)}" if INTERPRETER.fullmatch(name) else None
    if not stat.S_ISREG(st.st_mode):
        return None
    head = _head(path)
    if INTERPRETER.fullmatch(name) and head.startswith(b"\x7fELF"):
        return "interpreter binary copied by venv --copies"
    if ACTIVATE.fullmatch(name) and b"VIRTUAL_ENV" in head and _activates_this_root(head, prefixes):
        return "activation script (sets VIRTUAL_ENV to this root)"
    marker = COMPANIONS.get(name)
    if marker and creator is not None and creator.kind in COMPANION_CREATORS and marker in head:
        return f"{creator.kind} writes it beside its activation scripts (venv config by {creator.name})"
    interpreter = _shebang_interpreter(head)
    for prefix in prefixes:
        name = interpreter[len(prefix) :] if interpreter and interpreter.startswith(prefix) else b""
        if INTERPRETER.fullmatch(os.fsdecode(name)):
            return f"entry point; shebang runs {os.fsdecode(interpreter)}"
    return None


def _bin_files(
    root: Path, tracked: frozenset[str], creator: _Creator | None, installed: dict[str, _Installed]
) -> list[_Candidate]:
    """Every entry of a real, untracked bin/; movable only when the venv (its creator, or its installer) made it."""
    if "bin" in tracked or not _is_real_dir(root / "bin"):
        return []
    names = _names(root / "bin")
    if names is None:
        return [_cand("bin", "dir", "could not be listed; left for review", False, shaped=False)]
    prefixes = _bin_prefixes(root)
    return [_bin_candidate(root, f"bin/{name}", tracked, prefixes, creator, installed) for name in names]


def _bin_candidate(
    root: Path,
    rel: str,
    tracked: frozenset[str],
    prefixes: set[bytes],
    creator: _Creator | None,
    installed: dict[str, _Installed],
) -> _Candidate:
    """One bin/ entry: git-tracked or evidence-less entries are the project's."""
    st = _lstat(root / rel)
    if st is None or _tracked_under(rel, tracked):
        return _cand(rel, "file", "project file", False, shaped=False)
    evidence = _bin_evidence(root / rel, st, prefixes, creator) or _installed_evidence(root, rel, installed)
    return _cand(rel, _kind(st), evidence or "project file", evidence is not None, evidence is not None)


def _collapse_bin(files: list[_Candidate]) -> list[_Candidate]:
    """bin/ as one artifact when every entry is venv-made; else its venv-made files (and an unreadable bin)."""
    if files and all(c.movable for c in files):
        why = f"all {len(files)} entries are venv-made (activate, interpreters, entry points, installed scripts)"
        return [_cand("bin", "dir", why, True)]
    return [c for c in files if c.movable or c.artifact.path == "bin"]
