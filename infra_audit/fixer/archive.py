"""The fixer's library: archive a root's venv leftovers with a manifest, and restore them exactly.

What moves is decided by ``infra_audit.core.venv_artifacts`` alone (the audit's classifier), so nothing
moves unless ``<root>/pyvenv.cfg`` with ``home`` proves a venv was made there. A tracked file a venv
overwrote (a ``.gitignore`` holding ``*``) is reported with git's fix and never touched. Entries are renamed
(never copied, never over anything) into a fresh ``<root>/_archive_venv_cleanup_<UTC>/`` whose
``manifest.json`` is fsynced before each move, so any run, even one killed midway, can be undone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infra_audit.core.errors import ArchiveError, ArchiveStopped, InfraError
from infra_audit.core.files import sha256_of, write_atomically
from infra_audit.core.text import printable
from infra_audit.core.venv_artifacts import (
    Artifact,
    Scan,
    describe_artifact,
    in_use,
    in_use_advice,
    scan_root,
)

ARCHIVE_PREFIX = "_archive_venv_cleanup_"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
MAX_ARCHIVE_SUFFIX = 100
RENAME_NOREPLACE, AT_FDCWD = 1, -100  # Linux renameat2 constants
MOVE_LAST = "pyvenv.cfg"  # the proof moves last, so an interrupted run can simply be re-run
FINGERPRINT_KEYS = ("kind", "mode", "size", "sha256", "link_target")


@dataclass
class Report:
    """The audit trail: every action as one line, handed to ``echo`` as it happens (a crash keeps the trail)."""

    echo: Callable[[str], None] | None = None
    events: list[dict[str, str]] = field(default_factory=list)

    def say(self, action: str, path: str, detail: str = "") -> None:
        """Record one action and echo it at once, escaped so a file name cannot fake a line."""
        self.events.append({"action": action, "path": path, "detail": detail})
        if self.echo is not None:
            path, detail = printable(path), printable(detail)
            self.echo(f"{action:<10} {path}{': ' + detail if path and detail else detail}")

    def count(self, action: str) -> int:
        """How many lines of one action were said."""
        return sum(1 for e in self.events if e["action"] == action)


@dataclass
class Outcome:
    """What a run did, for the exit code and --json."""

    command: str
    root: str
    unresolved: bool = False  # something needs a human: a suspect, an overwritten tracked file, a failed move...
    venv_home: str | None = None
    creator: str | None = None
    artifacts: list[dict[str, str]] = field(default_factory=list)
    suspects: list[dict[str, str]] = field(default_factory=list)
    overwritten: list[dict[str, str]] = field(default_factory=list)
    archive: str | None = None


# --- fingerprints: what restore checks before it moves anything back ---------------------------


def fingerprint(path: Path) -> dict:
    """Kind, mode, size, link target and sha256 (a Merkle digest for folders), without following links."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return _dir_print(path, stat.S_IMODE(st.st_mode))
    return _leaf_print(path, st)


def _print(kind: str, mode: int, size: int, sha256: str | None, link_target: str | None) -> dict:
    """One fingerprint record, keyed as in the manifest."""
    return {"kind": kind, "mode": mode, "size": size, "sha256": sha256, "link_target": link_target}


def _leaf_print(path: Path, st: os.stat_result) -> dict:
    """The fingerprint of anything but a folder."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return _print("symlink", mode, 0, None, os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            return _print("file", mode, st.st_size, sha256_of(handle).hexdigest(), None)
    return _print("other", mode, 0, None, None)


@dataclass
class _Folder:
    """A folder whose digest is being built: its children are folded in, in name order, as they finish."""

    path: Path
    mode: int
    name: str = ""
    names: Iterator[str] = field(init=False)
    digest: Any = field(init=False, default_factory=hashlib.sha256)
    size: int = 0

    def __post_init__(self) -> None:
        self.names = iter(sorted(os.listdir(self.path)))

    def add(self, name: str, child: dict) -> None:
        """Fold one finished child into this folder's digest."""
        self.size += child["size"]
        self.digest.update(json.dumps([name, child], sort_keys=True).encode())


