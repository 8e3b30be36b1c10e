"""tools/db_probe.py against a real PostgreSQL: deadlines, read-only sessions, and every failure named."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import parse
from infra_audit.core.errors import ProbeError
from infra_audit.core.probe import Timeouts
from tests.support import stage

FAST = Timeouts(connect=1.0, query=1.0)  # a frozen server is given up on after query + 2 s


@pytest.fixture
def conn(target) -> Iterator[psycopg.Connection]:
    with db_probe.connect(parse(target.url), FAST) as connection:
        yield connection


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, like a hung server or a black hole."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def connect_error(url: str, timeouts: Timeouts = FAST) -> ProbeError:
    with pytest.raises(ProbeError) as raised:
        db_probe.connect(parse(url), timeouts)
    return raised.value


def test_session_is_read_only_autocommit_and_named(conn):
    assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    assert conn.execute("SHOW application_name").fetchone()[0] == "infra-audit"
    assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1s"
    assert conn.autocommit
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO assets (symbol, name) VALUES ('X', 'x')")


@pytest.mark.parametrize("attrs", ["read-write", "primary"])
def test_a_url_that_asks_for_the_primary_reaches_it_read_only(target, attrs):
    """libpq's target_session_attrs=read-write checks the session it opened: one made read-only at
    startup would be taken for a standby, and the primary reported unreachable."""
    with db_probe.connect(parse(f"{target.url}?target_session_attrs={attrs}"), FAST) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"


def test_a_service_in_db_url_still_names_its_own_port(target, monkeypatch, tmp_path):
    """`?service=box`: the service file's port is the URL's, not libpq's default that the PGPORT guard sets."""
    (tmp_path / "pg_service.conf").write_text(f"[box]\nport={target.admin.info.port}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    monkeypatch.setenv("PGPASSWORD", target.role.password)
    with db_probe.connect(
        parse(f"postgresql://{target.role.name}@127.0.0.1/{target.dbname}?service=box"), FAST
    ) as conn:
        assert conn.info.port == target.admin.info.port


def test_every_setting_is_a_startup_option_never_a_set(conn):
    """Through a pooler in transaction mode, a SET would stay on the server connection and make the
    next client's session (the application's) read-only: the probe's settings come with the
    connection and go with it."""
    sources = dict(
        conn.execute(
            "SELECT name, source FROM pg_settings WHERE name IN ('default_transaction_read_only', 'statement_timeout',"
            " 'lock_timeout', 'search_path', 'application_name')"
        ).fetchall()
    )
    assert "session" not in sources.values(), sources
    assert sources["default_transaction_read_only"] == "client"
    bounds = db_probe.session_bounds(conn, FAST)
    assert bounds == "read-only, statement_timeout 1 s, lock_timeout 0.5 s (startup options)", "no pooler dropped them"


def test_a_schema_before_pg_catalog_is_refused(target):
    """A search path that puts a schema with its own now() before pg_catalog (ten days behind, a
    stale feed would look fresh): the probe refuses the session rather than trust its clock."""
    stage(
        target,
        "CREATE SCHEMA clock",
        "GRANT USAGE ON SCHEMA clock TO PUBLIC",
        "CREATE FUNCTION clock.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT pg_catalog.now() - interval '10 days' $$",
    )
    error = connect_error(f"{target.url}?options=-c%20search_path%3Dclock,pg_catalog,public")
    assert error.cause == "search_path"
    assert "puts schema clock before pg_catalog" in str(error)
    with db_probe.connect(parse(f"{target.url}?options=-c%20search_path%3Dclock,public"), FAST) as conn:
        assert db_probe.table_stats(conn, "market_data", 1000, FAST).rows == 120, "pg_catalog first, implied: fine"


def test_wrong_password_is_named_without_echoing_it(target):
    url = target.url.replace(target.role.password, "not-the-password")
    error = connect_error(url)
    assert error.cause == "auth"
    assert f"authentication failed for user '{target.role.name}'" in str(error)
    assert "not-the-password" not in str(error) and target.role.password not in str(error)


def test_missing_database_is_named(target):
    error = connect_error(target.url.rsplit("/", 1)[0] + "/no_such_db")
    assert (error.cause, str(error).split(" on ")[0]) == ("no_database", "database 'no_such_db' does not exist")


@pytest.mark.parametrize(
    "variables",
    [
        {"PGPORT": "{port}"},
        {"PGHOSTADDR": "127.0.0.1", "PGPORT": "{port}"},
    ],
    ids=["PGPORT", "PGHOSTADDR"],
)
def test_pg_variables_never_send_the_probe_elsewhere_than_db_url_names(target, monkeypatch, variables, tmp_path):
    """A PGPORT exported for psql must not make a URL without a port (or with a host that does not even
    resolve) reach the server it happens to point at: DB_URL alone names the server."""
    port = target.admin.info.port
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(port=port))
    monkeypatch.setenv("PGPASSWORD", target.role.password)  # still honoured: it names no server
    with socket.socket(socket.AF_UNIX) as lure:
        # PGPORT alone: the URL names a socket folder that holds a socket for PGPORT's port only, never
        # one for 5432 (libpq's default): a server of this machine's on 5432 is never dialled either.
        lure.bind(str(tmp_path / f".s.PGSQL.{port}"))
        lure.listen(1)
        url = (
            f"postgresql://{target.role.name}@/{target.dbname}?host={tmp_path}"
            if variables.keys() == {"PGPORT"}
            else f"postgresql://{target.role.name}@db.invalid/{target.dbname}"
        )
        with pytest.raises(ProbeError) as raised:
            db_probe.connect(parse(url), FAST).close()
        lure.setblocking(False)
        with pytest.raises(BlockingIOError):
            lure.accept()  # nobody dialled PGPORT's socket
    assert raised.value.cause in ("no_socket", "host_not_found"), str(raised.value)
    assert "in the environment are not used: DB_URL alone names the server" in str(raised.value)
    with db_probe.connect(parse(f"postgresql://{target.role.name}@127.0.0.1:{port}/{target.dbname}"), FAST) as conn:
        assert conn.info.user == target.role.name, "PGPASSWORD still supplies a password the URL leaves out"


