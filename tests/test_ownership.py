"""infra_audit/sandbox/ownership.py against a real PostgreSQL: ownership is proven by marker, never by name.

Every object here has a run-unique name and is dropped by this test only after re-reading the
marker (or, for the unmarked look-alike, the run-unique comment) this test put on it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from infra_audit.sandbox import ownership
from infra_audit.sandbox.ownership import Marker, drop_if_ours, read_marker
from tests.support import REPO

TOKEN = secrets.token_hex(4)
PREFIX = f"infra_selftest_{os.getpid()}_own_{TOKEN}"
ODD_COMMENTS = [
    "",
    "not json",
    "{}",
    "[1, 2]",
    '"a string"',
    "null",
    "{" * 3 + "broken",
    "[" * 50_000,
    '{"format": "infra-ownership/1"}',
    (
        '{"format": "infra-ownership/1", "maker": "self-tests", "checkout": "x", "host": "h", "pid": "12",'
        ' "run_id": "r", "created": "c"}'
    ),
    (
        '{"format": "infra-ownership/2", "maker": "self-tests", "checkout": "x", "host": "h", "pid": 12,'
        ' "run_id": "r", "created": "c"}'
    ),
    "made by tools/sandbox.py",
]


@pytest.fixture
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with ownership.connect(admin_url) as conn:
        yield conn


@pytest.fixture
def make(admin: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """Create a database or role with a run-unique name and a marker or a run-unique odd comment.

    Teardown drops each one only if it still carries what this test wrote on it.
    """
    made: list[tuple[str, str, Marker | None, str | None]] = []

    def create(kind: str, suffix: str, marker: Marker | None = None, comment: str | None = None) -> str:
        name = f"{suffix}_{TOKEN}" if suffix.startswith("infra_selftest_") else f"{PREFIX}_{suffix}"
        keyword = ownership.KINDS[kind][3]
        admin.execute(sql.SQL("CREATE {} {}").format(sql.SQL(keyword), sql.Identifier(name)))
        made.append((kind, name, marker, comment))
        if marker is not None:
            admin.execute(marker.comment_sql(kind, name))
        elif comment is not None:
            admin.execute(
                sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(keyword), sql.Identifier(name), sql.Literal(comment))
            )
        return name

    yield create
    failures = []
    for kind, name, marker, comment in sorted(made, key=lambda item: item[0] != "database"):  # roles last
        try:
            if marker is not None:
                drop_if_ours(admin, kind, name, marker)
            elif _comment(admin, kind, name) == (comment or None):  # COMMENT IS '' removes the comment
                keyword = sql.SQL(ownership.KINDS[kind][3])
                admin.execute(sql.SQL("DROP {} IF EXISTS {}").format(keyword, sql.Identifier(name)))
        except psycopg.Error as exc:  # go on: one failure must not leave the rest behind
            failures.append(f"{kind} {name}: {exc}")
    assert not failures, f"could not drop: {failures}"


def _comment(conn: psycopg.Connection, kind: str, name: str) -> str | None:
    catalog, view, column, _ = ownership.KINDS[kind]
    row = conn.execute(
        sql.SQL("SELECT shobj_description(oid, {}) FROM {} WHERE {} = %s").format(
            sql.Literal(catalog), sql.Identifier(view), sql.Identifier(column)
        ),
        (name,),
    ).fetchone()
    return row[0] if row else None


def exists(conn: psycopg.Connection, kind: str, name: str) -> bool:
    _, view, column, _ = ownership.KINDS[kind]
    query = sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(sql.Identifier(view), sql.Identifier(column))
    return conn.execute(query, (name,)).fetchone() is not None


@pytest.fixture
def maker() -> str:
    """A maker name of this test alone."""
    return f"self-tests-{secrets.token_hex(4)}"


def test_the_session_has_deadlines(admin: psycopg.Connection) -> None:
    assert admin.execute("SHOW statement_timeout").fetchone()[0] == "15s"
    assert admin.execute("SHOW lock_timeout").fetchone()[0] == "5s"


@pytest.mark.parametrize("kind", ["database", "role"])
def test_a_marker_round_trips_through_a_comment(admin: psycopg.Connection, make, maker: str, kind: str) -> None:
    marker = Marker.new(maker, REPO)
    name = make(kind, f"rt_{kind}", marker)
    read = read_marker(admin, kind, name)
    assert read == marker and marker.owns(read, same_run=True)
    assert Marker.new(maker, REPO).owns(read) and not Marker.new(maker, REPO).owns(read, same_run=True)
    assert not Marker.new(maker, "/elsewhere").owns(read) and not Marker.new("benchmark", REPO).owns(read)


def test_a_marker_round_trips_through_a_state_file(tmp_path: Path) -> None:
    marker = Marker.new("tools/sandbox.py", tmp_path)
    marker.write_file(tmp_path / "owner.json")
    assert ownership.read_marker_file(tmp_path / "owner.json") == marker
    assert (tmp_path / "owner.json").stat().st_mode & 0o777 == 0o600
    assert ownership.read_marker_file(tmp_path / "missing.json") is None


@pytest.mark.parametrize("comment", ODD_COMMENTS)
def test_odd_comments_are_no_marker(admin: psycopg.Connection, make, maker: str, comment: str) -> None:
    name = make("role", "odd", comment=comment)
    assert read_marker(admin, "role", name) is None


def test_missing_objects_have_no_marker(admin: psycopg.Connection) -> None:
    assert read_marker(admin, "database", f"{PREFIX}_never_made") is None
    assert read_marker(admin, "role", f"{PREFIX}_never_made") is None


def test_drop_if_ours_rereads_the_marker(admin: psycopg.Connection, make, maker: str) -> None:
    mine = Marker.new(maker, REPO)
    name = make("database", "reread", mine)
    newer = Marker.new(maker, REPO)  # same maker and checkout, another run: not proof enough
    assert not drop_if_ours(admin, "database", name, newer)
    admin.execute(newer.comment_sql("database", name))  # someone else's run took the name over
    assert not drop_if_ours(admin, "database", name, mine) and exists(admin, "database", name)
    assert drop_if_ours(admin, "database", name, newer) and not exists(admin, "database", name)
    assert not drop_if_ours(admin, "database", name, newer)  # gone: nothing to drop, no error


def test_a_database_with_a_lingering_session_of_the_run_is_still_dropped(
    admin: psycopg.Connection, admin_url: str, make, maker: str
) -> None:
    """A plain DROP first (it waits for autovacuum's workers, which FORCE may not end for a role that is
    no superuser); a session a dead run left open there is ended with FORCE."""
    mine = Marker.new(maker, REPO)
    name = make("database", "lingering", mine)
    lingering = psycopg.connect(conninfo.make_conninfo(admin_url, dbname=name), autocommit=True)
    try:
        assert drop_if_ours(admin, "database", name, mine) and not exists(admin, "database", name)
    finally:
        lingering.close()