def _dir_print(path: Path, mode: int) -> dict:
    """A folder's digest covers every name, kind, mode, content and link target below it.

    Walked with an explicit stack: a site-packages hundreds of folders deep must not hit the recursion limit.
    """
    stack = [_Folder(path, mode)]
    while True:
        folder = stack[-1]
        name = next(folder.names, None)
        if name is None:
            stack.pop()
            done = _print("dir", folder.mode, folder.size, folder.digest.hexdigest(), None)
            if not stack:
                return done
            stack[-1].add(folder.name, done)
            continue
        st = os.lstat(folder.path / name)
        if stat.S_ISDIR(st.st_mode):
            stack.append(_Folder(folder.path / name, stat.S_IMODE(st.st_mode), name))
        else:
            folder.add(name, _leaf_print(folder.path / name, st))


# --- moving without ever overwriting or copying ---------------------------------------------------


def _load_renameat2():
    """libc's renameat2, or None where the platform has none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_RENAMEAT2 = _load_renameat2()


def rename_noreplace(src: Path, dst: Path) -> None:
    """Atomic rename that fails if dst exists (os.rename would silently replace files and empty dirs)."""
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):  # those two: the filesystem lacks the flag
            raise OSError(code, os.strerror(code), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    os.rename(src, dst)


def move(src: Path, dst: Path) -> None:
    """Move one entry by rename only: refuse across devices rather than copy-then-delete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.lstat(src).st_dev != os.stat(dst.parent).st_dev:
        raise OSError(errno.EXDEV, "on another device; refusing to copy", str(src))
    rename_noreplace(src, dst)


def _error_text(exc: OSError) -> str:
    """An OSError as the user should read it."""
    return exc.strerror or str(exc)


# --- the manifest: written before every move -----------------------------------------------------


def save_manifest(archive: Path, manifest: dict) -> None:
    """Replace the manifest whole (temporary file, fsync, rename, fsync the folder), so a crash leaves
    the old or the new one."""
    write_atomically(archive / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))


