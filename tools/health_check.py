#!/usr/bin/env python3
"""Standalone health probe for monitoring: can we reach the database, and do the key tables hold rows?

    python tools/health_check.py            # formatted report (the spec's layout)
    python tools/health_check.py --json     # one JSON object, for monitoring systems

Exit codes: 0 healthy, 1 unhealthy (the report says why, in one line), 2 bad command line.
DB_URL comes from the environment, else from ``<root>/.env``; the URL is shown with its
password masked, and no password appears in any output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `tools` importable

from tools import db_config, db_probe  # noqa: E402
from tools.audit_settings import SETTINGS  # noqa: E402
from tools.dburl import scrub, scrub_data  # noqa: E402
from tools.stdout_guard import tolerate_closed_stdout  # noqa: E402

RULE = "=" * 80
DEFAULTS = {setting.ini: setting.default for setting in SETTINGS}


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

    @property
    def healthy(self) -> bool:
        return self.error is None and all(t["ok"] for t in self.tables.values())


def probe(root: Path, tables: list[str], timeouts: db_probe.Timeouts, exact_limit: int) -> Health:
    """Resolve DB_URL, connect within the deadline, and check each table."""
    health = Health()
    try:
        setting = db_config.resolve_db_url(root, os.environ)
        health.database, health.source = setting.shown, setting.origin
        url = setting.parse()
    except db_config.ConfigError as exc:
        health.error, health.cause = str(exc), "config"
        return health
    started = time.monotonic()
    try:
        conn = db_probe.connect(url, timeouts)
    except db_probe.ProbeError as exc:
        health.error, health.cause = str(exc), exc.cause
        return health
    try:
        health.connect_seconds = round(time.monotonic() - started, 3)
        health.server_version = db_probe.server_version(conn)
        for table in tables:
            try:
                stats = db_probe.table_stats(conn, table, exact_limit, timeouts)
                health.tables[table] = {"ok": True, "rows": stats.rows, "exact": stats.exact, "shown": stats.shown}
            except db_probe.ProbeError as exc:
                health.tables[table] = {"ok": False, "cause": exc.cause, "error": str(exc)}
    finally:
        conn.close()  # never commit(): after a server stopped answering, that would wait for it forever
    return health


def render(health: Health) -> str:
    """The spec's report: header, connection lines, table statistics, verdict."""
    lines = ["📊 Infrastructure Health Check", RULE, ""]
    if health.error is not None and health.connect_seconds is None:
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
    lines += ["", "✅ System Healthy" if health.healthy else "❌ System Unhealthy"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="project root holding .env")
    parser.add_argument("--tables", default=DEFAULTS["infra_tables"], help="tables to check (space or comma separated)")
    parser.add_argument("--connect-timeout", type=float, default=float(DEFAULTS["infra_connect_timeout"]))
    parser.add_argument("--query-timeout", type=float, default=float(DEFAULTS["infra_query_timeout"]))
    parser.add_argument("--exact-count-limit", type=int, default=int(DEFAULTS["infra_exact_count_limit"]))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args(argv)
    try:
        args.timeouts = db_probe.Timeouts(connect=args.connect_timeout, query=args.query_timeout)
    except ValueError as exc:
        parser.error(str(exc))
    if args.exact_count_limit < 0:
        parser.error("--exact-count-limit must be >= 0")
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    tolerate_closed_stdout()
    args = parse_args(argv)
    tables = args.tables.replace(",", " ").split()
    health = probe(args.root.resolve(), tables, args.timeouts, args.exact_count_limit)
    secrets = db_config.known_secrets(args.root.resolve(), os.environ)
    if args.json:
        print(json.dumps(scrub_data({"healthy": health.healthy, **vars(health)}, secrets), indent=2))
    else:
        print(scrub(render(health), secrets))
    return 0 if health.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