def test_refused_connection_is_named(target, closed_port):
    error = connect_error(f"postgresql://u:pw@127.0.0.1:{closed_port}/db")
    assert error.cause == "refused"
    assert str(error) == (
        f"connection refused by 127.0.0.1:{closed_port}: is PostgreSQL running and listening there? Start it, or fix "
        "host/port in DB_URL"
    ), "libpq's cause and its fix, and nothing after them"
    assert error.setting == "local_server", "refused on this machine: the caller may offer its sandbox"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_refused_on_each_loopback_name_offers_the_local_server(host, closed_port):
    error = connect_error(f"postgresql://u:pw@{host}:{closed_port}/db")
    assert (error.cause, error.setting) == ("refused", "local_server")


@pytest.mark.parametrize(
    ("connect", "query", "bad"),
    [(0, 1, "connect"), (1, 0, "query"), (float("nan"), 1, "connect"), (1, db_probe.MAX_TIMEOUT_S + 1, "query")],
)
def test_timeouts_out_of_range_are_refused_by_name(connect, query, bad):
    with pytest.raises(ValueError) as raised:
        Timeouts(connect=connect, query=query)
    assert str(raised.value) == (
        f"the {bad} timeout must be a number of seconds above 0 and up to {db_probe.MAX_TIMEOUT_S}"
    )


def test_the_longest_timeouts_are_allowed():
    assert Timeouts(connect=db_probe.MAX_TIMEOUT_S, query=db_probe.MAX_TIMEOUT_S).query == db_probe.MAX_TIMEOUT_S


def test_unknown_host_is_named():
    error = connect_error("postgresql://u:pw@no-such-host.invalid:5432/db")
    assert error.cause == "host_not_found"


