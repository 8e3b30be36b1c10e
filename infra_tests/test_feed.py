"""The data itself: the feed still delivers, and no rows went missing since the last passing audit."""

from __future__ import annotations

import psycopg
import pytest

from infra_audit.core import freshness, history
from infra_audit.core import probe as db_probe
from infra_audit.core.errors import HistoryError, ProbeError
from infra_audit.core.settings import AuditSettings
from infra_audit.core.text import counted
from infra_audit.plugin import history as history_plugin
from infra_audit.plugin import report
from infra_audit.plugin import settings as settings_plugin

ROW_COUNTS = "test_row_counts_nonzero"  # the check that says a table's trouble in full


@pytest.mark.check("data is fresh")
def test_data_is_fresh(db: psycopg.Connection, audit_settings: AuditSettings, evidence) -> None:
    """The newest row of each watched table, and of each symbol in it, is within its age limit (past a
    warning age, if the rule names one, it passes with a warning)."""
    if not audit_settings.freshness:
        pytest.skip("infra_freshness is empty: no table is watched, so nothing shows the data is current")
    problems, unknowns = [], []
    for rule in audit_settings.freshness:
        try:
            found = freshness.check(
                db, rule, audit_settings.freshness_group, audit_settings.exact_count_limit, audit_settings.timeouts
            )
        except ProbeError as exc:
            report.probe_failed(evidence, rule.text, exc, problems, unknowns)
            continue
        evidence.add(found.plan.label, found.evidence.removeprefix(f"{found.plan.label}: "))
        for warning in found.warnings:  # past the warning age, within the limit: passes, and says so
            evidence.warn(warning)
        problems.extend(found.problems)
    report.conclude(problems, unknowns)


@pytest.mark.check("row counts not shrinking")
def test_row_counts_not_shrinking(
    db: psycopg.Connection, db_url_attempt, audit_settings: AuditSettings, pytestconfig: pytest.Config, evidence
) -> None:
    """No table lost more than the allowed share of its rows (10% unless infra_max_shrink says otherwise)
    since the last passing audit of this database."""
    counts, unknowns = [], []
    for table in audit_settings.tables:
        try:
            counts.append(db_probe.table_stats(db, table, audit_settings.exact_count_limit, audit_settings.timeouts))
            if counts[-1].row_security:  # rows it cannot see could be gone: unknown, never "not shrinking"
                unknowns.append(
                    f"{table}: could not compare every row: row-level security may hide some from "
                    f"user '{db.info.user}': {report.see(pytestconfig, ROW_COUNTS)}"
                )
        except ProbeError:  # said once, by the check that counts the rows
            unknowns.append(f"{table}: not counted: {report.see(pytestconfig, ROW_COUNTS)}")
    target, note = history.identify(db, db_url_attempt.value[1], audit_settings.timeouts)
    current = history.record(target, counts, passed=False)
    try:
        past = history.read(audit_settings.history)
    except HistoryError as exc:
        pytest.fail(settings_plugin.advice(exc), pytrace=False)
    evidence.add("database", target.shown)
    if note:
        evidence.warn(note)
    evidence.add(
        "history",
        f"{audit_settings.history} ({counted(len(past.records), 'audit')}"
        + (f", {counted(past.skipped, 'unreadable line')} skipped)" if past.skipped else ")"),
    )
    previous = past.last_passing(target)
    if previous is None:
        evidence.warn(
            f"no passing audit of {target.url} on record yet, so nothing to compare with: this run's counts "
            "become the baseline if it passes (in CI, keep the history file between runs)"
        )
    findings = history.compare(previous, current, audit_settings.max_shrink, past)
    for finding in findings:
        if finding.kind == "reset":  # passed, but proved nothing
            evidence.warn(finding.message)
        elif not finding.failed and finding.table is not None:  # a failed one is the cause, said once
            evidence.add(finding.table, finding.message.removeprefix(f"{finding.table}: "))
    history_plugin.remember(pytestconfig, audit_settings.history, current)
    report.conclude(
        [f.message for f in findings if f.kind == "shrunk"],
        unknowns + [f.message for f in findings if f.kind == "unknown"],
    )