def load_manifest(archive: Path) -> dict:
    """Read and sanity-check an archive's manifest; every problem is a ArchiveError line."""
    if not archive.is_dir():
        raise ArchiveError(
            f"archive {archive} does not exist; pass the _archive_venv_cleanup_* folder a cleanup created"
        )
    if os.path.islink(archive / MANIFEST) or (archive / MANIFEST).exists() and not (archive / MANIFEST).is_file():
        raise ArchiveError(f"{archive / MANIFEST} is not a regular file (a link?); restore by hand from the folder")
    try:
        manifest = json.loads((archive / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArchiveError(f"{archive / MANIFEST} is missing; without it nothing can be restored safely") from exc
    except (OSError, ValueError) as exc:
        problem = f"{archive / MANIFEST} is unreadable or corrupt ({exc})"
        raise ArchiveError(f"{problem}; restore by hand from the folder") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArchiveError(f"{archive / MANIFEST} is not a cleanup manifest (format {MANIFEST_FORMAT})")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or not all(_valid_entry(e) for e in entries):
        raise ArchiveError(f"{archive / MANIFEST} has malformed entries; restore by hand from the folder")
    recorded = manifest.get("root")
    if not isinstance(recorded, str) or not Path(recorded).is_absolute():
        raise ArchiveError(f"{archive / MANIFEST} records no absolute root; restore by hand from the folder")
    return manifest


def _valid_entry(entry: object) -> bool:
    """An entry restore can act on: relative paths that stay inside root and archive."""
    if not isinstance(entry, dict):
        return False
    paths = [entry.get("source"), entry.get("destination")]
    return all(
        isinstance(p, str) and Path(p).parts and not Path(p).is_absolute() and ".." not in Path(p).parts for p in paths
    )


def plan_entry(root: Path, artifact: Artifact) -> dict:
    """A manifest entry: where it goes, its fingerprint and evidence; 'failed' if it cannot be read."""
    entry = {
        "source": artifact.path,
        "destination": artifact.path,
        "evidence": artifact.evidence,
        "status": "planned",
        "error": None,
    }
    try:
        entry.update(fingerprint(root / artifact.path))
    except OSError as exc:
        entry.update(_print(artifact.kind, 0, 0, None, None), status="failed", error=f"cannot read: {_error_text(exc)}")
    return entry


# --- cleanup ----------------------------------------------------------------------------------------


def make_archive(root: Path, now: datetime) -> Path:
    """A new archive folder made with exclusive creation; same-second runs get a suffix."""
    base = ARCHIVE_PREFIX + now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, MAX_ARCHIVE_SUFFIX + 1):
        archive = root / (base if n == 1 else f"{base}_{n}")
        try:
            archive.mkdir()
            return archive
        except FileExistsError:
            continue
    raise ArchiveError(f"{MAX_ARCHIVE_SUFFIX} archives named {base}* already exist in {root}; remove old ones")


def move_order(artifacts: tuple[Artifact, ...]) -> list[Artifact]:
    """pyvenv.cfg last: while it stays, a re-run still proves the venv and finds what is left."""
    return sorted(artifacts, key=lambda a: a.path == MOVE_LAST)


def kept_snapshot(root: Path, scan: Scan, archive_names: set[str]) -> dict[str, tuple]:
    """lstat facts of every kept top-level entry and kept bin/ file, to prove they were not touched."""
    moving = {a.path for a in scan.artifacts}
    names = [n for n in _listing(root) if n not in moving and n not in archive_names]
    if "bin" in names and (root / "bin").is_dir() and not (root / "bin").is_symlink():
        names += [f"bin/{n}" for n in _listing(root / "bin") if f"bin/{n}" not in moving]
    return {name: _lstat_facts(root / name) for name in names}


def _listing(path: Path) -> list[str]:
    """Entries of a folder; empty when unreadable (the classifier reports those)."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _lstat_facts(path: Path) -> tuple:
    """What 'untouched' means: same inode, type, mode; for non-folders also size and mtime."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return ("unreadable", exc.errno)
    if stat.S_ISDIR(st.st_mode):  # a folder's mtime changes when a venv file leaves it
        return (st.st_ino, st.st_mode)
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)


def clean(root: Path, dry_run: bool, report: Report) -> Outcome:
    """Scan, then (unless dry-run) archive every artifact and verify the result, one run per root at a time."""
    with root_lock(root):
        return _clean(root, dry_run, report)


def _clean(root: Path, dry_run: bool, report: Report) -> Outcome:
    scan = scan_root(root)
    outcome = Outcome(
        "dry-run" if dry_run else "clean",
        str(root),
        venv_home=scan.venv_home,
        creator=scan.creator,
        artifacts=[asdict(a) for a in scan.artifacts],
        suspects=[asdict(a) for a in scan.suspects],
        overwritten=[asdict(a) for a in scan.overwritten],
    )
    why = in_use(root, [a.path for a in scan.artifacts]) if scan.artifacts else None
    if why is not None:  # the one line, and nothing moves: not even in a dry run is this a plan
        outcome.unresolved = True
        report.say("REFUSED", "", "nothing moved: " + in_use_advice(root, why))
        return outcome
    _report_scan(scan, report)
    if scan.suspects or scan.overwritten:
        outcome.unresolved = True
    if not scan.artifacts:
        report.say("summary", "", "nothing to clean" if scan.clean else "nothing moved; " + _needs_a_human(scan))
        return outcome
    if dry_run:
        _dry_run(scan, report)
        return outcome
    _archive_all(root, scan, outcome, report)
    return outcome


