"""The database probe: connect within a hard deadline, then look at tables without scanning them.

Used by the audit's fixtures and by ``tools/health_check.py`` alike. Every call has a deadline:
the connection attempt is bounded by a wall clock (libpq's ``connect_timeout`` has a 2 s minimum
and applies per address), and each query by ``statement_timeout`` and ``lock_timeout``.
Every session is read-only and autocommit, so the audit never writes and never holds locks
between statements; ``connect`` proves it, and where something on the way (a pooler) dropped the
startup options that say so, each statement carries them itself. Every error message is one line,
names the cause and the fix, and holds no password.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

from infra_audit.core.dburl import DbUrl, scrub
from infra_audit.core.errors import ProbeError
from infra_audit.core.text import counted

APPLICATION_NAME = "infra-audit"
# How long past the server's statement_timeout we still wait for its answer (it normally cancels itself).
ANSWER_GRACE_S = 2.0
MAX_TIMEOUT_S = 3600  # "never a hang": no deadline may be infinite, NaN, or so large it overflows
T = TypeVar("T")
_STUCK: weakref.WeakKeyDictionary[psycopg.Connection, str] = weakref.WeakKeyDictionary()  # conn -> the table
# conn -> the tables a query on it found locked: each is waited on once per connection (per audit)
_LOCKED: weakref.WeakKeyDictionary[psycopg.Connection, set[str]] = weakref.WeakKeyDictionary()
# conn -> the BEGIN each of its statements runs in: its startup options were dropped on the way (a pooler)
_PER_STATEMENT: weakref.WeakKeyDictionary[psycopg.Connection, str] = weakref.WeakKeyDictionary()
# The bounds as the server applies them to this session (the setting, and where it came from).
_BOUNDS_QUERY = (
    "SELECT name, setting, source FROM pg_catalog.pg_settings WHERE name IN"
    " ('default_transaction_read_only', 'transaction_read_only', 'statement_timeout', 'lock_timeout')"
)

# What the plain catalog row of a relation ``c`` cannot tell, read only for the relations that need
# it (a simple read keeps the usual table's check at one cheap query).
# A table with children (partitions, or inheritance children as TimescaleDB's chunks) is read with
# them, and autovacuum never analyzes a partitioned parent: its estimate, size and statistics are the
# sums over the tree's tables; the estimate is -1, "never analyzed", when one of them holds data and was never
# analyzed (an empty partition made ahead of time is 0 rows, not unknown).
_TREE_FIGURES = (
    "WITH RECURSIVE tree(oid) AS (SELECT %s::oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t"
    " ON i.inhparent = t.oid)"
    " SELECT CASE WHEN coalesce(bool_or(l.reltuples < 0 AND pg_relation_size(l.oid) > 0), false) THEN -1"
    " ELSE coalesce(sum(greatest(l.reltuples, 0)), 0) END::bigint, coalesce(sum(pg_relation_size(l.oid)), 0)::bigint,"
    " coalesce(sum(pg_stat_get_live_tuples(l.oid)), 0)::bigint,"
    " coalesce(sum(pg_stat_get_mod_since_analyze(l.oid)), 0)::bigint,"
    " coalesce(sum(pg_stat_get_tuples_deleted(l.oid)), 0)::bigint"
    " FROM tree JOIN pg_class l ON l.oid = tree.oid WHERE l.relkind <> 'p'"
)
# A view or materialized view (row_security_active says nothing of them) is filtered when a table it
# reads at any depth is under row-level security for the role that reads it there (this session
# through security_invoker views, else the view's owner; a superuser, a BYPASSRLS role and a table's
# owner without FORCE see it all), or possibly so through a function of the database's own while any
# table has row-level security.
_INVOKER = "EXISTS (SELECT 1 FROM unnest(v.reloptions) o WHERE lower(o) IN ({}))".format(
    ", ".join(f"'security_invoker={word}'" for word in ("true", "on", "yes", "1"))
)
_BYPASSES = "(SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE oid = reads.reader)"
_VIEW_ROW_SECURITY = (
    "SELECT EXISTS (WITH RECURSIVE reads(oid, reader) AS ("
    " SELECT %s::oid, (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    " UNION"
    f" SELECT d.refobjid, CASE WHEN v.relkind = 'v' AND {_INVOKER} THEN reads.reader ELSE v.relowner END"
    " FROM reads JOIN pg_class v ON v.oid = reads.oid AND v.relkind IN ('v', 'm')"
    " JOIN pg_rewrite r ON r.ev_class = v.oid"
    " JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
    " AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid)"
    f" SELECT 1 FROM reads JOIN pg_class t ON t.oid = reads.oid WHERE NOT {_BYPASSES} AND ("
    " (t.relrowsecurity AND (t.relowner <> reads.reader OR t.relforcerowsecurity))"
    " OR (t.relkind IN ('v', 'm') AND EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_depend d"
    " ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_proc'::regclass"
    " WHERE r.ev_class = t.oid AND d.refobjid >= 16384::oid)"  # FirstNormalObjectId: made in this database
    " AND EXISTS (SELECT 1 FROM pg_class x WHERE x.relrowsecurity))))"
)
# Whether this session may read relation ``c``, and its schema-qualified name for the GRANT that would
# let it (bare, it could name another schema's table of that name in whoever runs it).
PRIVILEGE_COLUMNS = (
    "has_table_privilege(c.oid, 'SELECT'), (SELECT quote_ident(nspname) FROM pg_namespace"
    " WHERE oid = c.relnamespace) || '.' || quote_ident(c.relname)"
)  # NULL for no table
# The plain catalog row: columns for ``Relation.read`` (``c`` in the caller's FROM).
RELATION_COLUMNS = (
    "c.oid::regclass::text, c.oid, c.relkind, c.relhassubclass, c.reltuples::bigint,"
    " pg_relation_size(c.oid), pg_stat_get_live_tuples(c.oid), pg_stat_get_mod_since_analyze(c.oid),"
    " pg_stat_get_tuples_deleted(c.oid), row_security_active(c.oid)"
)


@dataclass(frozen=True)
class Relation:
    """A relation as the data checks judge it: its quoted name, the planner's row estimate (-1: never
    analyzed), its size on disk, whether row-level security may filter what this session sees of it,
    its kind (``r`` table, ``p`` partitioned, ``v`` view, ``m`` materialized view...), and what the
    cumulative statistics say of its rows: how many are live, how many changed (inserted, updated,
    deleted) since its last ANALYZE, which made the estimate, and how many were deleted since the
    statistics were last reset."""

    quoted: str
    estimate: int
    size: int
    row_security: bool
    kind: str
    live: int = 0
    changed: int = 0
    deleted: int = 0

    @property
    def live_below_estimate(self) -> int | None:
        """The statistics' live rows when they say rows went since the estimate was made: fewer than the
        estimate, by no more than the rows changed since and the rows deleted. A statistics reset (a
        crash, a failover, pg_stat_reset()) zeroes the live count, but the deletes too: no loss."""
        gone = self.estimate - self.live
        return self.live if 0 < gone <= min(self.changed, self.deleted) else None

    @classmethod
    def read(cls, conn: psycopg.Connection, row: tuple, table: str, timeouts: Timeouts) -> Relation:
        """From ``RELATION_COLUMNS``, with the figures a table with children or a view needs read after."""
        quoted, oid, kind, subclassed, estimate, size, live, changed, deleted, row_security = row
        if kind == "p" or subclassed:
            estimate, size, live, changed, deleted = fetch_one(conn, _TREE_FIGURES, table, timeouts, (oid,))
        if kind in ("v", "m"):
            (row_security,) = fetch_one(conn, _VIEW_ROW_SECURITY, table, timeouts, (oid,))
        stats = (int(figure or 0) for figure in (live, changed, deleted))
        return cls(quoted, int(estimate), int(size), bool(row_security), kind, *stats)


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: the whole connection attempt, and each query."""

    connect: float = 3.0
    query: float = 5.0

    def __post_init__(self) -> None:
        for name, value in (("connect", self.connect), ("query", self.query)):
            if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
                raise ValueError(f"the {name} timeout must be a number of seconds above 0 and up to {MAX_TIMEOUT_S}")

    @property
    def lock(self) -> float:
        """Waiting on a lock gives up first, so a locked table is named as such, not as slow."""
        return self.query / 2

    @property
    def answer(self) -> float:
        """The client's own deadline for a query: for a server that stops answering altogether."""
        return self.query + ANSWER_GRACE_S


