"""The audit's fixtures, all in this one module: `project_root` and `db` (one read-only connection)
supply the checks; `audit_settings`, `db_url`, `health_check_run` (and `db_url_attempt` and
`db_attempt` when a check reports on the attempt itself) too.

Registered when the audit runs: by `infra_audit.plugin.activate` (the checks' conftest), and in
this checkout by its root `conftest.py`, as the user designed it. A check whose fixture fails reads
"could not check" with the fixture's reason: it never got to look. Each expensive step (reading
DB_URL, connecting) runs once per session and its outcome is kept, so when the database is down
every check that needs it reports the same cause at once instead of waiting again. Nothing here runs
unless an audit check asks for it: the suite's own tests (`python -m pytest tests`) never do.
Loading it imports no psycopg (the probe is imported by the fixture that connects): the audit starts
its health-check process first, whose own start-up then overlaps that import.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import pytest

from infra_audit.core.errors import ConfigError, ProbeError
from infra_audit.core.settings import AuditSettings
from infra_audit.plugin import health_check, report
from infra_audit.plugin import settings as settings_plugin

if TYPE_CHECKING:
    import psycopg

    from infra_audit.core import db_config
    from infra_audit.core.dburl import DbUrl

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """The kept outcome of a session-wide step: a value, or the one-line reason it failed."""

    value: T | None
    error: str | None = None
    seconds: float = 0.0

    def get(self, instead: str | None = None) -> T:
        """The value, or fail the calling test (no traceback: it is not a bug) with the reason, or with
        ``instead``: a pointer to the one check that states the reason, so it is said once."""
        if self.error is not None:
            pytest.fail(instead or self.error, pytrace=False)
        return self.value


@pytest.fixture(scope="session")
def audit_settings(pytestconfig: pytest.Config) -> AuditSettings:
    """The validated settings (pytest.ini, overridden by command-line flags)."""
    return settings_plugin.settings(pytestconfig)


@pytest.fixture(scope="session")
def project_root(audit_settings: AuditSettings) -> Path:
    """The checkout under audit (the rootdir, or --project-root)."""
    return audit_settings.project_root


@pytest.fixture(scope="session")
def db_url_attempt(pytestconfig: pytest.Config) -> Attempt[tuple[db_config.DbUrlSetting, DbUrl]]:
    """DB_URL as found (environment, then .env), validated once."""
    setting = settings_plugin.db_url_setting(pytestconfig)
    if isinstance(setting, ConfigError):
        return Attempt(None, settings_plugin.advice(setting))
    try:
        return Attempt((setting, setting.parse()))
    except ConfigError as exc:
        return Attempt(None, settings_plugin.advice(exc))


def _no_db_url(config: pytest.Config) -> str:
    return f"no usable DB_URL: {report.see(config, 'test_env_has_db_url')}"


@pytest.fixture(scope="session")
def db_url(pytestconfig: pytest.Config, db_url_attempt: Attempt[tuple[db_config.DbUrlSetting, DbUrl]]) -> DbUrl:
    """The validated DB_URL; fails (without looking again) when it is missing or malformed."""
    return db_url_attempt.get(_no_db_url(pytestconfig))[1]


@pytest.fixture(scope="session")
def db_attempt(
    pytestconfig: pytest.Config,
    db_url_attempt: Attempt[tuple[db_config.DbUrlSetting, DbUrl]],
    audit_settings: AuditSettings,
) -> Iterator[Attempt[psycopg.Connection]]:
    """One read-only connection for the whole session, opened and proven with SELECT 1 once."""
    from infra_audit.core import probe as db_probe  # psycopg: once the health check has started

    if db_url_attempt.error is not None:
        yield Attempt(None, f"cannot connect: {db_url_attempt.error}")
        return
    url = db_url_attempt.value[1]
    started = time.monotonic()
    try:
        conn = db_probe.connect(url, audit_settings.timeouts)
    except ProbeError as exc:
        yield Attempt(None, settings_plugin.advice(exc), time.monotonic() - started)
        return
    report.note_environment(pytestconfig, "PostgreSQL server", db_probe.server_version(conn))
    try:
        yield Attempt(conn, seconds=time.monotonic() - started)
    finally:
        conn.close()  # never commit(): after a server stopped answering, that would wait for it forever


@pytest.fixture(scope="session")
def db(
    pytestconfig: pytest.Config, db_attempt: Attempt[psycopg.Connection], db_url_attempt: Attempt
) -> psycopg.Connection:
    """The session's read-only connection; fails (without waiting again) when it could not be opened."""
    if db_url_attempt.error is not None:
        return db_attempt.get(_no_db_url(pytestconfig))
    return db_attempt.get(f"the database was not reached: {report.see(pytestconfig, 'test_db_reachable_within_3s')}")


@pytest.fixture(scope="session")
def health_check_run(pytestconfig: pytest.Config, audit_settings: AuditSettings) -> health_check.HealthCheckRun:
    """The real health-check command's run for this audit (started when the audit was turned on)."""
    return health_check.running(pytestconfig).result(audit_settings)
