"""The health probe's logic: resolve DB_URL, connect within the deadline, look at each table.

The command (``infra_audit.cli.health_check``) renders it for people (the spec's layout), as JSON,
or for monitoring (``infra_audit.cli.monitoring``: a Nagios status line, OpenMetrics).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from infra_audit.core import db_config, freshness
from infra_audit.core import probe as db_probe
from infra_audit.core.errors import ConfigError, ProbeError
from infra_audit.core.settings import AuditSettings


@dataclass
class Health:
    """What the probe found; rendered as text or JSON."""

    database: str = "(DB_URL not set)"
    source: str | None = None
    error: str | None = None
    cause: str | None = None
    connect_seconds: float | None = None
    server_version: str | None = None
    tables: dict[str, dict[str, object]] = field(default_factory=dict)
    freshness: dict[str, dict[str, object]] = field(default_factory=dict)
    check_seconds: float | None = None  # the whole probe, from reading DB_URL to the last answer

    @property
    def healthy(self) -> bool:
        checked = [*self.tables.values(), *self.freshness.values()]
        return self.error is None and all(result["ok"] for result in checked)

    @property
    def warnings(self) -> list[str]:
        """What is past a freshness rule's warning age: still healthy, but said (Nagios: WARNING)."""
        return [result["warning"] for result in self.freshness.values() if result.get("warning")]


def probe(settings: AuditSettings, setting_names: dict[str, str]) -> Health:
    """Resolve DB_URL, connect within the deadline, and check each table; fixes name settings as
    ``setting_names`` spells them."""
    started = time.monotonic()
    health = Health()
    _look(health, settings, setting_names)
    health.check_seconds = round(time.monotonic() - started, 3)
    return health


def _look(health: Health, settings: AuditSettings, setting_names: dict[str, str]) -> None:
    """Fill ``health`` with what the probe finds, stopping at the first thing that keeps it from going on."""
    try:
        setting = db_config.resolve_db_url(settings.project_root, os.environ)
        health.database, health.source = setting.shown, setting.origin
        url = setting.parse()
    except ConfigError as exc:
        health.error, health.cause = exc.advice(setting_names), "config"
        return
    started = time.monotonic()
    try:
        conn = db_probe.connect(url, settings.timeouts)
    except ProbeError as exc:
        health.error, health.cause = exc.advice(setting_names), exc.cause
        return
    try:
        health.connect_seconds = round(time.monotonic() - started, 3)
        health.server_version = db_probe.server_version(conn)
        for table in settings.tables:
            try:
                stats = db_probe.table_stats(conn, table, settings.exact_count_limit, settings.timeouts)
                shown = stats.shown + (
                    f" (row-level security: only what user '{conn.info.user}' may see)" if stats.row_security else ""
                )
                health.tables[table] = {
                    "ok": True,
                    "rows": stats.rows,
                    "exact": stats.exact,
                    "over": stats.over,
                    "row_security": stats.row_security,
                    "shown": shown,
                }
            except ProbeError as exc:
                health.tables[table] = {"ok": False, "cause": exc.cause, "error": exc.advice(setting_names)}
        for rule in settings.freshness:
            health.freshness[rule.text] = _freshness(conn, rule, settings, setting_names)
    finally:
        conn.close()  # never commit(): after a server stopped answering, that would wait for it forever


def _freshness(conn, rule: freshness.FreshnessRule, settings: AuditSettings, setting_names: dict[str, str]) -> dict:
    """One freshness rule's result: the newest row, its age and the limit, or why it could not be judged."""
    try:
        found = freshness.check(conn, rule, settings.freshness_group, settings.exact_count_limit, settings.timeouts)
    except ProbeError as exc:
        return {"ok": False, "cause": exc.cause, "error": exc.advice(setting_names)}
    warn = found.plan.rule.warn
    return {
        "ok": found.ok,
        "table": found.plan.named_label,
        "table_name": found.plan.name,
        "column": found.plan.column,
        "newest": found.newest,
        "age_seconds": found.age,
        "limit_seconds": found.limit.total_seconds(),
        "warn_seconds": None if warn is None else warn.total_seconds(),
        "shown": found.evidence,
        "groups": found.groups if found.plan.group else None,
        "stale_groups": [group.shown for group in found.stale_groups],
        "stale_group_count": found.stale_group_count,
        "late_group_count": found.late_group_count,
        "group_ages": [
            {
                "group": group.name,
                "level": level,
                "age_seconds": group.age if math.isfinite(group.age) else None,
            }  # JSON has no Infinity
            for level, shown in (("error", found.stale_groups), ("warning", found.late_groups))
            for group in shown
        ],
        **({"error": " | ".join(found.problems)} if found.problems else {}),
        **({"warning": " | ".join(found.warnings)} if found.warnings else {}),
    }