def test_missing_socket_is_named(tmp_path):
    error = connect_error(f"postgresql://u:pw@/db?host={tmp_path}")
    assert error.cause == "no_socket"
    assert str(tmp_path) in str(error)


def test_silent_server_hits_our_deadline_not_libpqs(silent_port):
    error = connect_error(f"postgresql://u:pw@127.0.0.1:{silent_port}/db", Timeouts(connect=0.5, query=1))
    assert error.cause == "timeout"
    assert "within 0.5 s" in str(error)


class SlowHandshake:
    """A TCP relay to the test server that holds each new client for ``delay`` seconds before it
    connects upstream: a connection that completes after the audit stopped waiting for it. It
    notes when the server said it was ready for queries, and when the client hung up."""

    READY_FOR_QUERY = b"Z\x00\x00\x00\x05"  # the protocol's ReadyForQuery: the session is open

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.ready, self.client_left = threading.Event(), threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        time.sleep(self.delay)
        server = socket.create_connection(self.upstream)
        threading.Thread(target=self._pump, args=(server, client, self.ready), daemon=True).start()
        self._pump(client, server, None)
        self.client_left.set()

    def _pump(self, source: socket.socket, sink: socket.socket, ready: threading.Event | None) -> None:
        try:
            while data := source.recv(65536):
                if ready is not None and self.READY_FOR_QUERY in data:
                    ready.set()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self.listener.close()


@contextmanager
def slow_handshake(target, delay: float) -> Iterator[tuple[SlowHandshake, str]]:
    """The target's URL through a SlowHandshake relay of ``delay`` seconds."""
    host_part = target.url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_part.rsplit(":", 1)
    relay = SlowHandshake((host, int(port)), delay)
    try:
        yield relay, target.url.replace(host_part, f"127.0.0.1:{relay.port}")
    finally:
        relay.close()


def test_a_connection_that_completes_after_the_deadline_is_closed(target):
    """The audit gives up at its deadline; the handshake it abandoned may still succeed a moment
    later. That late session must be closed, never left open on the user's server."""
    with slow_handshake(target, delay=1.0) as (relay, url):
        with pytest.raises(ProbeError) as raised:
            db_probe.connect(parse(url), Timeouts(connect=0.3, query=1))  # libpq itself waits 2 s
        assert raised.value.cause == "timeout"
        assert relay.ready.wait(10), "the late handshake never completed: nothing was tested"
        assert relay.client_left.wait(10), "the late session stayed open on the server"


@pytest.mark.parametrize("deadline", [0.6, 1.8], ids=["just under the delay", "just over it"])
def test_the_connect_deadline_is_the_one_given(target, deadline):
    """A server that answers after 1 s: a deadline of 0.6 s gives up on it, one of 1.8 s gets in (0.8 s
    for the handshake itself, under load). libpq's own timeout (2 s at least) decides neither."""
    with slow_handshake(target, delay=1.0) as (relay, url):
        try:
            db_probe.connect(parse(url), Timeouts(connect=deadline, query=1)).close()
        except ProbeError as exc:
            assert (deadline, exc.cause) == (0.6, "timeout"), str(exc)
        else:
            assert deadline == 1.8, "got in although the server answers after the deadline"


def test_small_table_is_counted_exactly(conn):
    stats = db_probe.table_stats(conn, "market_data", 1000, FAST)
    assert (stats.rows, stats.exact, stats.shown) == (120, True, "120 rows")


def test_big_table_reports_the_planner_estimate_without_counting(conn):
    stats = db_probe.table_stats(conn, "market_data", 100, FAST)
    assert (stats.rows, stats.exact) == (120, False)
    assert stats.shown == "~120 rows (planner estimate)"


