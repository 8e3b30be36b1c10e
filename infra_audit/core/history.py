"""Audit history: each audit appends its row counts to a JSONL file, and the next compares against
the last PASSING audit of the same database, so a table that silently lost rows fails the audit.

One line per audit, written with a single ``os.write`` in ``O_APPEND`` mode: a killed run leaves
either the whole line or none of it, and a torn line (from another writer or a full disk) is
skipped and counted on read rather than crashing the audit. The file holds no secrets: a database
is known by ``host:port/database`` as DB_URL spells it, the server's system identifier and the
address it answered on, never a user or password. The file is the audit's own: a symbolic link, a
FIFO, a device, a file whose first line is not a record, or one too big to read whole is refused,
never followed, read or written. Use::

    target, note = identify(conn, db_url, timeouts)     # note: why the server's own identity is missing
    past = read(path)                                   # HistoryError: refused; past.skipped: torn lines
    current = record(target, table_stats_list, passed=...)
    findings = compare(past.last_passing(target), current, settings.max_shrink, past)
    append(path, replace(current, passed=not any(f.failed for f in findings) and ...))
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import DbUrl
from infra_audit.core.errors import HistoryError, ProbeError
from infra_audit.core.probe import TableStats
from infra_audit.core.text import counted, percent

DEFAULT_MAX_SHRINK = 0.10
MAX_BYTES = 64 * 2**20  # some 300,000 audits; a bigger file is refused, never read in part (its newest lines last)
FIRST_LINE_BYTES = 2**16  # the first line, read to prove the file is a history before anything is written to it
# Where the session answered: the server's own address and port (NULL over a Unix socket) and the database.
_ADDRESS = (
    "SELECT pg_catalog.current_database(), pg_catalog.host(pg_catalog.inet_server_addr()),"
    " pg_catalog.inet_server_port()"
)
# The cluster: initdb's system identifier, the same for every address, service, pooler and standby that reaches it.
_CLUSTER = "SELECT system_identifier::text FROM pg_catalog.pg_control_system()"


@dataclass(frozen=True)
class Target:
    """Which database an audit saw, by each name that tells it: ``url``, DB_URL's servers and database
    (``host:port/database``, what earlier versions knew it by); ``cluster``, the server's system identifier
    and the database; ``address``, the address and port the server answered on, and the database (None:
    unknown). A record of any of these names is of this database: another spelling of the URL, a
    standby, a pooler share the cluster; a server made anew at the same place shares the address or URL."""

    url: str
    cluster: str | None = None
    address: str | None = None

    def same(self, other: Target) -> bool:
        return any(mine is not None and mine == theirs for mine, theirs in zip(astuple(self), astuple(other)))

    @property
    def shown(self) -> str:
        """``127.0.0.1:5432/mt5_crs (server 7716582466661467947)``."""
        return self.url + (f" (server {self.cluster.split('/')[0]})" if self.cluster else "")


@dataclass(frozen=True)
class TableCount:
    """A table's rows as the audit saw them: exact, the planner's estimate, or a floor (``over``: more
    than ``rows``); None when unknown (in records of earlier versions). ``live``: for an estimate, the
    statistics' live rows when rows went since the estimate was made (this run only: never recorded)."""

    rows: int | None
    exact: bool
    over: bool = False
    live: int | None = field(default=None, compare=False)

    @property
    def shown(self) -> str:
        """``272,395 rows (exact)``, ``~340,000 rows (estimate)`` or ``more than 100,000 rows``."""
        if self.rows is None:
            return "an unknown number of rows"
        if self.over:
            return f"more than {counted(self.rows, 'row')}"
        return f"{counted(self.rows, 'row')} (exact)" if self.exact else f"~{counted(self.rows, 'row')} (estimate)"


