"""Standalone health probe for monitoring: can we reach the database, and do the key tables hold rows?

    infra-health-check            # formatted report (the spec's layout); in this checkout: python3 tools/health_check.py
    infra-health-check --json     # one JSON object, for monitoring systems

Settings come from the project's pytest.ini (the audit's), each overridable by a flag. Exit codes:
0 healthy, 1 unhealthy (the report says why), 2 bad command line or settings (a missing or invalid
DB_URL included: nothing was dialled, so monitoring can tell "misconfigured" from "down"), 130
interrupted.
DB_URL comes from the environment, else from ``<root>/.env``; no password appears in any output.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

from infra_audit.cli import convention
from infra_audit.core import db_config, health, settings
from infra_audit.core.dburl import scrub
from infra_audit.core.text import printable

TOOL = "infra-health-check"
RULE = "=" * 80
HEALTHY, UNHEALTHY = "✅ System Healthy", "❌ System Unhealthy"  # the report's last line: the spec's verdict
FLAGS = {"tables": "--tables", "connect_timeout": "--connect-timeout", "query_timeout": "--query-timeout",
         "exact_count_limit": "--exact-count-limit", "project_root": "--root", "freshness": "--freshness",
         "freshness_group": "--freshness-group",
         "local_server": "for a local sandbox: infra-sandbox start"}  # fmt: skip


def parse_args(argv: list[str] | None, prog: str, default_root: Path | None):
    parser = convention.Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=default_root or Path.cwd(),
                        help="project root holding .env and the audit's settings (default: the current folder)")
    for key in ("tables", "connect_timeout", "query_timeout", "exact_count_limit", "freshness", "freshness_group"):
        setting = settings.BY_KEY[key]
        parser.add_argument(setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, prog: str = TOOL, default_root: Path | None = None) -> int:
    args = parse_args(argv, prog, default_root)
    names = {**FLAGS, "local_server": "for a local sandbox: python3 tools/sandbox.py start"} if default_root else FLAGS
    known: list[tuple[str, ...]] = []  # the secrets to scrub, found once the settings are valid

    def work() -> convention.Result:
        root = settings.path_setting(str(args.root), Path.cwd(), "project_root") or Path.cwd()
        flags = {key: value for key, value in vars(args).items() if key.startswith("infra_") and value is not None}
        found_settings = settings.build({**settings.read_project_settings(root), **flags,
                                         "infra_project_root": str(root)}, root)  # fmt: skip
        known.append(db_config.known_secrets(root, os.environ, shown=found_settings.tables))
        found = health.probe(found_settings, names)
        if not args.json:
            print(scrub(render(found), known[0]))
        code = convention.EXIT_OK if found.healthy else convention.EXIT_USAGE if found.cause == "config" else convention.EXIT_PROBLEM
        return convention.Result(code, {"healthy": found.healthy, **asdict(found)})

    return convention.run(prog, work, as_json=args.json, secrets=lambda: known[0] if known else (), setting_names=names)


def render(found: health.Health) -> str:
    """The spec's report: header, connection lines, table statistics, verdict."""
    lines = ["📊 Infrastructure Health Check", RULE, ""]
    if found.cause == "config":  # nothing was dialled: the configuration is what is wrong
        lines += [f"❌ Database Not Configured: {found.database}", f"   Error: {found.error}"]
    elif found.error is not None and found.connect_seconds is None:
        lines += [f"❌ Database Connection Failed: {found.database}", f"   Error: {found.error}"]
    else:
        lines += [
            f"✅ Database Connection: {found.database}",
            f"✅ Connection Status: HEALTHY (PostgreSQL {found.server_version}, {found.connect_seconds:.3f} s)",
            "",
            "📈 Table Statistics:",
        ]
        for table, result in found.tables.items():
            lines.append(f"   {table}: {result['shown']}" if result["ok"] else f"   ❌ {table}: {result['error']}")
        if found.freshness:
            lines += ["", "🕒 Freshness:"]
        for rule, result in found.freshness.items():
            lines.append(f"   {result['shown']}" if result["ok"] else f"   ❌ {rule}: {result['error']}")
    lines += ["", HEALTHY if found.healthy else UNHEALTHY]
    return "\n".join(map(printable, lines))  # a symbol's value may hold terminal escapes that erase lines


if __name__ == "__main__":
    sys.exit(main())
