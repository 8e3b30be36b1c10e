"""Fixtures for the suite's own tests: a real PostgreSQL (pytest-postgresql), seeded databases,
throwaway project roots, and the audit run as a user runs it, in a subprocess.

Where the server comes from:
- ``INFRA_SELFTEST_PG_URL`` set (an admin URL, e.g. from ``.ci/run``): ``postgresql_noproc`` uses
  that server. The role must be SUPERUSER: the template janitor ends autovacuum workers.
- otherwise ``postgresql_proc`` starts a private server (not as root: ``pg_ctl`` refuses).
Database names carry this run's pid, so a killed run's leftovers never collide with the next.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql import factories

from tests.support import REPO, AuditRun, audit, clean_env
from tools.core import dburl, seed

RUN = f"infra_selftest_{os.getpid()}"
ADMIN_URL = os.environ.get("INFRA_SELFTEST_PG_URL")
SEED_MARKET_DATA_ROWS = 120
SEED_ASSETS_ROWS = 4


def _seed_template(host: str, port: int, user: str, dbname: str, password: str | None, **_: object) -> None:
    """pytest-postgresql loader: the template every test database is copied from."""
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, password=password) as conn:
        seed.seed(conn, market_data_rows=SEED_MARKET_DATA_ROWS, assets_rows=SEED_ASSETS_ROWS)
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC")


def _preflight(url: str) -> dburl.DbUrl:
    """Fail in seconds with a clear line, instead of pytest-postgresql retrying bad credentials for 60 s."""
    parsed = dburl.parse(url)
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            _drop_leftovers_of_killed_runs(conn)
    except psycopg.Error as exc:
        raise pytest.UsageError(
            f"INFRA_SELFTEST_PG_URL ({parsed.redacted}) is unusable: {dburl.scrub(str(exc), parsed.secrets)}"
        ) from None
    return parsed


def _drop_leftovers_of_killed_runs(conn: psycopg.Connection) -> None:
    """A run killed before its janitor leaves its databases and roles; their pid names them as dead."""
    leftovers = conn.execute(
        "SELECT 'DATABASE', datname FROM pg_database WHERE datname ~ '^infra_selftest_[0-9]+'"
        " UNION ALL SELECT 'ROLE', rolname FROM pg_roles WHERE rolname ~ '^infra_selftest_[0-9]+_'"
    ).fetchall()
    for kind, name in leftovers:  # databases first: a role cannot go while it has grants in one
        pid = int(name.split("_")[2])
        if pid == os.getpid() or _alive(pid):
            continue
        if kind == "DATABASE":
            conn.execute(sql.SQL("ALTER DATABASE {} WITH is_template false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        else:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


ROOT_WITHOUT_SERVER = (
    "running as root: pg_ctl refuses to start PostgreSQL as root. Run as an ordinary user, "
    "or set INFRA_SELFTEST_PG_URL to a superuser URL of a running server (bash .ci/run does both)"
)

if ADMIN_URL:
    _admin = _preflight(ADMIN_URL)
    pg_server = factories.postgresql_noproc(
        host=_admin.hosts[0][0], port=_admin.hosts[0][1] or 5432, user=_admin.user,
        password=_admin.password, dbname=RUN, load=[_seed_template],
    )  # fmt: skip
elif os.geteuid() == 0:

    @pytest.fixture(scope="session")
    def pg_server() -> None:
        """Only the database tests need a server; the others still run as root."""
        pytest.fail(ROOT_WITHOUT_SERVER, pytrace=False)

else:
    pg_server = factories.postgresql_proc(password=secrets.token_urlsafe(16), dbname=RUN, load=[_seed_template])

postgresql = factories.postgresql("pg_server", dbname=RUN)


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
def audit_role(pg_server) -> Iterator[Role]:
    """One non-superuser login role for the session; it reads the seeded tables through PUBLIC grants."""
    role = Role(f"{RUN}_reader", "pw-" + secrets.token_urlsafe(18))
    with _admin_connection(pg_server, "postgres") as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role.name), role.password))
    yield role
    with _admin_connection(pg_server, "postgres") as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


@pytest.fixture(scope="session")
def admin_url(pg_server) -> str:
    """A superuser URL of the test server, for tools that administer one (benchmark, sandbox --server)."""
    return f"postgresql://{pg_server.user}:{pg_server.password}@{pg_server.host}:{pg_server.port}/postgres"


@pytest.fixture
def make_role(pg_server) -> Iterator[Callable[[str], Role]]:
    """Login roles with chosen passwords (short, common, awkward), dropped after the test."""
    made: list[Role] = []

    def make(password: str) -> Role:
        role = Role(f"{RUN}_r{len(made)}", password)
        with _admin_connection(pg_server, "postgres") as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role.name), password))
        made.append(role)
        return role

    yield make
    with _admin_connection(pg_server, "postgres") as conn:
        for role in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


def _admin_connection(pg_server, dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=pg_server.host, port=pg_server.port, user=pg_server.user, password=pg_server.password,
        dbname=dbname, autocommit=True, connect_timeout=5,
    )  # fmt: skip


@pytest.fixture
def target(postgresql: psycopg.Connection, pg_server, audit_role: Role) -> Target:
    """A fresh copy of the seeded database (market_data and assets hold rows) for one test."""
    postgresql.autocommit = True
    dbname = postgresql.info.dbname
    url = f"postgresql://{audit_role.name}:{audit_role.password}@{pg_server.host}:{pg_server.port}/{dbname}"
    return Target(url, dbname, audit_role, postgresql)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with what the audit requires (docs/, the health check and the fixer)."""
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "tools").mkdir()
    for name in ("health_check.py", "cleanup_root.py"):
        (root / "tools" / name).write_text("# placeholder: the audit only checks that it exists\n")
    return root


@pytest.fixture
def run_audit(tmp_path: Path) -> Callable[..., AuditRun]:
    """Run `python -m pytest infra_tests --project-root ROOT ARGS...` from this repository."""

    def run(root: Path, *args: str, env: dict[str, str] | None = None) -> AuditRun:
        return audit(root, *args, junit=tmp_path / f"junit-{time.monotonic_ns()}.xml", env=env)

    return run


@pytest.fixture
def run_health_check() -> Callable[..., subprocess.CompletedProcess]:
    """Run `python tools/health_check.py ARGS...` as monitoring would."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "tools" / "health_check.py"), *args],
            env=env if env is not None else clean_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run
