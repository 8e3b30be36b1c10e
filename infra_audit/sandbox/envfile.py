"""Set DB_URL in a project's ``.env`` so that ``start`` then ``stop`` gives the file back as it was.

"As it was" means the same bytes (line endings, final newline, comments, quoted values), the same
mode and owner, and a symlinked ``.env`` still a symlink: we edit the file the link resolves to and
leave the link itself alone (so a ``.env`` shared through a link sees the change, as the user expects).

What we write is recognisable by proof, not by guess: a marker comment naming this run and this
checkout, directly above our ``DB_URL=`` line. A user's own top-level DB_URL binding is only set
aside (commented out line by line, each line marked) when asked to (``force``); lines inside a
multi-line quoted value are never touched, because python-dotenv's parser says which lines are
real bindings. ``restore`` puts back the original bytes only when the file is exactly as we wrote
it; otherwise it removes our lines alone and keeps every change the user made.

Every write goes through a temporary file created exclusively (O_EXCL|O_NOFOLLOW, random name)
beside its target, is fsynced, then renamed into place: a symlink planted at a temporary name is
never followed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from infra_audit.core import files
from infra_audit.core.errors import EnvFileError

TOOL = "tools/sandbox.py"
RECORD = "env-record.json"  # inside the caller's saved_dir
KEY = "DB_URL"
_TAG = rb"tools/sandbox\.py \(run (?P<run>[0-9a-f]{12}), checkout (?P<checkout>[0-9a-f]{12})\)"
_REMOVES = b": `stop` removes this line and the next"
_ADDED = re.compile(rb"# added by " + _TAG + re.escape(_REMOVES) + rb" \(sha256 (?P<next>[0-9a-f]{12})\)")
_SET_ASIDE = re.compile(rb"# (?P<line>.*)  # set aside by " + _TAG)
_EOL = re.compile(rb"(\r\n|\r|\n)\Z")


@dataclass(frozen=True)
class Saved:
    """What ``set_db_url`` changed, so that ``restore`` can undo exactly that and nothing else."""

    run_id: str
    checkout: str
    path: str  # the regular file edited: .env itself, or what the .env symlink resolves to
    existed: bool
    original: bytes  # the file before we wrote, less any stale line of an earlier run of this checkout
    mode: int
    uid: int
    gid: int
    written_sha256: str  # the whole file as we wrote it: unchanged since means "restore the original"
    message: str

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "original": base64.b64encode(self.original).decode()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Saved:
        data = json.loads(text)
        return cls(**{**data, "original": base64.b64decode(data["original"])})


def checkout_key(saved_dir: Path) -> str:
    """A short stable name for this checkout, so one checkout never removes another's lines."""
    return hashlib.sha256(str(saved_dir.resolve()).encode()).hexdigest()[:12]