@dataclass(frozen=True)
class TableStats:
    """A table's row count: exact when small, the planner's estimate (``exact=False``) when big, or a
    floor (``over``: more than ``rows``) when the bounded count passed the limit but the planner's
    estimate says less (it is out of date: never analyzed, or analyzed before the table grew)."""

    table: str
    rows: int
    exact: bool
    row_security: bool = False  # the audit's user sees only the rows the table's policies allow it
    over: bool = False
    view: bool = False  # a view has no planner estimate at all
    live: int | None = None  # an estimate's table: the statistics' live rows, when rows went since the estimate
    qualified: str = ""  # the table read, with its schema (public.market_data), whatever the search path found

    @property
    def shown(self) -> str:
        """``340,494 rows``, ``~340,494 rows (planner estimate)`` or ``more than 100,000 rows (...)``."""
        if self.over:
            why = (
                "a view has no planner estimate: list the table it reads in the table list"
                if self.view
                else f"no current planner estimate: run ANALYZE {self.table}"
            )
            return f"more than {counted(self.rows, 'row')} ({why})"
        if self.exact:
            return counted(self.rows, "row")
        if self.live is not None:
            return (
                f"~{counted(self.rows, 'row')} (planner estimate; the statistics count ~{self.live:,} live rows: "
                f"run ANALYZE {self.table})"
            )
        return f"~{counted(self.rows, 'row')} (planner estimate)"


