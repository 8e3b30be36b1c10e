"""Configuration: the database URL is set and well-formed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest


@pytest.mark.check(".env has DB_URL")
def test_env_has_db_url(db_url_attempt, project_root: Path, evidence) -> None:
    """DB_URL is set (environment or .env) and is a valid PostgreSQL URL: scheme, host or socket, database."""
    if db_url_attempt.error is not None:
        evidence.add("DB_URL", "not usable")
        pytest.fail(db_url_attempt.error, pytrace=False)
    setting, url = db_url_attempt.value
    evidence.add("DB_URL", url.redacted)
    evidence.add("source", setting.origin)
    env_file = project_root / ".env"
    if env_file.is_file():
        mode = stat.S_IMODE(env_file.stat().st_mode)
        evidence.add(".env permissions", f"{mode:04o}")
        if mode & 0o077:
            evidence.warn(f".env is readable by other users (mode {mode:04o}), and it holds the password: chmod 600 .env")
