"""Plain helpers for the suite's own tests: the test server, its roles, throwaway configuration, and
the audit run as a subprocess.

The test server is always a private one this run started (tests/conftest.py); the databases on it
come from pytest-postgresql's factories, the roles from ``made_role``. A killed run's server is
stopped by a later run only once the kernel says that run is gone: the run holds a lock on its
folder's marker file for as long as it lives (in any PID namespace, on any host name).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from infra_audit.core import dburl
from infra_audit.core.errors import SandboxError
from infra_audit.sandbox import ownership, pgserver, provision

REPO = Path(__file__).resolve().parents[1]
MAKER = "self-tests"
RUN = f"infra_selftest_{os.getpid()}_{secrets.token_hex(3)}"
MARKER = ownership.Marker.new(MAKER, REPO)
# + random (no "-" in it): a private server's folder, from tempfile.mkdtemp. Runs of older versions of the
# suite named theirs "infra-selftest-<random>" and held no lock: this prefix keeps the sweep off them.
CLUSTER_PREFIX = "infra-selftest-server-"
OWNER_FILE = "owner.json"  # the run's marker, locked by the run while it lives
CLUSTER_FILE = "cluster.json"  # how to stop its server (binaries, OS user, port)
_serial = itertools.count()
POLL_S = 0.05  # how often a wait for one of two events looks at the second one
# Deadlines on the suite's own connections to its own server: they bound a hang and judge nothing, so
# they leave room for a machine whose cores are busy with other work.
CONNECT_S = 60
ADMIN_OPTIONS = "-c statement_timeout=120s -c lock_timeout=60s"
# Variables that would leak the developer's own configuration into a test's subprocess.
CONFIG_VARIABLES = ("DB_URL", "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS")


@dataclass(frozen=True)
class PgServer:
    """The test server, reached as a superuser over TCP."""

    host: str
    port: int
    user: str
    password: str
    # What pytest-postgresql's postgresql_noproc(depends_on="pg_server") reads from the server it builds on.
    options: str = ""
    maintenance_dbname: str = "postgres"
    template_dbname: str | None = None

    def url(self, dbname: str = "postgres") -> str:
        """The superuser's URL for dbname (it holds the password: for psycopg and test tools only)."""
        return dburl.build(self.host, str(self.port), self.user, self.password, dbname)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit superuser connection with deadlines on every step."""
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=CONNECT_S, options=ADMIN_OPTIONS)


def unique_name(what: str) -> str:
    """A role name no other object of this run has."""
    return f"{RUN}_{what}{next(_serial)}"


@contextmanager
def made_role(server: PgServer, what: str, password: str) -> Iterator[str]:
    """A login role with password (sent as a SCRAM verifier), dropped after."""
    name = unique_name(what)
    with server.admin() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN ").format(sql.Identifier(name))
            + provision.password_clause(admin, name, password)
        )
    try:
        yield name
    finally:
        with server.admin() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def claim_cluster_folder(folder: Path) -> BinaryIO:
    """Lock the folder's marker file for as long as the returned file stays open (the run's life), then
    write the marker: a sweep that can read the marker always finds it locked while the run lives."""
    owner = open(folder / OWNER_FILE, "xb")
    fcntl.flock(owner, fcntl.LOCK_EX)
    owner.write(MARKER.to_json().encode() + b"\n")
    owner.flush()
    return owner


def record_cluster(cluster: pgserver.Cluster) -> None:
    """Note in its folder how to stop a private server, for the sweep should this run be killed."""
    (cluster.folder / CLUSTER_FILE).write_text(
        json.dumps({"bindir": str(cluster.bindir), "os_user": cluster.os_user, "port": cluster.port})
    )


def sweep_dead_clusters(tmp: Path | None = None) -> None:
    """Stop and remove the private servers of killed runs: ours by the marker, dead by the lock the kernel
    released when the run ended; never by name or by a process id."""
    for folder in (tmp or Path(tempfile.gettempdir())).glob(f"{CLUSTER_PREFIX}*"):
        try:
            with open(folder / OWNER_FILE, "rb") as owner:
                marker = ownership.Marker.from_json(owner.read().decode(errors="replace"))
                if marker is None or marker.maker != MAKER:
                    continue
                try:
                    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its run is alive
                    continue
                _stop_recorded_cluster(folder)
                shutil.rmtree(folder, ignore_errors=True)
        except (FileNotFoundError, PermissionError):  # not set up yet, or another user's
            continue
        except (OSError, ValueError, KeyError, TypeError, SandboxError) as exc:
            warnings.warn(f"left {folder} of a dead run of the self-tests: {exc}", stacklevel=1)


def _stop_recorded_cluster(folder: Path) -> None:
    """Stop the server a killed run recorded in folder, if it got that far and it still runs."""
    try:
        found = json.loads((folder / CLUSTER_FILE).read_text())
    except FileNotFoundError:  # killed before its server was set up: nothing runs
        return
    cluster = pgserver.Cluster(folder, Path(found["bindir"]), found["os_user"], int(found["port"]))
    if cluster.is_running():
        cluster.stop()


@contextmanager
def accepted_from(listener: socket.socket, process: subprocess.Popen) -> Iterator[socket.socket]:
    """The connection process makes to listener, however long a loaded machine takes to start it; an
    AssertionError with its output if it ends first (no clock: one of the two events happens)."""
    while not select.select([listener], [], [], POLL_S)[0]:
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(f"exit code {process.returncode} before it connected: {stdout}{stderr}")
    accepted, _ = listener.accept()
    with accepted:
        yield accepted


def stage(target, *statements: str) -> None:
    """Run each statement as the target's superuser: the trouble a test stages."""
    for statement in statements:
        target.admin.execute(statement)


