"""The sandbox's server work: every statement bounded by our own clock, even on a server that stalls; a
role's password sent only as the SCRAM verifier libpq computes."""

from __future__ import annotations

import os
import secrets
import signal
import time

import psycopg
import pytest

from infra_audit.core.errors import ProbeError
from infra_audit.core.probe import Deadlined
from infra_audit.sandbox import ownership, provision


def test_a_server_that_stalls_after_letting_us_in_hits_our_deadline(admin_url):
    with ownership.connect(admin_url) as conn:
        session = Deadlined(conn, 1.0, "the --server")
        assert session.execute("SELECT 1").fetchone() == (1,)
        backend = conn.info.backend_pid
        try:
            os.kill(backend, signal.SIGSTOP)
        except PermissionError:
            pytest.skip("the server runs as another OS user: its backend cannot be frozen from here")
        started = time.monotonic()
        try:
            with pytest.raises(ProbeError) as stalled:
                session.execute("SELECT 1")
        finally:
            os.kill(backend, signal.SIGCONT)
        assert (stalled.value.cause, str(stalled.value)) == (
            "no_answer",
            "the --server stopped answering (nothing within 1 s): check its health and load",
        )
        assert time.monotonic() - started < 3


def test_rows_come_back_as_from_a_cursor(admin_url):
    with ownership.connect(admin_url) as conn:
        session = Deadlined(conn, 5.0, "the server")
        assert session.execute("SELECT 1 WHERE false").fetchone() is None
        assert session.execute("SELECT g FROM generate_series(1, 3) g").fetchall() == [(1,), (2,), (3,)]
        assert session.execute("SET application_name = 'x'").fetchall() == []
        assert session.execute("SELECT %s::text || %s", ("a", "b")).fetchone() == ("ab",), "its parameters are sent"


def test_a_password_reaches_the_server_only_as_the_scram_verifier_libpq_made(pg_server, make_role):
    """What log_statement=ddl would log holds no plaintext; the server keeps the verifier as sent, and it
    accepts exactly that password for exactly that role."""
    role = make_role("pw-" + secrets.token_urlsafe(18))  # made with provision.password_clause (tests/support.py)
    with ownership.connect(pg_server.url()) as admin:
        statement = provision.password_clause(admin, role.name, role.password).as_string(admin)
        stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role.name,)).fetchone()[0]
    assert role.password not in statement and statement.startswith("PASSWORD 'SCRAM-SHA-256$")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    login = {
        "host": pg_server.host,
        "port": pg_server.port,
        "user": role.name,
        "dbname": "postgres",
        "connect_timeout": 10,
    }
    psycopg.connect(**login, password=role.password).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**login, password=role.password + "x").close()