def seq_tuples_read(conn: psycopg.Connection, table: str) -> int:
    """Rows sequential scans have read from ``table``, this backend's counts flushed first (PostgreSQL 15+)."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # flushed before the server says it is ready again
    conn.execute("SELECT pg_stat_clear_snapshot()")
    (read,) = conn.execute(
        "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relid = %s::regclass", (table,)
    ).fetchone()
    return read


def test_big_table_path_reads_at_most_one_row(target, conn):
    """Over the limit nothing is counted: EXISTS reads one row, where a bounded count would read all 120."""
    if conn.info.server_version < 150000:
        pytest.skip("pg_stat_force_next_flush() needs PostgreSQL 15")
    target.admin.execute("UPDATE pg_class SET reltuples = 1e9 WHERE oid = 'market_data'::regclass")
    before = seq_tuples_read(conn, "market_data")
    stats = db_probe.table_stats(conn, "market_data", 1000, FAST)
    assert seq_tuples_read(conn, "market_data") - before <= 1
    assert (stats.table, stats.rows, stats.exact) == ("market_data", 10**9, False)
    assert stats.shown == "~1,000,000,000 rows (planner estimate)"
    counted = seq_tuples_read(conn, "market_data")
    db_probe.table_stats(conn, "market_data", 10**10, FAST)  # the exact path, for contrast: it reads them all
    assert seq_tuples_read(conn, "market_data") - counted == 120


def test_big_table_emptied_after_its_statistics_is_empty(target, conn):
    """The planner still says ~120 rows, so the EXISTS path decides: it must say empty, not ~120."""
    target.admin.execute("ALTER TABLE market_data SET (autovacuum_enabled = false)")
    target.admin.execute("DELETE FROM market_data")
    error = probe_error(conn, "market_data", exact_limit=10)
    assert error.cause == "empty" and "table 'market_data' is empty" in str(error)


def test_a_one_row_table_is_not_empty(target, conn):
    target.admin.execute("CREATE TABLE single AS SELECT 1 AS n")
    target.admin.execute("GRANT SELECT ON single TO PUBLIC")
    stats = db_probe.table_stats(conn, "single", 10, FAST)
    assert (stats.table, stats.rows, stats.exact, stats.shown) == ("single", 1, True, "1 row")


def test_a_table_of_exactly_the_limit_is_counted_exactly(target, conn):
    target.admin.execute("CREATE TABLE ten AS SELECT generate_series(1, 10) AS n")  # never analyzed: no estimate
    target.admin.execute("GRANT SELECT ON ten TO PUBLIC")
    stats = db_probe.table_stats(conn, "ten", 10, FAST)
    assert (stats.rows, stats.exact) == (10, True)


def test_a_table_the_planner_puts_at_exactly_the_limit_is_counted_exactly(target, conn):
    """ "Up to this many rows are counted exactly": an estimate equal to the limit is no big table."""
    target.admin.execute("CREATE TABLE ten AS SELECT generate_series(1, 10) AS n")
    target.admin.execute("ANALYZE ten")
    target.admin.execute("GRANT SELECT ON ten TO PUBLIC")
    stats = db_probe.table_stats(conn, "ten", 10, FAST)
    assert (stats.rows, stats.exact, stats.shown) == (10, True, "10 rows")


@pytest.mark.parametrize(
    ("analyzed", "shown"),
    [
        (False, "more than 10 rows (no current planner estimate: run ANALYZE eleven)"),
        (True, "~11 rows (planner estimate)"),
    ],
    ids=["counted", "estimated"],
)
def test_one_row_over_the_exact_count_limit_is_no_exact_count(target, conn, analyzed, shown):
    """The limit's other side (a table of exactly the limit is counted exactly, above): 11 rows at a limit
    of 10 are "more than 10" to the bounded count, or the planner's estimate; never an exact "11 rows"."""
    stage(
        target,
        "CREATE TABLE eleven AS SELECT generate_series(1, 11) AS n",
        "GRANT SELECT ON eleven TO PUBLIC",
        *(["ANALYZE eleven"] if analyzed else []),
    )
    stats = db_probe.table_stats(conn, "eleven", 10, FAST)
    assert (stats.exact, stats.shown) == (False, shown)


