"""The data itself: the feed still delivers, and no rows went missing since the last passing audit."""

from __future__ import annotations

import psycopg
import pytest

from tools.core import freshness, history
from tools.core import probe as db_probe
from tools.core.errors import HistoryError, ProbeError
from tools.core.settings import AuditSettings
from tools.plugin import history as history_plugin
from tools.plugin.settings import advice


@pytest.mark.check("data is fresh")
def test_data_is_fresh(db: psycopg.Connection, audit_settings: AuditSettings, evidence) -> None:
    """The newest row of each watched table, and of each symbol in it, is within its age limit."""
    if not audit_settings.freshness:
        pytest.skip("infra_freshness is empty: no table is watched, so nothing shows the data is current")
    problems = []
    for rule in audit_settings.freshness:
        try:
            found = freshness.check(db, rule, audit_settings.freshness_group, audit_settings.exact_count_limit,
                                    audit_settings.timeouts)  # fmt: skip
        except ProbeError as exc:
            evidence.add(rule.text, f"could not judge ({exc.cause})")
            problems.append(advice(exc))
            continue
        evidence.add(found.plan.label, found.evidence.removeprefix(f"{found.plan.label}: "))
        problems.extend(found.problems)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.check("row counts not shrinking")
def test_row_counts_not_shrinking(
    db: psycopg.Connection, db_url_attempt, audit_settings: AuditSettings, pytestconfig: pytest.Config, evidence
) -> None:
    """No table lost more than the allowed share of its rows (10% unless infra_max_shrink says otherwise)
    since the last passing audit of this database."""
    counts, problems = [], []
    for table in audit_settings.tables:
        try:
            counts.append(db_probe.table_stats(db, table, audit_settings.exact_count_limit, audit_settings.timeouts))
        except ProbeError as exc:
            problems.append(advice(exc))
    target = history.target_key(db_url_attempt.value[1])
    current = history.record(target, counts, passed=False)
    try:
        past = history.read(audit_settings.history)
    except HistoryError as exc:
        pytest.fail(str(exc), pytrace=False)
    evidence.add("history", f"{audit_settings.history} ({len(past.records)} audits"
                 + (f", {past.skipped} unreadable lines skipped)" if past.skipped else ")"))  # fmt: skip
    findings = history.compare(past.last_passing(target), current, audit_settings.max_shrink)
    for finding in findings:
        if not finding.failed:  # a failed one is the cause, said once
            evidence.add(finding.table or "baseline", finding.message.removeprefix(f"{finding.table}: "))
    history_plugin.remember(pytestconfig, audit_settings.history, current)
    problems += [finding.message for finding in findings if finding.failed]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
