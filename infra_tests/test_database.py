"""The database: reachable within its deadline, and the key tables present and non-empty."""

from __future__ import annotations

import psycopg
import pytest

from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import DbUrl
from infra_audit.core.errors import ProbeError
from infra_audit.core.settings import AuditSettings
from infra_audit.plugin import report


@pytest.mark.check("database reachable within {connect_timeout} s")
def test_db_reachable_within_3s(db_url: DbUrl, db_attempt, audit_settings: AuditSettings, evidence) -> None:
    """Connect and run SELECT 1 within the connect deadline (3 s unless infra_connect_timeout says otherwise)."""
    limit = audit_settings.timeouts.connect
    evidence.add("target", db_url.redacted)
    evidence.add("deadline", f"{limit:g} s")
    if db_attempt.error is not None:
        evidence.add("connect attempt", f"failed after {db_attempt.seconds:.3f} s")
        pytest.fail(db_attempt.error, pytrace=False)
    conn = db_attempt.value
    evidence.add("connect time (connect + SELECT 1)", f"{db_attempt.seconds:.3f} s")
    evidence.add("server", f"PostgreSQL {db_probe.server_version(conn)}")
    evidence.add("session", db_probe.session_bounds(conn, audit_settings.timeouts))


@pytest.mark.check("row counts non-zero")
def test_row_counts_nonzero(db: psycopg.Connection, audit_settings: AuditSettings, evidence) -> None:
    """Every configured table exists, is readable and holds rows; big tables are never counted."""
    problems, unknowns = [], []
    for table in audit_settings.tables:
        try:
            stats = db_probe.table_stats(db, table, audit_settings.exact_count_limit, audit_settings.timeouts)
        except ProbeError as exc:
            report.probe_failed(evidence, table, exc, problems, unknowns)
        else:
            evidence.add(stats.qualified, stats.shown + (" (exact count)" if stats.exact else ""))  # the one it read
            if stats.row_security:
                evidence.warn(db_probe.row_security_warning(table, db.info.user))
    report.conclude(problems, unknowns)