@pytest.mark.parametrize("rows_at_analyze", [0, 5], ids=["analyzed while empty", "analyzed at 5 rows"])
def test_a_table_grown_past_the_limit_since_its_analyze_shows_no_stale_estimate(target, conn, rows_at_analyze):
    """The planner says 0 or 5 rows, the bounded count finds over 10: "~0 rows" or "~5 rows" would be a
    false low; what is known is "more than 10"."""
    stage(
        target,
        f"CREATE TABLE grown AS SELECT generate_series(1, {rows_at_analyze}) AS n",
        "ALTER TABLE grown SET (autovacuum_enabled = false)",
        "ANALYZE grown",
        f"INSERT INTO grown SELECT generate_series({rows_at_analyze + 1}, 50)",
        "GRANT SELECT ON grown TO PUBLIC",
    )
    stats = db_probe.table_stats(conn, "grown", 10, FAST)
    assert (stats.rows, stats.exact, stats.over) == (10, False, True)
    assert stats.shown == "more than 10 rows (no current planner estimate: run ANALYZE grown)"


def test_a_partitioned_table_is_estimated_from_its_partitions(target, conn):
    """autovacuum never analyzes a partitioned table itself: its estimate is its partitions' (a
    sub-partitioned one included); with one that holds rows but was never analyzed there is none, and
    the bounded count says "more than"; an empty one made ahead of time counts as no rows."""
    stage(
        target,
        "CREATE TABLE parted (id int) PARTITION BY RANGE (id)",
        "CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (20)",
        "CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (20) TO (100) PARTITION BY RANGE (id)",
        "CREATE TABLE parted_high_all PARTITION OF parted_high FOR VALUES FROM (20) TO (100)",
        "CREATE TABLE parted_next PARTITION OF parted FOR VALUES FROM (100) TO (200)",  # empty, never analyzed
        "INSERT INTO parted SELECT generate_series(1, 50)",
        "GRANT SELECT ON parted TO PUBLIC",
        "ANALYZE parted_low",
    )
    never = db_probe.table_stats(conn, "parted", 10, FAST)  # parted_high_all holds rows, never analyzed
    assert never.shown == "more than 10 rows (no current planner estimate: run ANALYZE parted)"
    target.admin.execute("ANALYZE parted_high_all")
    stats = db_probe.table_stats(conn, "parted", 10, FAST)
    assert (stats.rows, stats.exact, stats.over) == (50, False, False)


def test_an_inheritance_parent_is_estimated_with_its_children(target, conn):
    """TimescaleDB's hypertables keep their rows in inheritance children: the parent's own estimate is 0."""
    stage(
        target,
        "CREATE TABLE hyper (id int)",
        "CREATE TABLE hyper_chunk () INHERITS (hyper)",
        "INSERT INTO hyper_chunk SELECT generate_series(1, 50)",
        "ANALYZE hyper",
        "ANALYZE hyper_chunk",
        "GRANT SELECT ON hyper TO PUBLIC",
    )
    stats = db_probe.table_stats(conn, "hyper", 10, FAST)
    assert (stats.rows, stats.exact, stats.over) == (50, False, False)


def test_a_view_has_no_estimate_and_says_what_to_list_instead(target, conn):
    stage(target, "CREATE VIEW md AS SELECT * FROM market_data", "GRANT SELECT ON md TO PUBLIC")
    stats = db_probe.table_stats(conn, "md", 10, FAST)
    assert (
        stats.shown == "more than 10 rows (a view has no planner estimate: list the table it reads in the table list)"
    )


@pytest.fixture
def filtered(target) -> None:
    """assets under row-level security, with a policy that shows every role all of its rows."""
    target.admin.execute("ALTER TABLE assets ENABLE ROW LEVEL SECURITY")
    target.admin.execute("CREATE POLICY every_row ON assets FOR SELECT USING (true)")


