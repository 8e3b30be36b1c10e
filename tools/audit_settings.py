"""The audit's settings: defaults in ``pytest.ini``, each one overridable on the command line.

A pytest plugin (loaded by the root ``conftest.py``). Bad values stop the run with a usage error
(exit code 4) that names the setting, before any check runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.db_probe import Timeouts


@dataclass(frozen=True)
class Setting:
    """One setting: its ``pytest.ini`` key, its command-line flag, and its default."""

    ini: str
    flag: str
    help: str
    default: str


SETTINGS = (
    Setting("infra_project_root", "--project-root", "project root to audit (default: the rootdir)", ""),
    Setting("infra_tables", "--tables", "tables that must exist and be non-empty", "market_data assets"),
    Setting(
        "infra_required_paths",
        "--required-paths",
        "paths that must exist in the project root",
        "docs/ tools/health_check.py tools/cleanup_root.py",
    ),
    Setting("infra_connect_timeout", "--connect-timeout", "seconds allowed to connect and SELECT 1", "3"),
    Setting("infra_query_timeout", "--query-timeout", "seconds allowed for each query", "5"),
    Setting(
        "infra_exact_count_limit",
        "--exact-count-limit",
        "tables up to this many rows are counted exactly; bigger ones report the planner's estimate",
        "100000",
    ),
    Setting(
        "infra_report_dir",
        "--report-dir",
        "folder for the HTML report written by default (infra-audit-<timestamp>.html; relative to the rootdir; "
        "empty: none); --html PATH writes it elsewhere instead",
        "reports",
    ),
    Setting(
        "infra_project_name",
        "--project-name",
        "the audited project's name in the report title (default: the root's folder name)",
        "",
    ),
)


@dataclass(frozen=True)
class AuditSettings:
    """Everything the checks need to know, validated once."""

    project_root: Path
    tables: tuple[str, ...]
    required_paths: tuple[str, ...]
    timeouts: Timeouts
    exact_count_limit: int


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infra", "infrastructure audit (settings default to pytest.ini)")
    for setting in SETTINGS:
        parser.addini(setting.ini, setting.help, default=setting.default)
        group.addoption(setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]")
    group.addoption(
        "--no-default-report",
        action="store_true",
        help="do not write the HTML report to infra_report_dir (--html still works)",
    )


@dataclass(frozen=True)
class ReportSettings:
    """Where the audit's HTML report goes by default, and what its title calls the project."""

    default_dir: Path | None
    project_name: str


def report_settings(config: pytest.Config, project_root: Path) -> ReportSettings:
    """The report settings; ``default_dir`` is None when the default report is turned off."""
    dir_text = _raw(config, "infra_report_dir")
    default_dir = None
    if dir_text and not config.getoption("no_default_report"):
        default_dir = (config.rootpath / Path(dir_text).expanduser()).resolve()
    return ReportSettings(default_dir, _raw(config, "infra_project_name") or project_root.name)


def _raw(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value if value is not None else config.getini(name)).strip()


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


def _number(config: pytest.Config, name: str, kind: type, minimum: float) -> float:
    text = _raw(config, name)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        raise pytest.UsageError(f"{name} must be a number >= {minimum}, got '{text}': fix pytest.ini or the flag")
    return value


_SETTINGS = pytest.StashKey[AuditSettings]()


def settings(config: pytest.Config) -> AuditSettings:
    """The validated settings, read once per run: the fixtures and the reports share them."""
    if _SETTINGS not in config.stash:
        config.stash[_SETTINGS] = from_config(config)
    return config.stash[_SETTINGS]


def from_config(config: pytest.Config) -> AuditSettings:
    """Read and validate the settings; a bad value is a usage error naming the setting."""
    root_text = _raw(config, "infra_project_root")
    root = (Path(root_text).expanduser() if root_text else config.rootpath).resolve()
    if not root.is_dir():
        raise pytest.UsageError(f"project root {root} is not a directory: fix --project-root")
    tables = _words(_raw(config, "infra_tables"))
    if not tables:
        raise pytest.UsageError("infra_tables is empty: list the tables to check in pytest.ini")
    try:
        timeouts = Timeouts(
            connect=_number(config, "infra_connect_timeout", float, 0.1),
            query=_number(config, "infra_query_timeout", float, 0.1),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"{exc}: fix infra_connect_timeout / infra_query_timeout") from None
    return AuditSettings(
        project_root=root,
        tables=tables,
        required_paths=_words(_raw(config, "infra_required_paths")),
        timeouts=timeouts,
        exact_count_limit=int(_number(config, "infra_exact_count_limit", int, 0)),
    )