# What libpq's target_session_attrs asks of a session made read-only at startup, as the audit's is:
# "read-write" would take every server for a standby, "read-only" every one for a standby too. The
# server's role (libpq 14+: in_hot_standby, or pg_is_in_recovery()) is what the URL means by them.
_SESSION_ATTRS = {"read-write": "primary", "read-only": "standby"}
_NOT_FOUND = ("refused", "no_socket", "timeout", "host_not_found")  # causes a PGPORT the probe ignores may explain


def connect(url: DbUrl, timeouts: Timeouts) -> psycopg.Connection:
    """Open a read-only, autocommit session and run ``SELECT 1``, all within ``timeouts.connect``
    seconds, or raise ProbeError. Close it with ``close()``, not ``commit()``: see ``fetch_one``.

    Every setting is a startup option, never a ``SET`` after connecting: through a pooler in
    transaction mode, a session's ``SET`` would stay on the server connection for other clients. A
    pooler may drop the options instead (PgBouncer's ``ignore_startup_parameters = options``): then
    each statement runs in a read-only transaction of its own with ``SET LOCAL`` bounds, which end
    with it (``session_bounds`` says which), or the session is refused."""
    limits = _limits(timeouts)
    settings = {"default_transaction_read_only": "on", **limits}
    ours = [f"-c {name}={value}" for name, value in settings.items()]
    options = " ".join(filter(None, [url.param("options"), *ours]))
    given = conninfo_to_dict(url.raw)
    attrs = given.get("target_session_attrs") or os.environ.get("PGTARGETSESSIONATTRS")
    kwargs = {
        # libpq fills what a URL leaves out from PGPORT and PGHOSTADDR, so a PGPORT exported for psql
        # would send the audit to another server than DB_URL names and the evidence shows. An explicit
        # empty value means libpq's own default instead. (PGPASSWORD, PGUSER, PGSSL* name no server;
        # a service, in the URL or PGSERVICE, names its own port and hostaddr.)
        **{
            keyword: ""
            for keyword in ("port", "hostaddr")
            if keyword not in given and not (given.get("service") or os.environ.get("PGSERVICE"))
        },
        **({"target_session_attrs": _SESSION_ATTRS[attrs]} if attrs in _SESSION_ATTRS else {}),
        "autocommit": True,
        "prepare_threshold": None,  # a statement prepared on one pooled server connection is unknown on the next
        "connect_timeout": max(2, math.ceil(timeouts.connect)),
        "application_name": APPLICATION_NAME,
        "options": options,
    }
    try:
        return with_deadline(
            lambda: _bound(_ping(psycopg.connect(url.raw, **kwargs)), limits, url.where),
            timeouts.connect,
            discard=psycopg.Connection.close,
        )
    except TimeoutError:
        raise ProbeError(
            "timeout",
            f"no answer from {url.target} within {timeouts.connect:g} s: check the host and port in DB_URL, "
            "the network, and that the server is not overloaded",
        ) from None
    except psycopg.Error as exc:
        # Classify libpq's own words first, then mask: a short password must not hide the cause.
        error = classify_connect_error(str(exc), url)
        ignored = [
            name
            for name, keyword in (("PGPORT", "port"), ("PGHOSTADDR", "hostaddr"))
            if os.environ.get(name) and keyword in kwargs
        ]
        note = f" ({' and '.join(ignored)} in the environment are not used: DB_URL alone names the server)"
        message = str(error) + (note if ignored and error.cause in _NOT_FOUND else "")
        raise ProbeError(error.cause, scrub(message, url.secrets), setting=error.setting) from None


