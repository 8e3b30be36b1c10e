"""The sandbox's server work: every statement bounded by our own clock, even on a server that stalls."""

from __future__ import annotations

import os
import signal
import time

import pytest

from infra_audit.sandbox import ownership
from infra_audit.core.errors import ProbeError
from infra_audit.core.probe import Deadlined


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
            with pytest.raises(ProbeError, match="the --server stopped answering"):
                session.execute("SELECT 1")
        finally:
            os.kill(backend, signal.SIGCONT)
        assert time.monotonic() - started < 3


def test_rows_come_back_as_from_a_cursor(admin_url):
    with ownership.connect(admin_url) as conn:
        session = Deadlined(conn, 5.0, "the server")
        assert session.execute("SELECT 1 WHERE false").fetchone() is None
        assert session.execute("SELECT g FROM generate_series(1, 3) g").fetchall() == [(1,), (2,), (3,)]
        assert session.execute("SET application_name = 'x'").fetchall() == []
