"""Standalone health probe for monitoring: can we reach the database, and do the key tables hold rows?

    infra-health-check            # formatted report (the spec's layout); in this checkout: python3 tools/health_check.py
    infra-health-check --json     # one JSON object, for monitoring systems
    infra-health-check --format=nagios        # one Nagios status line with performance data, exit 0/1/2/3
    infra-health-check --format=openmetrics [--output PATH]   # Prometheus metrics; PATH replaced atomically

Settings come from the project's pytest.ini (the audit's), each overridable by a flag. Exit codes:
0 healthy, 1 unhealthy (the report says why), 2 bad command line or settings (a missing or invalid
DB_URL included: nothing was dialled, so monitoring can tell "misconfigured" from "down"), 130
interrupted. ``--format=nagios`` uses the Nagios plugin codes instead: 0 OK, 1 WARNING (data past a
warning age), 2 CRITICAL (database down, a table empty, data past its error age), 3 UNKNOWN (a
setting it cannot use, or it could not look).
DB_URL comes from the environment, else from ``<root>/.env``; no password appears in any output.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

from infra_audit.cli import convention, monitoring
from infra_audit.core import db_config, files, health, settings
from infra_audit.core.dburl import scrub
from infra_audit.core.text import printable

TOOL = "infra-health-check"
RULE = "=" * 80
HEALTHY, UNHEALTHY = "✅ System Healthy", "❌ System Unhealthy"  # the report's last line: the spec's verdict
FLAGS = {
    "tables": "--tables",
    "connect_timeout": "--connect-timeout",
    "query_timeout": "--query-timeout",
    "exact_count_limit": "--exact-count-limit",
    "project_root": "--root",
    "freshness": "--freshness",
    "freshness_group": "--freshness-group",
    "local_server": "for a local sandbox: infra-sandbox start",
}
FORMATS = ("text", "nagios", "openmetrics")
FORMAT_HELP = (
    "text: the report (default); nagios: one status line with performance data, exit 0 OK, 1 WARNING, "
    "2 CRITICAL, 3 UNKNOWN; openmetrics: metrics in the Prometheus / OpenMetrics text format"
)
OUTPUT_HELP = (
    "with --format=openmetrics: write the metrics to PATH (temporary file and rename, as node_exporter's "
    "textfile collector needs) instead of printing them"
)


class _Parser(convention.Parser):
    """A usage error under ``--format=nagios`` is still one status line on stdout, UNKNOWN (3): Nagios
    reads nothing else."""

    nagios = False

    def error(self, message: str):
        if self.nagios:
            print(monitoring.status_line(monitoring.NAGIOS_UNKNOWN, f"{message} (see --help)"))
            self.exit(monitoring.NAGIOS_UNKNOWN)
        super().error(message)


def _asks_for_nagios(argv: list[str]) -> bool:
    return "--format=nagios" in argv or any(a == "--format" and b == "nagios" for a, b in zip(argv, argv[1:]))


def parse_args(argv: list[str] | None, prog: str, default_root: Path | None):
    parser = _Parser(prog=prog, description=__doc__.split("\n")[0])
    parser.nagios = _asks_for_nagios(sys.argv[1:] if argv is None else argv)
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root or Path.cwd(),
        help="project root holding .env and the audit's settings (default: the current folder)",
    )
    for key in ("tables", "connect_timeout", "query_timeout", "exact_count_limit", "freshness", "freshness_group"):
        setting = settings.BY_KEY[key]
        parser.add_argument(
            setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]"
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--format", choices=FORMATS, default="text", help=FORMAT_HELP)
    parser.add_argument("--output", type=Path, metavar="PATH", help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    if args.json and args.format != "text":
        parser.error(f"--json and --format={args.format} are two outputs: choose one")
    if args.output is not None and args.format != "openmetrics":
        parser.error("--output is for --format=openmetrics")
    return args


def main(argv: list[str] | None = None, *, prog: str = TOOL, default_root: Path | None = None) -> int:
    args = parse_args(argv, prog, default_root)
    names = {**FLAGS, "local_server": "for a local sandbox: python3 tools/sandbox.py start"} if default_root else FLAGS
    known: list[tuple[str, ...]] = []  # the secrets to scrub, found once the settings are valid

    def work() -> convention.Result:
        root = settings.path_setting(str(args.root), Path.cwd(), "project_root") or Path.cwd()
        flags = {key: value for key, value in vars(args).items() if key.startswith("infra_") and value is not None}
        found_settings = settings.build(
            {**settings.read_project_settings(root), **flags, "infra_project_root": str(root)}, root
        )
        known.append(db_config.known_secrets(root, os.environ, shown=found_settings.tables))
        found = health.probe(found_settings, names)
        code = (
            convention.EXIT_OK
            if found.healthy
            else convention.EXIT_USAGE
            if found.cause == "config"
            else convention.EXIT_PROBLEM
        )
        if args.format == "nagios":
            line, code = monitoring.nagios(found, found_settings.timeouts.connect)
            print(scrub(line, known[0]))
        elif args.format == "openmetrics":
            _put_metrics(scrub(monitoring.openmetrics(found), known[0]), args.output)
        elif not args.json:
            print(scrub(render(found), known[0]))
        return convention.Result(code, {"healthy": found.healthy, **asdict(found)})

    def nagios_failure(error: str, code: int) -> int:
        """Whatever kept it from judging (a bad setting, Ctrl-C) is UNKNOWN, said in the status line."""
        print(monitoring.status_line(monitoring.NAGIOS_UNKNOWN, error))
        return monitoring.NAGIOS_UNKNOWN

    failure = nagios_failure if args.format == "nagios" else None
    return convention.run(
        prog, work, as_json=args.json, secrets=lambda: known[0] if known else (), setting_names=names, failure=failure
    )


def _put_metrics(text: str, output: Path | None) -> None:
    """Print the metrics, or replace ``output`` with them whole (a scrape never reads half a file)."""
    if output is None:
        print(text, end="")
        return
    files.write_atomically(output.expanduser().absolute(), text.encode("utf-8"))


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
            if result.get("warning"):  # past the warning age: still healthy
                lines.append(f"   ⚠️ {result['warning']}")
    lines += ["", HEALTHY if found.healthy else UNHEALTHY]
    return "\n".join(map(printable, lines))  # a symbol's value may hold terminal escapes that erase lines


if __name__ == "__main__":
    sys.exit(main())