def _ping(conn: psycopg.Connection) -> psycopg.Connection:
    """Prove the session answers queries, not just that the handshake worked; and that PostgreSQL's own
    functions are its: a schema before pg_catalog on the search path (the role's setting, or the URL's
    options) could hold a now() ten days behind that makes a stale feed look fresh."""
    try:
        _, schemas, mine = conn.execute(  # its own temporary schema is never searched for functions; others' are
            "SELECT 1, pg_catalog.current_schemas(true),"
            " (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = pg_catalog.pg_my_temp_schema())"
        ).fetchone()
        first = next((schema for schema in schemas if schema != mine), None)
        if first != "pg_catalog":
            raise ProbeError(
                "search_path",
                f"the session's search_path puts schema {first} before pg_catalog (the role's setting, or options "
                "in DB_URL), so its functions could stand in for PostgreSQL's own: put pg_catalog first, or audit "
                "as a role without that setting",
            )
    except BaseException:
        conn.close()
        raise
    return conn


def _bound(conn: psycopg.Connection, limits: dict[str, str], where: str) -> psycopg.Connection:
    """Prove the session read-only and bounded as its startup options asked. Where they did not arrive
    (values a ``SET`` left on a pooled server connection are not ours either), every statement runs in
    ``BEGIN READ ONLY`` with ``SET LOCAL`` bounds, proven here once: a pooler that allows no transaction
    (statement pooling) is refused, as the audit cannot be bounded through it."""
    try:
        found = _settings(conn)
        if found.get("default_transaction_read_only") == ("on", "client") and all(
            found.get(name) == (value, "client") for name, value in limits.items()
        ):
            return conn
        # idle_in_transaction_session_timeout: a transaction of ours left open (a client gone) ends too
        local = {**limits, "idle_in_transaction_session_timeout": limits["statement_timeout"]}
        _PER_STATEMENT[conn] = "BEGIN READ ONLY; " + "; ".join(f"SET LOCAL {n} = {v}" for n, v in local.items())
        found = _run(conn, _settings)
        if found["transaction_read_only"][0] != "on" or any(found[n][0] != v for n, v in limits.items()):
            raise ProbeError(
                "pooler",
                f"the session through {where} is not read-only and bounded even inside a read-only transaction: "
                "point DB_URL at PostgreSQL itself",
            )
    except psycopg.Error as exc:
        conn.close()
        raise ProbeError(
            "pooler",
            f"what answers at {where} dropped the session's startup options (read-only, statement_timeout, "
            f"lock_timeout) and refuses the read-only transaction each statement would run in instead "
            f"({_last_reason(str(exc))}): use session or transaction pooling, or point DB_URL at PostgreSQL itself",
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _settings(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """The bounds as the server applies them now: name -> (setting, source)."""
    return {name: (setting, source) for name, setting, source in conn.execute(_BOUNDS_QUERY).fetchall()}


def _run(conn: psycopg.Connection, work: Callable[[psycopg.Connection], T]) -> T:
    """``work`` on the connection, in a read-only transaction of its own with ``SET LOCAL`` bounds where
    the startup options were dropped: they end with it, so a pooler cannot hand them to another client."""
    begin = _PER_STATEMENT.get(conn)
    if begin is None:
        return work(conn)
    conn.execute(begin)
    try:
        return work(conn)
    finally:
        if not conn.closed:
            conn.execute("ROLLBACK")


def session_bounds(conn: psycopg.Connection, timeouts: Timeouts) -> str:
    """How the session's statements are made read-only and bounded, for the evidence."""
    bounds = f"read-only, statement_timeout {timeouts.query:g} s, lock_timeout {timeouts.lock:g} s"
    if conn in _PER_STATEMENT:
        return (
            f"{bounds}, each statement in a READ ONLY transaction of its own with SET LOCAL timeouts: the "
            "startup options that set them were dropped on the way (a pooler?)"
        )
    return f"{bounds} (startup options)"


def _limits(timeouts: Timeouts) -> dict[str, str]:
    """The timeouts every statement runs under, in milliseconds, as pg_settings shows them."""
    return {"statement_timeout": str(_ms(timeouts.query)), "lock_timeout": str(_ms(timeouts.lock))}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def with_deadline(work: Callable[[], T], seconds: float, *, discard: Callable[[T], None] = lambda _: None) -> T:
    """Run ``work`` in a daemon thread and stop waiting for it at the deadline (raise TimeoutError).

    The thread cannot be killed, only abandoned: a result that arrives late goes to ``discard``
    (a late connection is closed), and as a daemon it never keeps the process from exiting.
    """
    results: queue.Queue = queue.Queue(maxsize=1)
    lock = threading.Lock()
    abandoned = False

    def attempt() -> None:
        try:
            outcome: object = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, re-raised there
            outcome = exc
        with lock:
            if abandoned:
                if not isinstance(outcome, BaseException):
                    discard(outcome)
                return
            results.put(outcome)

    threading.Thread(target=attempt, name="infra-audit-deadline", daemon=True).start()
    try:
        outcome = results.get(timeout=seconds)
    except queue.Empty:
        with lock:
            abandoned = True
            if results.empty():
                raise TimeoutError from None
            outcome = results.get_nowait()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


class Deadlined:
    """A connection whose every statement also has a client-side deadline.

    ``statement_timeout`` is the server's own promise; a server that authenticates and then stalls
    (frozen, or behind a dead network path) never keeps it. Rows are fetched inside the deadline,
    so ``execute(...).fetchone()`` and ``.fetchall()`` work as on a cursor. After a timeout the
    connection is busy in the abandoned thread: close it, never commit.
    """

    def __init__(self, conn: psycopg.Connection, seconds: float, what: str) -> None:
        self.conn, self.seconds, self.what = conn, seconds, what

    def execute(self, query: sql.Composable | str, params: tuple | None = None) -> _Rows:
        def run() -> list[tuple]:
            cursor = self.conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

        try:
            return _Rows(with_deadline(run, self.seconds))
        except TimeoutError:
            raise ProbeError(
                "no_answer",
                f"{self.what} stopped answering (nothing within {self.seconds:g} s): check its health and load",
            ) from None


class _Rows:
    """The fetched rows of one statement, read like a cursor."""

    def __init__(self, rows: list[tuple]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple]:
        return self._rows


_CONNECT_CAUSES: tuple[tuple[str, str, str], ...] = (
    # (cause, pattern in libpq's text, message); {user} {db} {target} {host} {socket} {detail} are filled in
    (
        "auth",
        r"password authentication failed|role \".*\" does not exist",
        "authentication failed for user '{user}' to database {target}: check the user name and credentials in DB_URL",
    ),
    (
        "auth",
        r"password is required|no password supplied|fe_sendauth",
        "the server asks for a password and DB_URL has none for user '{user}': add it to DB_URL",
    ),
    (
        "not_allowed",
        r"no pg_hba\.conf entry",
        "the server does not accept user '{user}' from this machine (no pg_hba.conf entry): ask its administrator",
    ),
    (
        "no_database",
        r"database \".*\" does not exist",
        "database '{db}' does not exist on {host}: create it, or fix the database name in DB_URL",
    ),
    (
        "refused",
        r"Connection refused",
        "connection refused by {host}: is PostgreSQL running and listening there? Start it, or fix host/port in DB_URL",
    ),
    (
        "host_not_found",
        r"failed to resolve host|could not translate host name|Name or service not known",
        "host not found: {host} does not resolve; fix the host in DB_URL",
    ),
    (
        "no_socket",
        r"No such file or directory",
        "no PostgreSQL socket at {socket}: is the server running locally? Or give a TCP host in DB_URL",
    ),
    (
        "timeout",
        r"timeout expired",
        "no answer from {target} in time: check the host and port in DB_URL and the network",
    ),
    (
        "unavailable",
        r"starting up|shutting down|in recovery mode|not yet accepting",
        "the server on {host} is not accepting connections yet ({detail}): try again in a moment",
    ),
    (
        "too_many",
        r"too many (connections|clients)|remaining connection slots",
        "the server on {host} has no free connection slots: try later, or raise max_connections",
    ),
    (
        "pooler",
        r"unsupported startup parameter",
        "the server on {host} refuses startup options ({detail}): a pooler such as PgBouncer? Add 'options' to its "
        "ignore_startup_parameters, or point DB_URL at PostgreSQL itself",
    ),
    (
        "not_postgres",
        r"invalid response to SSL negotiation|received invalid response|expected authentication request",
        "what answers at {host} is not PostgreSQL (its reply is not the PostgreSQL protocol): check the port in DB_URL",
    ),
    ("ssl", r"SSL|sslmode", "TLS negotiation with {host} failed ({detail}): check sslmode in DB_URL"),
)


def classify_connect_error(text: str, url: DbUrl) -> ProbeError:
    """Turn libpq's multi-line text into one line that names the cause and the fix."""
    detail = _last_reason(text)
    fields = {
        "user": url.user or "(default user)",
        "db": url.dbname,
        "target": url.target,
        "host": url.where,
        "socket": _socket_path(text) or url.param("host") or "the default socket",
        "detail": detail,
    }
    for cause, pattern, message in _CONNECT_CAUSES:
        if re.search(pattern, text):
            local = cause == "refused" and _is_loopback(url)  # the caller may offer its local server
            return ProbeError(cause, message.format(**fields), setting="local_server" if local else None)
    return ProbeError("connect_failed", f"cannot connect to {url.target}: {detail}")


def _is_loopback(url: DbUrl) -> bool:
    servers = url.servers
    return bool(servers) and all(host in ("localhost", "127.0.0.1", "::1") for host, _ in servers)


def _last_reason(text: str) -> str:
    """The most specific line of libpq's text, without the ``connection failed:`` preamble."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else text
    reason = re.sub(r"^(connection failed|connection is bad):\s*", "", reason)
    return re.sub(r"^.*? failed:\s*(FATAL:\s*)?", "", reason).strip() or reason


def _socket_path(text: str) -> str | None:
    match = re.search(r'socket "([^"]+)"', text)
    return match.group(1) if match else None


def server_version(conn: psycopg.Connection) -> str:
    """``15.18`` from the server's integer version (150018)."""
    number = conn.info.server_version
    major = number // 10000
    return f"{major}.{number % 10000}" if major >= 10 else f"{major}.{number // 100 % 100}.{number % 100}"


def table_stats(conn: psycopg.Connection, table: str, exact_limit: int, timeouts: Timeouts) -> TableStats:
    """Prove ``table`` exists, is readable and non-empty, reading at most ``exact_limit + 1`` rows.

    Big tables (a planner's estimate over the limit) are never counted: ``EXISTS`` decides non-empty
    and the estimate is reported. A table the bounded count finds over the limit while the planner says
    otherwise has no estimate to trust: it is "more than the limit", never a stale "~5 rows". Raises
    ProbeError(cause) with cause ``missing``, ``empty``, ``permission``, ``locked``, ``timeout``,
    ``no_answer``, ``bad_name`` or ``query_failed``.
    """
    found, qualified = _locate(conn, table, timeouts)
    name, row_security = sql.SQL(found.quoted), found.row_security
    if found.estimate > exact_limit:
        (nonempty,) = fetch_one(conn, sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name), table, timeouts)
        stats = TableStats(
            table,
            found.estimate,
            exact=False,
            row_security=row_security,
            live=found.live_below_estimate,
            qualified=qualified,
        )
    else:
        bounded = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {}) AS bounded").format(
            name, sql.Literal(exact_limit + 1)
        )
        (rows,) = fetch_one(conn, bounded, table, timeouts)
        nonempty = rows > 0
        exact = rows <= exact_limit
        stats = TableStats(
            table,
            rows if exact else exact_limit,
            exact,
            row_security,
            over=not exact,
            view=found.kind == "v",
            qualified=qualified,
        )
    if not nonempty and row_security:
        raise ProbeError(
            "empty",
            f"table '{table}' shows no rows to user '{conn.info.user}': it is empty, or row-level security (on "
            f"for it) hides every row: add a policy that lets '{conn.info.user}' read them, or audit as a role "
            "with BYPASSRLS",
        )
    if not nonempty:
        raise ProbeError("empty", f"table '{table}' is empty: load its data (or check the database in DB_URL)")
    return stats


