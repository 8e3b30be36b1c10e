#!/usr/bin/env python3
"""Standalone health probe for monitoring: can we reach the database, and do the key tables hold rows?

    python3 tools/health_check.py            # formatted report (the spec's layout)
    python3 tools/health_check.py --json     # one JSON object, for monitoring systems

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import `tools` from this checkout

from tools import _cli  # noqa: E402

_cli.require_installed("health_check.py")

from tools.core import db_config, health, settings  # noqa: E402
from tools.core.dburl import scrub  # noqa: E402

TOOL = "health_check.py"
FLAGS = {"tables": "--tables", "connect_timeout": "--connect-timeout", "query_timeout": "--query-timeout",
         "exact_count_limit": "--exact-count-limit", "project_root": "--root", "freshness": "--freshness",
         "freshness_group": "--freshness-group",
         "local_server": "for a local sandbox: python3 tools/sandbox.py start"}  # fmt: skip
CHECKOUT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None):
    parser = _cli.Parser(prog=TOOL, description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=CHECKOUT, help="project root holding .env and pytest.ini")
    for key in ("tables", "connect_timeout", "query_timeout", "exact_count_limit", "freshness", "freshness_group"):
        setting = settings.BY_KEY[key]
        parser.add_argument(setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    known: list[tuple[str, ...]] = []  # the secrets to scrub, found once the settings are valid

    def work() -> _cli.Result:
        root = settings.path_setting(str(args.root), Path.cwd(), "project_root") or Path.cwd()
        flags = {key: value for key, value in vars(args).items() if key.startswith("infra_") and value is not None}
        found_settings = settings.build({**settings.read_ini(root / "pytest.ini"), **flags,
                                         "infra_project_root": str(root)}, root)  # fmt: skip
        known.append(db_config.known_secrets(root, os.environ, shown=found_settings.tables))
        found = health.probe(found_settings, FLAGS)
        if not args.json:
            print(scrub(health.render(found), known[0]))
        code = _cli.EXIT_OK if found.healthy else _cli.EXIT_USAGE if found.cause == "config" else _cli.EXIT_PROBLEM
        return _cli.Result(code, {"healthy": found.healthy, **asdict(found)})

    return _cli.run(TOOL, work, as_json=args.json, secrets=lambda: known[0] if known else (), setting_names=FLAGS)


if __name__ == "__main__":
    sys.exit(main())