@pytest.mark.parametrize(
    ("reads", "filtered_for_the_audit"),
    [
        ("CREATE VIEW seen WITH (security_invoker = true) AS SELECT * FROM assets", True),
        (
            "CREATE VIEW inner_view WITH (security_invoker = true) AS SELECT * FROM assets;"
            " GRANT SELECT ON inner_view TO PUBLIC;"
            " CREATE VIEW seen WITH (security_invoker = true) AS SELECT * FROM inner_view",
            True,
        ),
        (
            "CREATE FUNCTION all_assets() RETURNS TABLE (symbol text) LANGUAGE sql AS 'SELECT symbol FROM assets';"
            " CREATE VIEW seen AS SELECT * FROM all_assets()",
            True,
        ),
        ("CREATE VIEW seen AS SELECT * FROM assets", False),  # read as its owner, the tables' owner (a superuser)
        ("CREATE MATERIALIZED VIEW seen AS SELECT * FROM assets", False),  # filled by its owner
    ],
    ids=["invoker view", "view of a view", "view through a function", "owner's view", "materialized view"],
)
def test_a_view_is_filtered_when_a_table_it_reads_is_for_its_reader(
    target, conn, make_role, filtered, reads, filtered_for_the_audit
):
    """row_security_active says nothing of views: a table under row-level security at any depth, read
    by the audit's role (security_invoker) or by the view's owner, decides; a BYPASSRLS role sees it all."""
    stage(target, *reads.split("; "))
    target.admin.execute("GRANT SELECT ON seen TO PUBLIC")
    assert db_probe.table_stats(conn, "seen", 1000, FAST).row_security is filtered_for_the_audit
    bypassing = make_role("pw-" + secrets.token_hex(8))
    target.admin.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(bypassing.name)))
    url = target.url.replace(f"{target.role.name}:{target.role.password}@", f"{bypassing.name}:{bypassing.password}@")
    with db_probe.connect(parse(url), FAST) as its_conn:
        assert db_probe.table_stats(its_conn, "seen", 1000, FAST).row_security is False


def test_the_row_security_warning_names_the_table_the_user_and_the_fix():
    """The audit's evidence line (the feed checks read it through the audit): whole, in one line."""
    assert db_probe.row_security_warning('"Market Data"', "reader") == (
        "row-level security may filter what user 'reader' sees of \"Market Data\" (it is on for the table, or for a "
        "table it reads), so these numbers may be of part of it: audit as a role with BYPASSRLS"
    )


def test_never_analyzed_table_over_the_limit_is_non_empty_without_an_estimate(target, conn):
    target.admin.execute("CREATE TABLE fresh AS SELECT generate_series(1, 50) AS n")
    target.admin.execute("GRANT SELECT ON fresh TO PUBLIC")
    before = seq_tuples_read(conn, "fresh") if conn.info.server_version >= 150000 else None
    stats = db_probe.table_stats(conn, "fresh", 10, FAST)
    assert (stats.rows, stats.exact, stats.over) == (10, False, True)
    assert stats.shown == "more than 10 rows (no current planner estimate: run ANALYZE fresh)"
    if before is not None:  # the count is bounded: limit + 1 rows read, not all 50
        assert seq_tuples_read(conn, "fresh") - before == 11


def probe_error(conn: psycopg.Connection, table: str, exact_limit: int = 1000) -> ProbeError:
    with pytest.raises(ProbeError) as raised:
        db_probe.table_stats(conn, table, exact_limit, FAST)
    return raised.value


def test_missing_table_is_named(conn):
    error = probe_error(conn, "no_such_table")
    assert (error.cause, error.setting) == ("missing", "tables"), "the fix is the table list"
    assert "table 'no_such_table' does not exist" in str(error)
    assert str(error).endswith(": create it, or fix the table list")


def test_empty_table_is_named(target, conn):
    target.admin.execute("TRUNCATE market_data")
    assert probe_error(conn, "market_data").cause == "empty"