def partitioned_bars(target, table: str, days: int) -> None:
    """``table`` (may be schema-qualified), partitioned by day over ``days`` days and two ahead (empty, made
    ahead of time), indexed on the parent: 6 symbols x 2 timeframes, one bar a day each (a few thousand
    rows); S1-S3 stopped 5 days ago. Each partition is one statement in one DO block."""
    first = f"current_date - {days - 1}"
    stage(
        target,
        f"CREATE TABLE {table} (symbol text, timeframe text, ts timestamptz) PARTITION BY RANGE (ts)",
        f"DO $$ BEGIN FOR d IN 0..{days + 1} LOOP EXECUTE format('CREATE TABLE %s PARTITION OF {table}"
        f" FOR VALUES FROM (%L) TO (%L)', '{table}_' || d, ({first} + d)::timestamptz,"
        f" ({first} + d + 1)::timestamptz); END LOOP; END $$",
        f"CREATE INDEX ON {table} (symbol, timeframe, ts)",
        f"CREATE INDEX ON {table} (ts)",
        f"INSERT INTO {table} SELECT 'S' || s, t, least(day + interval '12 hours', now())"
        f" FROM generate_series(1, 6) AS s, (VALUES ('H1'), ('D1')) AS v(t),"
        f" generate_series({first}, current_date, interval '1 day') AS day",
        f"DELETE FROM {table} WHERE symbol IN ('S1', 'S2', 'S3') AND ts > now() - interval '5 days'",
        f"ANALYZE {table}",
    )


def write_env(root: Path, text: str) -> None:
    (root / ".env").write_text(text)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: ours, minus anything that configures a database or says where
    a report goes (on GitHub Actions, every audit a test runs would append to the job's summary), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES and not k.startswith("POSTGRES_")}
    for name in ("INFRA_ADMIN_URL", "GITHUB_STEP_SUMMARY"):
        env.pop(name, None)
    return {**env, **extra}


@dataclass(frozen=True)
class AuditRun:
    """One `pytest infra_tests` run as the user would start it, with everything it wrote."""

    exit_code: int
    output: str
    junit: str
    outcomes: dict[str, tuple[str, str]]
    seconds: float

    def outcome(self, test: str) -> str:
        return self.outcomes[test][0]

    def message(self, test: str) -> str:
        return self.outcomes[test][1]


def _junit_outcomes(text: str) -> dict[str, tuple[str, str]]:
    """test name -> (passed|failed|error|skipped, message) from a JUnit XML report."""
    outcomes = {}
    for case in ET.fromstring(text).iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = {"failure": "failed"}.get(child.tag, child.tag), child.get("message", "")
                message = message + "\n" + (child.text or "")
                break
        outcomes[case.get("name")] = (outcome, message)
    return outcomes


def audit_command(root: Path, *args: str) -> list[str]:
    """`python -m pytest infra_tests --project-root ROOT ARGS...`, run from this repository."""
    return [sys.executable, "-m", "pytest", str(REPO / "infra_tests"), "--project-root", str(root), *args]


def audit(root: Path, *args: str, junit: Path, env: dict[str, str] | None = None, timeout: float = 120) -> AuditRun:
    """Run `python -m pytest infra_tests --project-root ROOT ARGS...` from this repository, as a user would."""
    command = audit_command(root, f"--junitxml={junit}", f"--history={junit.with_suffix('.history.jsonl')}", *args)
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    text = junit.read_text() if junit.exists() else ""
    return AuditRun(done.returncode, done.stdout + done.stderr, text, _junit_outcomes(text) if text else {}, seconds)