@dataclass(frozen=True)
class Record:
    """One audit: when (UTC ISO), of which database, the counts per table, and whether it passed."""

    time: str
    target: Target
    tables: dict[str, TableCount] = field(hash=False)
    passed: bool

    def to_line(self) -> str:
        tables = {
            name: {"rows": count.rows, "exact": count.exact, **({"over": True} if count.over else {})}
            for name, count in self.tables.items()
        }
        names = {"target": self.target.url, "cluster": self.target.cluster, "address": self.target.address}
        data = {
            "time": self.time,
            **{k: v for k, v in names.items() if v is not None},
            "tables": tables,
            "passed": self.passed,
        }
        return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Record:
        """Raise ValueError (or KeyError/TypeError) on anything that is not a whole, well-formed record."""
        data = json.loads(line)
        tables = {}
        for name, count in data["tables"].items():
            rows = count["rows"]
            if not (rows is None or (isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0)):
                raise ValueError("bad row count")
            tables[str(name)] = TableCount(rows, bool(count["exact"]), count.get("over") is True)
        names = (data["target"], data.get("cluster"), data.get("address"))
        if (
            not isinstance(data["time"], str)
            or not isinstance(names[0], str)
            or not all(name is None or isinstance(name, str) for name in names)
        ):
            raise ValueError("bad time or target")
        _parse_time(data["time"])
        return cls(data["time"], Target(*names), tables, data["passed"] is True)


@dataclass(frozen=True)
class History:
    """The file's readable records, oldest first, and how many lines were skipped as torn or invalid."""

    records: tuple[Record, ...]
    skipped: int

    def last_passing(self, target: Target) -> Record | None:
        """The newest record of ``target`` whose audit passed: failed audits never become the baseline."""
        for record in reversed(self.records):
            if record.target.same(target) and record.passed:
                return record
        return None

    def last_counts(self, target: Target, *, numbers_only: bool = False) -> dict[str, tuple[str, TableCount]]:
        """Per table, the newest passing audit's count of it, with its time (a table the last audit did
        not list keeps its own last count); ``numbers_only``: never a floor or an unknown count."""
        found: dict[str, tuple[str, TableCount]] = {}
        for record in reversed(self.records):
            if record.target.same(target) and record.passed:
                for table, count in record.tables.items():
                    if not numbers_only or (count.rows is not None and not count.over):
                        found.setdefault(table, (record.time, count))
        return found


@dataclass(frozen=True)
class Finding:
    """One comparison result. ``kind``: ``baseline`` (passed, nothing to compare), ``ok``, ``shrunk``
    (failed), ``unknown`` (failed: the count now cannot tell; a pass would hide a loss and replace the
    baseline), ``reset`` (passed with a warning: the count before was only a floor, so nothing is proven)."""

    table: str | None
    kind: str
    message: str

    @property
    def failed(self) -> bool:
        return self.kind in ("shrunk", "unknown")


def record(target: Target, counts: Iterable[TableStats], passed: bool, time: str | None = None) -> Record:
    """A record from the probe's ``TableStats`` (exact counts or estimates), stamped now unless ``time`` is given."""
    tables = {stats.table: TableCount(stats.rows, stats.exact, stats.over, stats.live) for stats in counts}
    return Record(time or now_utc(), target, tables, passed)


def identify(conn: psycopg.Connection, url: DbUrl, timeouts: db_probe.Timeouts) -> tuple[Target, str | None]:
    """The database the session reached, by each name that tells it, and why the server's own are
    missing when they are (a role that may not read pg_control_system(), a server that is not PostgreSQL)."""
    shown = target_key(url)
    try:
        dbname, host, port = db_probe.fetch_one(conn, _ADDRESS, "inet_server_addr()", timeouts)
        (system,) = db_probe.fetch_one(conn, _CLUSTER, "pg_control_system()", timeouts)
    except ProbeError as exc:
        return Target(shown), (
            f"the server's identity could not be read ({exc}): this database's history knows it only as DB_URL "
            f"spells it ({shown}), so another spelling of it starts another history"
        )
    return Target(shown, f"{system}/{dbname}", server_address(dbname, host, port)), None


def target_key(url: DbUrl) -> str:
    """``db.example.com:5432/mt5_crs``: the server(s) and database as DB_URL spells them, never the user or
    password (what earlier versions knew a database by: ``Target.url``)."""
    hosts = ",".join(_host_port(host.lower(), port or 5432) for host, port in url.servers)  # parse requires one
    return f"{hosts}/{url.dbname}"


def server_address(dbname: str, host: str | None, port: int | None) -> str | None:
    """``10.0.0.5:5432/mt5_crs`` from what the server says it answered on; None over a local socket, which
    has no address (``inet_server_addr()`` is NULL)."""
    return None if host is None else f"{_host_port(host, port)}/{dbname}"


