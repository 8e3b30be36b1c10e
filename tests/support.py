"""Plain helpers for the suite's own tests: the test server's databases and roles, throwaway
configuration, and the audit run as a subprocess.

Every database and role the self-tests make is named ``RUN_...`` (pid and a random token: unique
to this run) and carries ``MARKER`` (tools/core/ownership.py); it is dropped only while it still
carries that marker, and a later run's janitor takes it only once this process is dead.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
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

import psycopg
from psycopg import sql

from infra_audit.core import dburl
from infra_audit.core.errors import SandboxError
from infra_audit.sandbox import ownership, pgserver, scram

REPO = Path(__file__).resolve().parents[1]
MAKER = "self-tests"
RUN = f"infra_selftest_{os.getpid()}_{secrets.token_hex(3)}"
MARKER = ownership.Marker.new(MAKER, REPO)
CLUSTER_PREFIX = "infra-selftest-"  # + random: a private server's folder, from tempfile.mkdtemp
OWNER_FILE = "owner.json"  # the run's marker: who may sweep the folder once that run is dead
CLUSTER_FILE = "cluster.json"  # how to stop its server (binaries, OS user, port)
_serial = itertools.count()
# Variables that would leak the developer's own configuration into a test's subprocess.
CONFIG_VARIABLES = ("DB_URL", "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS")


@dataclass(frozen=True)
class PgServer:
    """The test server, reached as a superuser over TCP."""

    host: str
    port: int
    user: str
    password: str

    def url(self, dbname: str = "postgres") -> str:
        """The superuser's URL for dbname (it holds the password: for psycopg and test tools only)."""
        return dburl.build(self.host, str(self.port), self.user, self.password, dbname)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit superuser connection with deadlines on every step."""
        return ownership.connect(self.url(dbname))


def unique_name(what: str) -> str:
    """A database or role name no other run (and no other object of this run) can have."""
    return f"{RUN}_{what}{next(_serial)}"


@contextmanager
def made_database(server: PgServer, what: str, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of template, if given) marked as this run's; dropped after, if still ours."""
    name = unique_name(what)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with server.admin() as admin:
        admin.execute(create)  # CREATE DATABASE cannot share a transaction with its COMMENT
        admin.execute(MARKER.comment_sql("database", name))
    with _dropped_after(server, "database", name):
        yield name


@contextmanager
def made_role(server: PgServer, what: str, password: str) -> Iterator[str]:
    """A login role with password (sent as a SCRAM verifier), marked in the same transaction; dropped after."""
    name = unique_name(what)
    with server.admin() as admin, admin.transaction():
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(name), scram.password_clause(password)))
        admin.execute(MARKER.comment_sql("role", name))
    with _dropped_after(server, "role", name):
        yield name


@contextmanager
def _dropped_after(server: PgServer, kind: str, name: str) -> Iterator[None]:
    """Drop what was made once the block ends, if its marker still says it is this run's."""
    try:
        yield
    finally:
        with server.admin() as admin:
            ownership.drop_if_ours(admin, kind, name, MARKER)


def record_cluster(cluster: pgserver.Cluster) -> None:
    """Note in its folder how to stop a private server, for the sweep should this run be killed."""
    (cluster.folder / CLUSTER_FILE).write_text(
        json.dumps({"bindir": str(cluster.bindir), "os_user": cluster.os_user, "port": cluster.port})
    )


def sweep_dead_clusters(tmp: Path | None = None) -> None:
    """Stop and remove the private servers of killed runs: proven ours by the marker file, never by name."""
    for folder in (tmp or Path(tempfile.gettempdir())).glob(f"{CLUSTER_PREFIX}*"):
        try:
            marker = ownership.read_marker_file(folder / OWNER_FILE)
            if marker is None or marker.maker != MAKER or not ownership.is_dead(marker):
                continue
            found = json.loads((folder / CLUSTER_FILE).read_text())
            cluster = pgserver.Cluster(folder, Path(found["bindir"]), found["os_user"], int(found["port"]))
            if cluster.is_running():
                cluster.stop()
        except FileNotFoundError:  # killed before its server was set up: nothing runs
            pass
        except (OSError, ValueError, KeyError, TypeError, SandboxError) as exc:  # another user's, or unreadable
            if not isinstance(exc, PermissionError):
                warnings.warn(f"left {folder} of a dead run of the self-tests: {exc}", stacklevel=1)
            continue
        shutil.rmtree(folder, ignore_errors=True)


def stage(target, *statements: str) -> None:
    """Run each statement as the target's superuser: the trouble a test stages."""
    for statement in statements:
        target.admin.execute(statement)


def write_env(root: Path, text: str) -> None:
    (root / ".env").write_text(text)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: ours, minus anything that configures a database or says where
    a report goes (on GitHub Actions, every audit a test runs would append to the job's summary), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES and not k.startswith("POSTGRES_")}
    for name in ("INFRA_SELFTEST_PG_URL", "INFRA_ADMIN_URL", "GITHUB_STEP_SUMMARY"):
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




def audit(root: Path, *args: str, junit: Path, env: dict[str, str] | None = None, timeout: float = 120) -> AuditRun:
    """Run `python -m pytest infra_tests --project-root ROOT ARGS...` from this repository, as a user would."""
    command = [sys.executable, "-m", "pytest", str(REPO / "infra_tests"), "--project-root", str(root),
               f"--junitxml={junit}", f"--history={junit.with_suffix('.history.jsonl')}", *args]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO, env=env if env is not None else clean_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    text = junit.read_text() if junit.exists() else ""
    return AuditRun(done.returncode, done.stdout + done.stderr, text, _junit_outcomes(text) if text else {}, seconds)