def test_unreadable_table_says_which_grant_is_missing(target, conn):
    target.admin.execute("REVOKE SELECT ON assets FROM PUBLIC")
    error = probe_error(conn, "assets")
    assert error.cause == "permission"
    assert f"GRANT SELECT ON public.assets TO {target.role.name}" in str(error), "whoever runs it grants this table"
    stage(target, 'CREATE TABLE "Odd Name" (ts timestamptz)')
    assert 'GRANT SELECT ON public."Odd Name" TO' in str(probe_error(conn, '"Odd Name"'))


@pytest.mark.parametrize("exact_limit", [1000, 10], ids=["counted", "big"])
def test_locked_table_is_named_instead_of_waiting(target, conn, exact_limit):
    with target.admin.transaction():
        target.admin.execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        error = probe_error(conn, "market_data", exact_limit)
    assert (error.cause, error.setting) == ("locked", None), "the fix is the lock holder, not a setting"
    assert "table 'market_data' is locked by another session" in str(error)
    assert str(error).endswith("find the holder in pg_locks / pg_stat_activity, then retry")


def test_a_locked_table_is_waited_on_once_per_connection(target, conn):
    """Each later check of the same table on this connection says it was locked at once, without waiting
    again (a locked market_data cost the whole audit five lock waits before); another table is still read."""
    with target.admin.transaction():
        target.admin.execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        probe_error(conn, "market_data", 1000)
        started = time.monotonic()
        again = probe_error(conn, "market_data", 1000)
        waited = time.monotonic() - started
    assert again.cause == "locked" and "when this run read it before (waited once" in str(again)
    assert waited < FAST.lock, f"waited {waited:.2f} s again"
    assert db_probe.table_stats(conn, "assets", 1000, FAST).rows > 0


def test_slow_table_hits_the_statement_timeout(target, conn):
    target.admin.execute("CREATE VIEW slow AS SELECT 1 AS one FROM pg_sleep(5)")
    target.admin.execute("GRANT SELECT ON slow TO PUBLIC")
    error = probe_error(conn, "slow")
    assert (error.cause, error.setting) == ("timeout", "query_timeout")
    assert "took longer than 1 s" in str(error)
    assert str(error).endswith("the server is overloaded or the table is bloated; retry, or raise the query timeout")


def test_invalid_table_name_is_named(conn):
    error = probe_error(conn, "bad name(")
    assert (error.cause, error.setting, str(error)) == (
        "bad_name",
        "tables",
        "'bad name(' is not a valid table name: fix the table list",
    )


def test_server_version_is_readable(conn):
    major, minor = db_probe.server_version(conn).split(".")
    assert int(major) >= 10 and int(minor) >= 0
    (shown,) = conn.execute("SHOW server_version").fetchone()
    assert shown.split()[0] == db_probe.server_version(conn), "what the server calls itself"


def test_server_that_freezes_mid_audit_hits_our_own_deadline(target, conn):
    """statement_timeout is enforced by the server; a frozen server needs the client's clock too."""
    backend = conn.info.backend_pid
    try:
        os.kill(backend, signal.SIGSTOP)
    except PermissionError:
        pytest.skip("the server runs as another OS user: its backend cannot be frozen from here")
    try:
        first = probe_error(conn, "market_data")
        started = time.monotonic()
        second = probe_error(conn, "assets")
        waited = time.monotonic() - started
    finally:
        os.kill(backend, signal.SIGCONT)
    assert first.cause == "no_answer"
    assert "stopped answering while checking table 'market_data'" in str(first)
    assert second.cause == "no_answer", "a connection left busy must not hang the next check"
    assert "still waiting for the server's answer on table 'market_data'" in str(second)
    assert waited < 1, "it says so at once rather than wait out the deadline again"
    conn.close()


def test_a_one_letter_password_does_not_hide_the_cause(target, make_role):
    """The cause is read from libpq's words before the password is masked out of them."""
    role = make_role("a")
    host_part = target.url.split("@", 1)[1]
    error = connect_error(f"postgresql://{role.name}:b@{host_part}")
    assert error.cause == "auth"
    assert str(error).startswith(f"authentication failed for user '{role.name}'")


