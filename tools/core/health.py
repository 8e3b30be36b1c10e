"""The health probe's logic: resolve DB_URL, connect within the deadline, look at each table.

``tools/health_check.py`` renders it for people (the spec's layout) or as JSON for monitoring.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from tools.core import db_config, freshness
from tools.core import probe as db_probe
from tools.core.errors import ConfigError, ProbeError
from tools.core.settings import AuditSettings
from tools.core.text import printable

RULE = "=" * 80
HEALTHY, UNHEALTHY = "✅ System Healthy", "❌ System Unhealthy"  # the report's last line: the spec's verdict


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

    @property
    def healthy(self) -> bool:
        checked = [*self.tables.values(), *self.freshness.values()]
        return self.error is None and all(result["ok"] for result in checked)


def probe(settings: AuditSettings, setting_names: dict[str, str]) -> Health:
    """Resolve DB_URL, connect within the deadline, and check each table; fixes name settings as
    ``setting_names`` spells them."""
    health = Health()
    try:
        setting = db_config.resolve_db_url(settings.project_root, os.environ)
        health.database, health.source = setting.shown, setting.origin
        url = setting.parse()
    except ConfigError as exc:
        health.error, health.cause = exc.advice(setting_names), "config"
        return health
    started = time.monotonic()
    try:
        conn = db_probe.connect(url, settings.timeouts)
    except ProbeError as exc:
        health.error, health.cause = exc.advice(setting_names), exc.cause
        return health
    try:
        health.connect_seconds = round(time.monotonic() - started, 3)
        health.server_version = db_probe.server_version(conn)
        for table in settings.tables:
            try:
                stats = db_probe.table_stats(conn, table, settings.exact_count_limit, settings.timeouts)
                shown = stats.shown + (f" (row-level security: only what user '{conn.info.user}' may see)"
                                       if stats.row_security else "")  # fmt: skip
                health.tables[table] = {"ok": True, "rows": stats.rows, "exact": stats.exact, "over": stats.over,
                                        "row_security": stats.row_security, "shown": shown}  # fmt: skip
            except ProbeError as exc:
                health.tables[table] = {"ok": False, "cause": exc.cause, "error": exc.advice(setting_names)}
        for rule in settings.freshness:
            health.freshness[rule.text] = _freshness(conn, rule, settings, setting_names)
    finally:
        conn.close()  # never commit(): after a server stopped answering, that would wait for it forever
    return health


def _freshness(conn, rule: freshness.FreshnessRule, settings: AuditSettings, setting_names: dict[str, str]) -> dict:
    """One freshness rule's result: the newest row, its age and the limit, or why it could not be judged."""
    try:
        found = freshness.check(conn, rule, settings.freshness_group, settings.exact_count_limit, settings.timeouts)
    except ProbeError as exc:
        return {"ok": False, "cause": exc.cause, "error": exc.advice(setting_names)}
    return {
        "ok": found.ok, "table": found.plan.label, "newest": found.newest, "age_seconds": found.age,
        "limit_seconds": found.limit.total_seconds(), "shown": found.evidence,
        "stale_groups": [group.shown for group in found.stale_groups], "stale_group_count": found.stale_group_count,
        **({"error": " | ".join(found.problems)} if found.problems else {}),
    }  # fmt: skip


def render(health: Health) -> str:
    """The spec's report: header, connection lines, table statistics, verdict."""
    lines = ["📊 Infrastructure Health Check", RULE, ""]
    if health.cause == "config":  # nothing was dialled: the configuration is what is wrong
        lines += [f"❌ Database Not Configured: {health.database}", f"   Error: {health.error}"]
    elif health.error is not None and health.connect_seconds is None:
        lines += [f"❌ Database Connection Failed: {health.database}", f"   Error: {health.error}"]
    else:
        lines += [
            f"✅ Database Connection: {health.database}",
            f"✅ Connection Status: HEALTHY (PostgreSQL {health.server_version}, {health.connect_seconds:.3f} s)",
            "",
            "📈 Table Statistics:",
        ]
        for table, result in health.tables.items():
            lines.append(f"   {table}: {result['shown']}" if result["ok"] else f"   ❌ {table}: {result['error']}")
        if health.freshness:
            lines += ["", "🕒 Freshness:"]
        for rule, result in health.freshness.items():
            lines.append(f"   {result['shown']}" if result["ok"] else f"   ❌ {rule}: {result['error']}")
    lines += ["", HEALTHY if health.healthy else UNHEALTHY]
    return "\n".join(map(printable, lines))  # a symbol's value may hold terminal escapes that erase lines