def row_security_warning(table: str, user: str) -> str:
    """What a check says when its numbers may be of part of a table."""
    return (
        f"row-level security may filter what user '{user}' sees of {table} (it is on for the table, or for a "
        "table it reads), so these numbers may be of part of it: audit as a role with BYPASSRLS"
    )


def fetch_one(
    conn: psycopg.Connection, query: sql.Composable | str, table: str, timeouts: Timeouts, params: tuple = ()
) -> tuple:
    """The first row of one query (see ``_fetch``)."""
    return _fetch(conn, query, table, timeouts, params, psycopg.Cursor.fetchone)


def fetch_all(
    conn: psycopg.Connection, query: sql.Composable | str, table: str, timeouts: Timeouts, params: tuple = ()
) -> list[tuple]:
    """Every row of one query (see ``_fetch``): for a catalog's list, never a table's rows."""
    return _fetch(conn, query, table, timeouts, params, psycopg.Cursor.fetchall)


def _fetch(
    conn: psycopg.Connection,
    query: sql.Composable | str,
    table: str,
    timeouts: Timeouts,
    params: tuple,
    fetch: Callable[[psycopg.Cursor], T],
) -> T:
    """One query's rows, bounded by the server's timeouts AND by our own clock.

    After a ``no_answer`` the connection stays busy in the abandoned thread: later queries on it
    fail at once, naming the table it is still stuck on (each would wait out the deadline again);
    close it, never commit. A table found locked is not waited on again on this connection: a later
    query on it is "locked" at once, so one audit waits on one lock once.
    """
    if conn in _STUCK:
        raise ProbeError(
            "no_answer",
            f"not checked: the connection is still waiting for the server's answer on "
            f"table '{_STUCK[conn]}' (see that table): check the server's health and load",
        )
    if table in _LOCKED.get(conn, ()):
        raise ProbeError(
            "locked",
            f"table '{table}' was locked by another session when this run read it before "
            "(waited once, see that table): find the holder in pg_locks / pg_stat_activity, then retry",
        )
    try:
        rows = with_deadline(lambda: _run(conn, lambda c: fetch(c.execute(query, params))), timeouts.answer)
    except TimeoutError:
        _STUCK[conn] = table
        raise ProbeError(
            "no_answer",
            f"the server stopped answering while checking table '{table}' (nothing within {timeouts.answer:g} s, "
            "its own statement_timeout included): check the server's health and load",
        ) from None
    except psycopg.Error as exc:
        if isinstance(exc, errors.LockNotAvailable):
            _LOCKED.setdefault(conn, set()).add(table)
        raise _classify_query_error(exc, table, timeouts) from None
    return rows