def _dry_run(scan: Scan, report: Report) -> None:
    """Say what a cleanup would do, including holding the proof back, without touching anything."""
    held = proof_hold_reason(0, len(scan.suspects))
    moving = [a for a in move_order(scan.artifacts) if not (held and a.path == MOVE_LAST)]
    for artifact in moving:
        report.say("would-move", artifact.path, f"-> {ARCHIVE_PREFIX}<UTC>/{artifact.path}")
    if held and len(moving) < len(scan.artifacts):
        report.say("would-hold", MOVE_LAST, held)
    report.say("summary", "", f"dry run: {len(moving)} entries would move; nothing changed")


def _needs_a_human(scan: Scan) -> str:
    """What is left for a person: suspects to decide on, tracked files to give back with git."""
    parts = [f"{len(scan.suspects)} suspect(s) need a human decision"] if scan.suspects else []
    if scan.overwritten:
        parts.append(f"{len(scan.overwritten)} tracked file(s) a venv overwrote need git's fix (never done here)")
    return "; ".join(parts)


def _report_scan(scan: Scan, report: Report) -> None:
    """One line for the proof and each finding."""
    if scan.venv_home:
        report.say("venv", "pyvenv.cfg", f"home = {scan.venv_home}: a venv was made in the root by {scan.creator}")
    else:
        report.say("venv", "", "no pyvenv.cfg with 'home' in the root: no venv proven, nothing will move")
    for artifact in scan.artifacts:
        report.say("artifact", "", describe_artifact(artifact))
    for suspect in scan.suspects:
        report.say("suspect", "", describe_artifact(suspect))
    for overwritten in scan.overwritten:
        report.say("OVERWRITE", "", describe_artifact(overwritten))


def _archive_all(root: Path, scan: Scan, outcome: Outcome, report: Report) -> None:
    """Plan (fingerprint) first, then create the archive and record the plan, move entry by entry, verify."""
    before = kept_snapshot(root, scan, _archive_names(root))
    entries = [plan_entry(root, a) for a in move_order(scan.artifacts)]  # before mkdir: a crash leaves no folder
    archive = make_archive(root, datetime.now(timezone.utc))
    manifest = {
        "format": MANIFEST_FORMAT,
        "tool": "tools/cleanup_root.py",
        "root": str(root),
        "created": datetime.now(timezone.utc).isoformat(),
        "venv_home": scan.venv_home,
        "entries": entries,
    }
    try:
        save_manifest(archive, manifest)
    except BaseException:
        with contextlib.suppress(OSError):  # only if empty: this run made it and nothing was recorded
            os.rmdir(archive)
        raise
    outcome.archive = str(archive)
    report.say("archive", archive.name, "created")
    with stops_named(archive, "moves", "fix the cause, then re-run to finish, or restore that archive"):
        for entry in manifest["entries"]:
            _hold_proof(manifest, entry, len(scan.suspects))
            _move_entry(root, archive, manifest, entry, report)  # an OSError: its manifest could not be saved
        statuses = [e["status"] for e in manifest["entries"]]
        problems = statuses.count("failed") + _verify(root, scan, before, archive, report)
    if problems:
        outcome.unresolved = True
    report.say(
        "summary",
        "",
        f"moved {statuses.count('moved')}, failed {statuses.count('failed')}, "
        f"held {statuses.count('held')}, suspects {len(scan.suspects)}"
        + (f"; {_needs_a_human(scan)}" if scan.overwritten else ""),
    )


