"""Fixtures of the infrastructure audit (`pytest infra_tests`).

`project_root`, `audit_settings`, `db_url` and `db` are what the checks use. Each expensive step
(reading DB_URL, connecting) runs once per session and its outcome is kept, so when the database
is down every check that needs it reports the same cause at once instead of waiting again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import psycopg
import pytest

pytest.register_assert_rewrite("tools.audit_settings", "tools.audit_report", "tools.audit_html")

from tools import audit_settings as settings_plugin  # noqa: E402
from tools import db_config, db_probe  # noqa: E402
from tools.audit_report import remember_secrets  # noqa: E402
from tools.audit_settings import AuditSettings  # noqa: E402
from tools.dburl import DbUrl  # noqa: E402

pytest_plugins = ("tools.audit_settings", "tools.audit_report", "tools.audit_html")

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_plugin.settings(config)
    remember_secrets(config, db_config.known_secrets(settings.project_root, os.environ))


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """The kept outcome of a session-wide step: a value, or the one-line reason it failed."""

    value: T | None
    error: str | None = None
    seconds: float = 0.0

    def get(self) -> T:
        """The value, or fail the calling test with the reason (no traceback: it is not a bug)."""
        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
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
def db_url_attempt(project_root: Path) -> Attempt[tuple[db_config.DbUrlSetting, DbUrl]]:
    """DB_URL as found (environment, then .env), validated once."""
    try:
        setting = db_config.resolve_db_url(project_root, os.environ)
        return Attempt((setting, setting.parse()))
    except db_config.ConfigError as exc:
        return Attempt(None, str(exc))


@pytest.fixture(scope="session")
def db_url(db_url_attempt: Attempt[tuple[db_config.DbUrlSetting, DbUrl]]) -> DbUrl:
    """The validated database URL; `db_url.redacted` is the form to show."""
    return db_url_attempt.get()[1]


@pytest.fixture(scope="session")
def db_attempt(
    db_url_attempt: Attempt[tuple[db_config.DbUrlSetting, DbUrl]], audit_settings: AuditSettings
) -> Iterator[Attempt[psycopg.Connection]]:
    """One read-only connection for the whole session, opened and proven with SELECT 1 once."""
    if db_url_attempt.error is not None:
        yield Attempt(None, f"cannot connect: {db_url_attempt.error}")
        return
    url = db_url_attempt.value[1]
    started = time.monotonic()
    try:
        conn = db_probe.connect(url, audit_settings.timeouts)
    except db_probe.ProbeError as exc:
        yield Attempt(None, str(exc), time.monotonic() - started)
        return
    try:
        yield Attempt(conn, seconds=time.monotonic() - started)
    finally:
        conn.close()  # never commit(): after a server stopped answering, that would wait for it forever


@pytest.fixture(scope="session")
def db(db_attempt: Attempt[psycopg.Connection]) -> psycopg.Connection:
    """The session's read-only connection; fails (without waiting again) when it could not be opened."""
    return db_attempt.get()