def _locate(conn: psycopg.Connection, table: str, timeouts: Timeouts) -> tuple[Relation, str]:
    """The table as the catalog describes it, read without taking a lock, and its schema-qualified name."""
    *row, readable, qualified, user, schemas = fetch_one(
        conn,
        f"SELECT {RELATION_COLUMNS}, {PRIVILEGE_COLUMNS}, current_user, current_schemas(false)::text"
        # parse_ident raises on a malformed name: since PostgreSQL 16, to_regclass returns NULL for one
        " FROM (SELECT to_regclass(%s) AS oid WHERE parse_ident(%s) IS NOT NULL) AS r"
        " LEFT JOIN pg_class c ON c.oid = r.oid::oid",  # oid = oid: pg_catalog's own, whatever the search path
        table,
        timeouts,
        (table, table),
    )
    if row[0] is None:
        raise ProbeError(
            "missing",
            f"table '{table}' does not exist in database '{conn.info.dbname}' (schemas searched: {schemas}): "
            "create it, or fix the table list",
            setting="tables",
        )
    if not readable:
        raise ProbeError("permission", f"permission denied on table '{table}': GRANT SELECT ON {qualified} TO {user}")
    return Relation.read(conn, tuple(row), table, timeouts), qualified


def _classify_query_error(exc: psycopg.Error, table: str, timeouts: Timeouts) -> ProbeError:
    if isinstance(exc, errors.LockNotAvailable):
        return ProbeError(
            "locked",
            f"table '{table}' is locked by another session (waited {timeouts.lock:g} s): "
            "find the holder in pg_locks / pg_stat_activity, then retry",
        )
    if isinstance(exc, errors.QueryCanceled):
        return ProbeError(
            "timeout",
            f"reading table '{table}' took longer than {timeouts.query:g} s: "
            "the server is overloaded or the table is bloated; retry, or raise the query timeout",
            setting="query_timeout",
        )
    if isinstance(exc, errors.InsufficientPrivilege):
        return ProbeError("permission", f"permission denied on table '{table}': {_last_reason(str(exc))}")
    if isinstance(exc, (errors.InvalidName, errors.SyntaxError, errors.InvalidParameterValue)):
        return ProbeError("bad_name", f"'{table}' is not a valid table name: fix the table list", setting="tables")
    return ProbeError("query_failed", f"checking table '{table}' failed: {_last_reason(str(exc))}")