@contextlib.contextmanager
def root_lock(root: Path) -> Iterator[None]:
    """One fixer at a time in a root (two would split the venv over two archives): an flock on the root
    folder itself, which creates no file there."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(
                f"another cleanup_root.py run is working in {root}; wait for it to end, then run again"
            ) from None
        yield
    finally:
        os.close(folder)


@contextlib.contextmanager
def stops_named(archive: Path, work: str, advice: str) -> Iterator[None]:
    """Once the archive holds a manifest, any stop says where things are: exit 2 would say nothing moved."""
    try:
        yield
    except KeyboardInterrupt:
        raise ArchiveStopped(
            f"interrupted after {work} began: {archive.name} holds what moved and its manifest; " + advice,
            archive=str(archive),
            interrupted=True,
        ) from None
    except ArchiveStopped:
        raise
    except (OSError, InfraError) as exc:
        cause = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        raise ArchiveStopped(
            f"stopped after {work} began ({cause}): {archive.name} holds what moved and its manifest; {advice}",
            archive=str(archive),
        ) from None


def _archive_names(root: Path) -> set[str]:
    """Archive folders already in root: never 'kept entries' to compare, never classified."""
    return {n for n in _listing(root) if n.startswith(ARCHIVE_PREFIX)}


def _hold_proof(manifest: dict, entry: dict, suspects: int) -> None:
    """Keep pyvenv.cfg while anything venv-made stays, so a re-run still proves the venv and can finish."""
    failed = sum(1 for e in manifest["entries"] if e["status"] == "failed")
    reason = proof_hold_reason(failed, suspects)
    if entry["source"] == MOVE_LAST and entry["status"] == "planned" and reason:
        entry.update(status="held", error=reason)


def proof_hold_reason(failed: int, suspects: int) -> str | None:
    """Why pyvenv.cfg must stay: without it, what is left (a suspect lib/, an unmoved file) is never provable again."""
    left = [f"{n} {what}" for n, what in ((failed, "entry(ies) could not move"), (suspects, "suspect(s) remain")) if n]
    return f"kept as the venv proof because {' and '.join(left)}; fix those and re-run" if left else None


def _move_entry(root: Path, archive: Path, manifest: dict, entry: dict, report: Report) -> None:
    """Move one planned entry and record its status (moved, failed, held) before going on; report either way."""
    if entry["status"] == "planned":
        try:
            move(root / entry["source"], archive / entry["destination"])
        except OSError as exc:
            entry.update(status="failed", error=_error_text(exc))
        else:
            entry["status"] = "moved"
    save_manifest(archive, manifest)
    if entry["status"] == "held":
        report.say("held", entry["source"], entry["error"])
    elif entry["status"] == "failed":
        report.say("FAILED", entry["source"], f"{entry['error']}; left in place")
    else:
        report.say("moved", entry["source"], f"-> {archive.name}/{entry['destination']}")


def _verify(root: Path, scan: Scan, before: dict[str, tuple], archive: Path, report: Report) -> int:
    """Re-scan (nothing may be left) and re-lstat kept entries (none may have changed); count problems."""
    after_scan = scan_root(root)
    left = list(after_scan.artifacts + after_scan.suspects)
    for artifact in left:
        report.say("left", "", describe_artifact(artifact))
    after = kept_snapshot(root, scan, _archive_names(root) | {archive.name})
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    for name in changed:
        report.say("CHANGED", name, "a kept entry differs from before the run; check it")
    if not left and not changed:
        report.say("verified", "", f"classifier finds nothing left; {len(before)} kept entries untouched")
    return len(left) + len(changed)


# --- restore -------------------------------------------------------------------------------------


def restore(archive: Path, report: Report, root: Path | None = None) -> Outcome:
    """Move every archived entry back into the manifest's root, never overwriting.

    root is an explicit --root, checked against the manifest rather than trusted, so a typo cannot
    restore into another project.
    """
    manifest = load_manifest(archive)
    root, archive = restore_target(archive, Path(manifest["root"]), root)
    with root_lock(root):
        return _restore(root, archive, manifest, report)


def _restore(root: Path, archive: Path, manifest: dict, report: Report) -> Outcome:
    outcome = Outcome("restore", str(root), archive=str(archive), venv_home=manifest.get("venv_home"))
    pending = [e for e in manifest["entries"] if e.get("status") in ("planned", "moved")]
    if not pending:
        report.say("summary", "", f"nothing to restore in {archive.name} (no entry is archived)")
        return outcome
    with stops_named(archive, "restores", "fix the cause, then run --restore again to finish"):
        for entry in reversed(pending):
            _restore_entry(root, archive, manifest, entry, report)
    refused = sum(1 for e in pending if e["status"] != "restored")
    if refused:
        outcome.unresolved = True
    else:
        _prune_empty_dirs(archive)
    report.say("summary", "", f"restored {len(pending) - refused}, refused {refused}; manifest kept in {archive}")
    return outcome


def restore_target(archive: Path, recorded: Path, given: Path | None) -> tuple[Path, Path]:
    """The root to restore into (the manifest's) and the archive's real path inside it.

    The archive's own parent is not trusted: reached through a symlink, or moved elsewhere, it would
    put the venv files outside the project. Refuses (ArchiveError) instead of guessing.
    """
    real_root, real_archive = Path(os.path.realpath(recorded)), Path(os.path.realpath(archive))
    if given is not None and os.path.realpath(given) != str(real_root):
        raise ArchiveError(f"--root {given} is not the root this archive was made in ({recorded}); nothing restored")
    if real_archive.parent != real_root:
        raise ArchiveError(
            f"archive {archive} is at {real_archive}, not directly inside its root {recorded} "
            "(moved?); move it back into that root, then restore; nothing restored"
        )
    return recorded, recorded / real_archive.name


def _restore_entry(root: Path, archive: Path, manifest: dict, entry: dict, report: Report) -> None:
    """Put one entry back if the archived copy still matches its fingerprint and nothing is in its place."""
    src, dst, name = archive / entry["destination"], root / entry["source"], entry["source"]
    problem = (
        _linked_parent(root, entry["source"])
        or _linked_parent(archive, entry["destination"])
        or _restore_problem(src, dst, entry)
    )
    if problem == "in place":
        report.say(
            "in-place",
            name,
            "was never moved; still at its place"
            if entry["status"] == "planned"
            else "already back at its place, as archived (an earlier restore stopped before saying so)",
        )
        entry["status"] = "restored"
    elif problem:
        report.say("REFUSED", name, problem)
        return
    else:
        try:
            move(src, dst)
        except OSError as exc:
            report.say("REFUSED", name, f"{_error_text(exc)}; left in the archive")
            return
        entry["status"] = "restored"
        report.say("restored", name, f"<- {archive.name}/{entry['destination']}")
    save_manifest(archive, manifest)


def _linked_parent(base: Path, rel: str) -> str | None:
    """Why rel's folders below base cannot be trusted: a symlink among them, even one pointing inside base.

    Through a link (say bin -> scripts) the entry would land somewhere it never was; restore is exact or refuses.
    """
    folder = base
    for part in Path(rel).parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return f"{folder} is a symlink (-> {os.readlink(folder)}); restore never writes through a link"
    return None


def _restore_problem(src: Path, dst: Path, entry: dict) -> str | None:
    """Why an entry cannot go back (None: it can; 'in place': it never left, or is back exactly as archived)."""
    if not os.path.lexists(src):
        if os.path.lexists(dst) and (entry["status"] == "planned" or _back_as_archived(dst, entry)):
            return "in place"
        return f"missing from the archive ({src}); cannot restore"
    if os.path.lexists(dst):
        return f"{dst} exists now; not overwritten (move it away and re-run --restore)"
    try:
        if not _matches(src, entry):
            return "archived copy differs from the manifest (content, mode or link changed); left in the archive"
    except OSError as exc:
        return f"archived copy unreadable ({_error_text(exc)}); left in the archive"
    return None


def _matches(path: Path, entry: dict) -> bool:
    """Whether path is what the manifest recorded (kind, mode, size, content, link); OSError when unreadable."""
    actual = fingerprint(path)
    return all(actual[k] == entry.get(k) for k in FINGERPRINT_KEYS)


def _back_as_archived(path: Path, entry: dict) -> bool:
    """Whether a moved entry's original place holds exactly what was archived (unreadable: it cannot tell)."""
    try:
        return _matches(path, entry)
    except OSError:
        return False


def _prune_empty_dirs(archive: Path) -> None:
    """After a full restore only manifest.json stays: drop the emptied folders, never a file."""
    for folder, _, _ in os.walk(archive, topdown=False):
        if Path(folder) != archive:
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty: it holds something we did not put back, keep it