@pytest.mark.parametrize(
    ("libpq_text", "cause", "advice"),
    [
        (
            'connection failed: connection to server at "10.0.0.5", port 6432 failed: '
            "FATAL:  unsupported startup parameter: options",
            "pooler",
            "ignore_startup_parameters",
        ),
        (
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            "FATAL:  sorry, too many clients already",
            "too_many",
            "raise max_connections",
        ),
        (
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            "FATAL:  the database system is starting up",
            "unavailable",
            "try again in a moment",
        ),
        (
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "trader", database "mt5_crs", no encryption',
            "not_allowed",
            "ask its administrator",
        ),
    ],
)
def test_server_side_refusals_we_cannot_stage_here_are_classified(libpq_text, cause, advice):
    """libpq's exact words for situations this machine cannot produce (a pooler, a full or starting server)."""
    error = db_probe.classify_connect_error(libpq_text, parse("postgresql://trader:pw@10.0.0.5/mt5_crs"))
    assert error.cause == cause
    assert advice in str(error)


@pytest.mark.parametrize(
    ("text", "url", "cause", "message", "setting"),
    [
        (
            "connection failed: something odd happened\nmore",
            "postgresql://u@db/x",
            "connect_failed",
            "cannot connect to 'x' at db: something odd happened",
            None,
        ),
        (
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  the moon is wrong\n',
            "postgresql://u@10.0.0.5/x",
            "connect_failed",
            "cannot connect to 'x' at 10.0.0.5: the moon is wrong",
            None,
        ),
        (
            'connection failed: connection to server on socket "/run/pg/.s.PGSQL.5432" failed: No such file or '
            "directory\n\tIs the server running locally?",
            "postgresql://u@/x?host=/run/pg",
            "no_socket",
            "no PostgreSQL socket at /run/pg/.s.PGSQL.5432: is the server running locally? Or give a TCP host in DB_URL",
            None,
        ),
        (
            "connection failed: fe_sendauth: no password supplied",
            "postgresql://db/x",
            "auth",
            "the server asks for a password and DB_URL has none for user '(default user)': add it to DB_URL",
            None,
        ),
        (
            "connection failed: No such file or directory",
            "postgresql://u@/x?host=/srv/pg",
            "no_socket",
            "no PostgreSQL socket at /srv/pg: is the server running locally? Or give a TCP host in DB_URL",
            None,
        ),
        (
            "connection failed: No such file or directory",
            "postgresql://u@localhost/x",
            "no_socket",
            "no PostgreSQL socket at the default socket: is the server running locally? Or give a TCP host in DB_URL",
            None,
        ),
        (
            "connection failed: Connection refused",
            "postgresql://u@db.internal:5433/x",
            "refused",
            "connection refused by db.internal:5433: is PostgreSQL running and listening there? Start it, or fix "
            "host/port in DB_URL",
            None,
        ),
        (
            "connection failed: Connection refused",
            "postgresql://u@localhost,db.internal/x",
            "refused",
            "connection refused by localhost, db.internal: is PostgreSQL running and listening there? Start it, or fix "
            "host/port in DB_URL",
            None,
        ),
    ],
)
def test_connect_errors_are_classified_exactly(text, url, cause, message, setting):
    error = db_probe.classify_connect_error(text, parse(url))
    assert (error.cause, str(error), error.setting) == (cause, message, setting)


def test_a_port_that_does_not_speak_postgresql_is_named_as_such():
    """An HTTP server on the port is not a TLS problem: the fix is the port, not sslmode."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]

        def answer_like_http() -> None:
            while True:  # libpq may try TLS first, then plain; the listener's close ends it
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(100)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer_like_http, daemon=True).start()
        error = connect_error(f"postgresql://trader:pw-x9@127.0.0.1:{port}/mt5_crs?sslmode=prefer")
    assert error.cause == "not_postgres", str(error)
    assert f"what answers at 127.0.0.1:{port} is not PostgreSQL" in str(error) and "check the port" in str(error)