def load_saved(saved_dir: Path) -> Saved | None:
    """The record of the last ``set_db_url`` in saved_dir, or None."""
    try:
        return Saved.from_json((saved_dir / RECORD).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise EnvFileError(f"{saved_dir / RECORD} is unreadable ({exc.__class__.__name__}): delete it") from None


# ---- pure text logic ----------------------------------------------------------------------------


def _split(line: bytes) -> tuple[bytes, bytes]:
    """(content, line ending) of one physical line."""
    match = _EOL.search(line)
    return (line[: match.start()], match.group()) if match else (line, b"")


def _eol(data: bytes) -> bytes:
    """The file's own line ending (that of its first line), LF for a file with none."""
    first = data.splitlines(keepends=True)[:1]
    return (_split(first[0])[1] if first else b"") or b"\n"


def _bindings(data: bytes) -> list:
    """python-dotenv's bindings, whose original strings put together are exactly ``data``."""
    text = data.decode("utf-8", "surrogateescape")
    bindings = list(parse_stream(io.StringIO(text)))
    if "".join(binding.original.string for binding in bindings) != text:
        raise EnvFileError(".env has text python-dotenv does not account for: fix it or set DB_URL yourself")
    return bindings


def has_db_url(data: bytes) -> bool:
    """Whether the text binds DB_URL at top level (a `DB_URL=` inside a quoted value does not count)."""
    return any(binding.key == KEY for binding in _bindings(data))


def _tag(run_id: str, checkout: str) -> bytes:
    """Names the run and the checkout in our comments; the checkout keeps two clones sharing a .env apart."""
    return f"{TOOL} (run {run_id}, checkout {checkout})".encode()


def add_db_url(data: bytes, url: str, run_id: str, checkout: str, force: bool) -> tuple[bytes, int]:
    """``data`` with our marked DB_URL line appended; with ``force``, earlier DB_URL bindings set aside.

    Returns the new text and how many bindings were set aside. Without ``force`` an existing
    binding is an error: replacing what the user wrote is theirs to ask for.
    """
    if "\n" in url or "\r" in url:
        raise ValueError("a DB_URL must be one line")
    out: list[bytes] = []
    set_aside = 0
    for binding in _bindings(data):
        chunk = binding.original.string.encode("utf-8", "surrogateescape")
        if binding.key != KEY:
            out.append(chunk)
            continue
        if not force:
            raise EnvFileError(f".env already sets {KEY}: pass --force to set it aside for the sandbox's")
        set_aside += 1
        lines = chunk.splitlines(keepends=True)
        while lines and not lines[0].strip():  # dotenv counts blank lines above as the binding's
            out.append(lines.pop(0))
        for line in lines:
            content, ending = _split(line)
            out.append(b"# " + content + b"  # set aside by " + _tag(run_id, checkout) + ending)
    eol = _eol(data)
    db_line = f"{KEY}={url}".encode()
    marker = b"# added by %s%s (sha256 %s)" % (_tag(run_id, checkout), _REMOVES, _short_hash(db_line))
    if data and not data.endswith((b"\n", b"\r")):  # keep the file's missing final newline missing
        out.append(eol + marker + eol + db_line)
    else:
        out.append(marker + eol + db_line + eol)
    return b"".join(out), set_aside


def _short_hash(line: bytes) -> bytes:
    """Names our DB_URL line in its marker, so a line the user changed is told apart without a record."""
    return hashlib.sha256(line).hexdigest()[:12].encode()


def remove_ours(data: bytes, checkout: str, run_id: str | None = None) -> tuple[bytes, bool]:
    """``data`` without our marker, our DB_URL line and our set-aside marks; other lines untouched.

    Only lines marked with this checkout (and ``run_id``, when given) count as ours. Our DB_URL line
    is the one right below our marker, exactly as we wrote it (its hash is in the marker): a line
    the user changed is theirs and stays. Returns the new text and whether the user now sets
    DB_URL themselves; then the set-aside lines stay commented out (without our mark), so that the
    user's new value is the only one.
    """

    def ours(match: re.Match | None) -> bool:
        return match is not None and match["checkout"].decode() == checkout and run_id in (None, match["run"].decode())

    lines = data.splitlines(keepends=True)
    kept: list[bytes] = []
    index = 0
    while index < len(lines):
        marker = _ADDED.fullmatch(_split(lines[index])[0])
        if not ours(marker):
            kept.append(lines[index])
            index += 1
            continue
        index += 1  # the marker goes; the line below goes too if it is still our DB_URL line
        below = _split(lines[index])[0] if index < len(lines) else None
        if below is not None and _short_hash(below) == marker["next"]:
            index += 1
        if index == len(lines) and not _split(lines[-1])[1] and kept:  # we ended the file: end it as before
            kept[-1] = _split(kept[-1])[0]
    rest = b"".join(kept)
    user_sets_it = has_db_url(rest)
    result = []
    for line in rest.splitlines(keepends=True):
        content, ending = _split(line)
        match = _SET_ASIDE.fullmatch(content)
        if ours(match):
            result.append((b"# " if user_sets_it else b"") + match["line"] + ending)
        else:
            result.append(line)
    return b"".join(result), user_sets_it


# ---- files ----------------------------------------------------------------------------------------


def write_atomically(target: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """``files.write_atomically``, its failures said as the sandbox's user should read them."""
    try:
        files.write_atomically(target, data, mode, owner)
    except PermissionError:
        raise EnvFileError(f"cannot write in {target.parent}: make it writable, or set DB_URL yourself") from None
    except FileExistsError as exc:
        raise EnvFileError(exc.strerror) from None


def _real_file(env_path: Path) -> Path:
    """The file to edit: .env, or the file its symlink resolves to (the link itself stays)."""
    if not env_path.is_symlink():
        return env_path
    real = Path(os.path.realpath(env_path))
    if not real.exists():
        raise EnvFileError(f"{env_path} is a symlink to {real}, which does not exist: fix or remove the link")
    return real


def _owner_to_keep(uid: int, gid: int) -> tuple[int, int] | None:
    """Who must own the rewritten file (None: us, as now); refuses an owner we could not give back."""
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return None
    if os.geteuid() != 0 and uid != os.geteuid():
        raise EnvFileError("the .env belongs to another user: run this as that user, or set DB_URL yourself")
    return uid, gid


def _read(real: Path) -> bytes | None:
    try:
        return real.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError:  # e.g. mode 0200 for an ordinary user (root reads anything)
        raise EnvFileError(f"{real} is not readable: left untouched; make it readable or set DB_URL yourself") from None


def user_db_url(env_path: Path, saved_dir: Path) -> str | None:
    """The DB_URL .env would give once this checkout's sandbox lines are out: the user's own, or None.

    For deciding whether ``start`` needs ``--force``: a line an earlier sandbox run left is not the user's.
    """
    current = _read(_real_file(env_path))
    if current is None:
        return None
    rest, _ = remove_ours(current, checkout_key(saved_dir))
    return dotenv_values(stream=io.StringIO(rest.decode("utf-8", "surrogateescape"))).get(KEY)


def _editable(env_path: Path, real: Path) -> os.stat_result:
    """The file's status, or an EnvFileError when editing it would break what the user set up."""
    info = real.stat()
    if not stat.S_ISREG(info.st_mode):
        raise EnvFileError(f"{env_path} is not a regular file: move it away or set DB_URL yourself")
    if not info.st_mode & stat.S_IWUSR or not os.access(real, os.W_OK):
        raise EnvFileError(f"{env_path} is read-only: left untouched; make it writable or edit DB_URL yourself")
    if info.st_nlink > 1:  # a rename would split the hard link, as it once split symlinks
        raise EnvFileError(f"{env_path} has {info.st_nlink} hard links: left untouched; edit DB_URL yourself")
    return info


def set_db_url(env_path: Path, url: str, saved_dir: Path, *, force: bool = False) -> Saved:
    """Append our marked ``DB_URL=url`` to env_path and record in saved_dir how to undo it.

    Lines marked by an earlier run of this checkout are dropped first (a second ``start``, or one
    after its saved_dir was deleted): that sandbox's URL is dead, and must never be recorded as the
    user's original. A read-only .env is refused, untouched.
    """
    real, written, mode, owner, saved = _planned(env_path, url, saved_dir, force)
    write_atomically(saved_dir / RECORD, saved.to_json().encode(), 0o600, None)  # first: a crash leaves no unknown line
    try:
        write_atomically(real, written, mode, owner)
    except BaseException:
        (saved_dir / RECORD).unlink()
        raise
    return saved


def check_settable(env_path: Path, saved_dir: Path, *, force: bool = False) -> None:
    """Refuse now what ``set_db_url`` would refuse at the end (a read-only .env, a folder we cannot
    write in, a DB_URL of the user's without ``force``), so no server is started for nothing."""
    real = _planned(env_path, "postgresql://sandbox@localhost/sandbox", saved_dir, force)[0]
    if not os.access(real.parent, os.W_OK):  # the new file is written beside it, then renamed
        raise EnvFileError(f"cannot write in {real.parent}: make it writable, or set DB_URL yourself")


def _planned(
    env_path: Path, url: str, saved_dir: Path, force: bool
) -> tuple[Path, bytes, int, tuple[int, int] | None, Saved]:
    """What ``set_db_url`` would write where (file, content, mode, owner, record), nothing written yet."""
    notes = []
    real = _real_file(env_path)
    checkout = checkout_key(saved_dir)
    current = _read(real)
    if current is None:
        folder = real.parent.stat()
        mode, owner = 0o600, ((folder.st_uid, folder.st_gid) if os.geteuid() == 0 else None)
        base = b""
    else:
        info = _editable(env_path, real)
        mode, owner = info.st_mode, _owner_to_keep(info.st_uid, info.st_gid)
        base, _ = remove_ours(current, checkout)
        if base != current:
            notes.append(f"dropped the {KEY} an earlier sandbox run left in {env_path}")
    run_id = secrets.token_hex(6)
    try:
        written, set_aside = add_db_url(base, url, run_id, checkout, force)
    except EnvFileError as exc:
        raise EnvFileError(f"{env_path}: {exc}") from None
    if set_aside:
        notes.append(f"set aside your {KEY} in {env_path}: `stop` restores it")
    existed = current is not None and (base != b"" or current == b"")  # only dead lines: not the user's file
    saved = Saved(
        run_id,
        checkout,
        str(real),
        existed,
        base,
        mode,
        *(owner or (os.geteuid(), os.getegid())),
        hashlib.sha256(written).hexdigest(),
        "; ".join([*notes, f"wrote {KEY} to {env_path}"]),
    )
    return real, written, mode, owner, saved


def restore(env_path: Path, saved: Saved) -> str:
    """Undo ``set_db_url``: the original bytes if the file is as we wrote it, else only our lines out.

    Never deletes a line it did not write; a DB_URL the user set meanwhile is kept, and said so.
    Returns one line saying what it did (or why it left the file alone).
    """
    if not (env_path.is_symlink() or env_path.exists()):
        return f"{env_path} is gone: nothing to restore"
    try:
        real = _real_file(env_path)
        if str(real) != saved.path:
            return f"{env_path} now leads to {real}, not the file the sandbox edited: left as it is"
        info = _editable(env_path, real)
    except EnvFileError as exc:
        return str(exc)
    current = real.read_bytes()
    if hashlib.sha256(current).hexdigest() == saved.written_sha256:
        if not saved.existed:
            _remove(real)
            return f"removed {env_path}, which the sandbox had created"
        write_atomically(real, saved.original, saved.mode, _owner_to_keep(saved.uid, saved.gid))
        return f"restored {env_path} as it was before the sandbox"
    rest, user_sets_it = remove_ours(current, saved.checkout, saved.run_id)
    if rest == current:
        return f"{env_path} holds no sandbox line any more: left as it is"
    if rest == b"" and not saved.existed:
        _remove(real)
        return f"removed {env_path}, which held only the sandbox's lines"
    write_atomically(real, rest, info.st_mode, _owner_to_keep(info.st_uid, info.st_gid))
    if user_sets_it:
        return f"removed the sandbox's lines from {env_path}; kept the {KEY} you set since (the old one: a comment)"
    return f"removed the sandbox's lines from {env_path}; kept your other changes"


def _remove(real: Path) -> None:
    real.unlink()
    files.fsync_folder(real.parent)
