"""The audit through a real PgBouncer that drops its startup options (``ignore_startup_parameters =
options``, as the audit's own advice says): every statement is still read-only and bounded, nothing
of it stays on a pooled server connection for the next client, and a pooler that allows no
transaction is refused in one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import parse
from infra_audit.core.errors import ProbeError
from infra_audit.core.probe import Timeouts
from tests.pooler import Pooler, pgbouncer
from tests.support import write_env

FAST = Timeouts(connect=5, query=2)
BOUNDS = (
    "SELECT current_setting('transaction_read_only'), current_setting('statement_timeout'),"
    " current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), pg_backend_pid()"
)
DROPPED = "the startup options that set them were dropped on the way (a pooler?)"


@pytest.fixture
def pooled(target) -> Callable[[str], contextmanager]:
    """PgBouncer in a pool mode, in front of the target's database, for the target's role."""
    query = "SELECT rolpassword FROM pg_authid WHERE rolname = %s"
    (verifier,) = target.admin.execute(query, (target.role.name,)).fetchone()

    @contextmanager
    def start(mode: str) -> Iterator[Pooler]:
        with pgbouncer(target.admin.info.port, target.dbname, target.role.name, verifier, mode) as pooler:
            yield pooler

    return start


def _plain(url: str) -> psycopg.Connection:
    """A client as the application is one: no startup options, no SET of its own."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5, prepare_threshold=None)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_through_pgbouncer_every_statement_is_read_only_and_bounded_and_nothing_stays(mode, pooled, target):
    with pooled(mode) as pooler:
        url = pooler.url(target.role.name, target.role.password)
        with db_probe.connect(parse(url), FAST) as conn:
            assert db_probe.session_bounds(conn, FAST) == (
                "read-only, statement_timeout 2 s, lock_timeout 1 s, each statement in a READ ONLY transaction of its "
                f"own with SET LOCAL timeouts: {DROPPED}"
            )
            *bounds, pid = db_probe.fetch_one(conn, BOUNDS, "the session", FAST)
            assert bounds == ["on", "2s", "1s", "2s"]  # idle in a transaction of ours: it ends too
            insert = "INSERT INTO assets (symbol, name) VALUES ('X', 'x') RETURNING 1"
            with pytest.raises(ProbeError, match="cannot execute INSERT in a read-only transaction"):
                db_probe.fetch_one(conn, insert, "assets", FAST)
        with _plain(url) as other:  # one server connection at rest: the next client gets the audit's
            *bounds, other_pid = other.execute(BOUNDS).fetchone()
            assert other_pid == pid and bounds == ["off", "0", "0", "0"]
            other.execute("CREATE TEMP TABLE written_by_the_application (x int)")  # it may still write


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_an_audit_through_pgbouncer_waits_on_a_lock_only_its_lock_timeout(mode, pooled, target, project, run_audit):
    """A table locked by another session: the audit's query gives up on the server at its lock_timeout
    (it used to wait there until the lock went, long after the client had stopped waiting) and the
    check says so; the health check, its own process, too. Unlocked, the audit passes."""
    with pooled(mode) as pooler:
        write_env(project, f"DB_URL={pooler.url(target.role.name, target.role.password)}\n")
        healthy = run_audit(project, "--query-timeout=2")
        assert healthy.exit_code == 0, healthy.output
        assert DROPPED in healthy.output
        with target.admin.transaction():
            target.admin.execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
            locked = run_audit(project, "--query-timeout=2")
            (waiting,) = target.admin.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'market_data'::regclass AND NOT granted"
            ).fetchone()
        assert waiting == 0, "a query of the audit still waits on the server for the lock"
        for check in ("test_row_counts_nonzero", "test_health_check_passes"):
            assert "market_data' is locked by another session (waited 1 s)" in locked.message(check), locked.output


def test_a_pooler_that_allows_no_transaction_is_refused_in_one_line(pooled, target):
    """Statement pooling drops the startup options and refuses the read-only transaction each statement
    would run in: the audit cannot be bounded through it, so it does not run through it."""
    with pooled("statement") as pooler, pytest.raises(ProbeError) as refused:
        db_probe.connect(parse(pooler.url(target.role.name, target.role.password)), FAST)
    assert refused.value.cause == "pooler" and "\n" not in str(refused.value)
    assert "transaction blocks not allowed in statement pooling mode" in str(refused.value)
    assert str(refused.value).endswith("use session or transaction pooling, or point DB_URL at PostgreSQL itself")


def test_no_statement_is_prepared_on_a_server_connection_the_next_one_may_not_be(pooled, target):
    """In transaction pooling each statement may land on another server connection: one psycopg
    prepared (after 5 runs of the same query) on the first is unknown on the second."""
    with pooled("transaction") as pooler:
        url = pooler.url(target.role.name, target.role.password)
        with db_probe.connect(parse(url), FAST) as conn, _plain(url) as other:
            for _ in range(8):
                assert db_probe.fetch_one(conn, "SELECT %s::int", "the session", FAST, (1,)) == (1,)
            with other.transaction():  # holds the server connection the audit used: its next one is new
                other.execute("SELECT 1")
                assert db_probe.fetch_one(conn, "SELECT %s::int", "the session", FAST, (1,)) == (1,)
