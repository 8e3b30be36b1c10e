"""Configuration: the database URL is set and well-formed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from infra_audit.core import dburl
from infra_audit.core.settings import AuditSettings

WEAK = (
    f"the password is weak (under {dburl.MIN_STRONG_PASSWORD} characters or easy to guess): choose a long random "
    "one, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
)


@pytest.mark.check(".env has DB_URL")
def test_env_has_db_url(db_url_attempt, project_root: Path, audit_settings: AuditSettings, evidence) -> None:
    """DB_URL is set (environment or .env), is a valid PostgreSQL URL (scheme, host or socket, database)
    and no longer holds .env.example's placeholders."""
    if db_url_attempt.error is not None:
        evidence.add("DB_URL", "not usable")
        pytest.fail(db_url_attempt.error, pytrace=False)
    setting, url = db_url_attempt.value
    evidence.add("DB_URL", url.redacted)
    evidence.add("source", setting.origin)
    if dburl.weak_password(url, audit_settings.tables):  # never why: that would say which shown word it is
        evidence.warn(WEAK)
    env_file = project_root / ".env"
    if not setting.from_environment and env_file.is_file():  # .env's mode matters only when the URL came from it
        mode = stat.S_IMODE(env_file.stat().st_mode)
        evidence.add(".env permissions", f"{mode:04o}")
        if mode & 0o077:
            evidence.warn(
                f".env is readable by other users (mode {mode:04o}), and it holds the password: chmod 600 .env"
            )