def _host_port(host: str, port: object) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:5432``) as URLs write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def now_utc() -> str:
    """``2026-11-29T14:05:00Z``: the record's time, in UTC whatever this machine's zone."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def append(path: Path, record: Record) -> None:
    """Append one whole line (one ``os.write`` with O_APPEND) to the audit's own history, creating it (and
    its folder) when missing; anything else at ``path`` is refused untouched (HistoryError).

    If an earlier writer was killed mid-line the file does not end in a newline; ours then starts
    with one, so that torn tail stays a separate (skipped) line instead of spoiling this record.
    """
    line = record.to_line().encode("ascii")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # a new file holds our line from its first write: it is never an empty file of unknown origin
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            fd = _open_own(path, os.O_RDWR | os.O_APPEND)
            if _ends_mid_line(fd):
                line = b"\n" + line
        try:
            written = os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise HistoryError(
            f"cannot write the audit history {path}: {exc.strerror or exc}; fix its folder's permissions",
            setting="history",
        ) from None
    if written != len(line):
        raise HistoryError(f"the audit history {path} took only {written} of {len(line)} bytes: is the disk full?")


def _open_own(path: Path, flags: int) -> int:
    """A descriptor of the history at ``path``, proven the audit's own: a regular file (never through a
    symbolic link, never a FIFO or a device, never opened when one is there), no bigger than MAX_BYTES,
    whose first line is a record. Raises HistoryError naming the setting, or FileNotFoundError."""
    _require_regular(path, os.lstat(path))
    try:  # O_NONBLOCK: a FIFO swapped in since never blocks the open; O_NOFOLLOW: nor does a link get followed
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _require_regular(path, os.lstat(path))
        raise
    try:
        size = _require_regular(path, os.fstat(fd)).st_size
        if size > MAX_BYTES:
            why = f"it is over {MAX_BYTES // 2**20} MiB ({size:,} bytes), more than the audit reads"
            raise _refused(path, why, "move it aside (a new history starts) or keep only its newest lines")
        first = os.pread(fd, FIRST_LINE_BYTES, 0).split(b"\n", 1)[0]  # cut short, a longer line is no record
        if not _is_record(first):
            why = "it is empty" if size == 0 else "its first line is not a record of the audit"
            fix = "name another file (a missing one is created), or move this one aside"
            raise _refused(path, f"it is not a history the audit wrote ({why})", fix)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(path: Path, found: os.stat_result) -> os.stat_result:
    """``found`` (the file at ``path``) if it is a regular file, else the refusal that names what it is."""
    if stat.S_ISREG(found.st_mode):
        return found
    kinds = (
        (stat.S_ISLNK, "a symbolic link", "the audit never writes through one: name the file itself"),
        (stat.S_ISDIR, "a folder", "name a file in it"),
        (stat.S_ISFIFO, "a FIFO", "name a regular file"),
    )
    other = ("a device or socket", "name a regular file")
    kind, fix = next(((k, f) for test, k, f in kinds if test(found.st_mode)), other)
    raise _refused(path, f"it is {kind}, not a history file", f"{fix} (a missing one is created)")


def _refused(path: Path, why: str, fix: str) -> HistoryError:
    return HistoryError(f"the audit history {path} is refused and left untouched: {why}: {fix}", setting="history")


def _is_record(line: bytes) -> bool:
    try:
        Record.from_line(line.decode("utf-8"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read(path: Path) -> History:
    """Every whole, valid record in the history at ``path`` (none when it does not exist yet); HistoryError
    when what is there is not the audit's own history (see ``_open_own``) or cannot be read."""
    path = Path(path)
    try:
        fd = _open_own(path, os.O_RDONLY)
    except FileNotFoundError:
        return History((), 0)
    except OSError as exc:
        raise HistoryError(
            f"cannot read the audit history {path}: {exc.strerror or exc}; fix its permissions or move it aside",
            setting="history",
        ) from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_BYTES + 1)  # bounded, whatever it grew to since it was measured
    if len(data) > MAX_BYTES:
        raise _refused(path, f"it grew over {MAX_BYTES // 2**20} MiB while it was read", "move it aside")
    records, skipped = [], 0
    for raw in data.split(b"\n"):  # a torn line is cut JSON: invalid, so skipped and counted with the rest
        if not raw.strip():
            continue
        try:
            records.append(Record.from_line(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError):
            skipped += 1
    return History(tuple(records), skipped)


def last_passing(path: Path, target: Target) -> Record | None:
    """``read(path).last_passing(target)``; read the History yourself to also report skipped lines."""
    return read(path).last_passing(target)


def compare(
    previous: Record | None, current: Record, max_shrink: float = DEFAULT_MAX_SHRINK, past: History | None = None
) -> list[Finding]:
    """Fail each table holding more than ``max_shrink`` fewer rows than at ``previous``; with no
    ``previous``, one ``baseline`` finding says these counts are the baseline from now on. With the
    ``past`` they came from, a table ``previous`` did not list is compared with its own last count (a
    run with a shorter table list never resets it), and where that count was only a floor, with its
    last count that was a number, so floors in between never let losses add up."""
    if previous is None:
        return [Finding(None, "baseline", f"first audit of {current.target.url}: these row counts are the baseline")]
    # previous is the newest passing record, so its tables are each table's last count
    listed = past.last_counts(current.target) if past else {t: (previous.time, c) for t, c in previous.tables.items()}
    known = past.last_counts(current.target, numbers_only=True) if past else {}
    findings = []
    for table, now in current.tables.items():
        time, before = listed.get(table, ("", None))
        if before is not None and before.over and table in known:
            time, before = known[table]
        if before is None or before.rows is None:
            findings.append(Finding(table, "baseline", f"{table}: {now.shown}, the first count on record (baseline)"))
            continue
        findings.append(_judged(table, now, before, _shown_time(time), max_shrink))
    return findings


def _judged(table: str, now: TableCount, before: TableCount, when: str, max_shrink: float) -> Finding:
    """One table's count now against its count ``before`` (a number, or a floor), taken ``when``."""
    fewest = before.rows * (1 - max_shrink)  # the fewest rows allowed (fewer still, when before was a floor)
    if now.rows is None or (now.over and (before.over or now.rows < fewest)):
        why = (
            f"it holds {now.shown} now, too few to tell whether it is within {percent(max_shrink)} of the "
            f"{before.shown} of the last passing audit ({when}), and the planner has no current estimate: run "
            f"ANALYZE {table} (a view has none: list the table it reads)"
        )
        return Finding(table, "unknown", f"{table}: could not compare: {why}, then audit again")
    if now.live is not None and now.live < fewest <= now.rows:  # a loss since the estimate may hide behind it
        why = (
            f"the planner's estimate (~{counted(now.rows, 'row')}) and PostgreSQL's statistics (~{now.live:,} live "
            f"rows, {percent(1 - now.live / before.rows)} fewer than the {before.shown} of the last passing audit, "
            f"{when}) disagree: rows were deleted since the last ANALYZE, or just before it in the same session "
            f"(then counted twice): run ANALYZE {table}"
        )
        return Finding(table, "unknown", f"{table}: could not compare: {why}, then audit again")
    if before.over and now.rows >= fewest:
        return Finding(
            table,
            "reset",
            (
                f"{table}: {now.shown} now; the last passing audit ({when}) knew only that it held {before.shown}, "
                "which proves nothing about a loss since: these counts are the baseline from now on"
            ),
        )
    if before.rows > 0 and now.rows < fewest:
        return Finding(
            table,
            "shrunk",
            (
                f"{table} holds {now.shown} now, {percent(1 - now.rows / before.rows)} fewer than the {before.shown} of the "
                f"last passing audit ({when}), more than the {percent(max_shrink)} allowed (infra_max_shrink): find where "
                f"the rows went; if they were removed on purpose, {_accepting(1 - now.rows / before.rows)}"
            ),
        )
    return Finding(table, "ok", f"{table}: {now.shown}, was {before.shown} on {when}")


def _accepting(lost: float) -> str:
    """How to make a loss on purpose the baseline: one audit with a share above it, under 100% (the most
    the setting allows); beyond that, a new history."""
    share = math.ceil(lost * 100) + 1
    if share < 100:
        return f"pass one audit with a higher infra_max_shrink (--max-shrink={share}%)"
    return (
        "move the history file (infra_history) aside: no share under 100% accepts this loss, and a new history starts"
    )


def _shown_time(iso: str) -> str:
    """``2026-11-28 10:00 UTC`` from the record's ISO time."""
    return _parse_time(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _parse_time(iso: str) -> datetime:
    """A record's time; one without a zone is invalid (it would be read in this machine's zone)."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return moment
