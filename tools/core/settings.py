"""The audit's settings: one definition, read from ``pytest.ini`` without pytest.

The audit (through ``tools.plugin.settings``) and the health check both build their settings
here, so ``tools/health_check.py`` honours the same ``pytest.ini`` as ``pytest infra_tests``
without importing pytest. ``build`` is the one function that validates them into one frozen
``AuditSettings``; a bad value raises SettingsError naming the setting.
"""

from __future__ import annotations

import configparser
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tools.core import freshness, history
from tools.core.errors import SettingsError
from tools.core.probe import MAX_TIMEOUT_S, Timeouts

T = TypeVar("T")
MAX_EXACT_COUNT_LIMIT = 10**12  # far beyond any table we would count, far below bigint's limit


@dataclass(frozen=True)
class Setting:
    """One setting: its short key, its ``pytest.ini`` key, its command-line flag, help, and default."""

    key: str
    ini: str
    flag: str
    help: str
    default: str


SETTINGS = (
    Setting("project_root", "infra_project_root", "--project-root", "project root to audit (default: the rootdir)", ""),
    Setting("tables", "infra_tables", "--tables",
            'tables that must exist and be non-empty (space separated; "Quoted Name" for a name with spaces)',
            "market_data assets"),
    Setting("required_paths", "infra_required_paths", "--required-paths", "paths that must exist in the project root",
            "docs/ tools/health_check.py tools/cleanup_root.py"),
    Setting("connect_timeout", "infra_connect_timeout", "--connect-timeout", "seconds allowed to connect and SELECT 1",
            "3"),
    Setting("query_timeout", "infra_query_timeout", "--query-timeout", "seconds allowed for each query", "5"),
    Setting("exact_count_limit", "infra_exact_count_limit", "--exact-count-limit",
            "tables up to this many rows are counted exactly; bigger ones report the planner's estimate", "100000"),
    Setting("report_dir", "infra_report_dir", "--report-dir",
            "folder for the HTML report written by default (infra-audit-<timestamp>.html; relative to the rootdir; "
            "empty: none); --html PATH writes it elsewhere instead", "reports"),
    Setting("project_name", "infra_project_name", "--project-name",
            "the audited project's name in the report title (default: the root's folder name)", ""),
    Setting("freshness", "infra_freshness", "--freshness",
            "tables whose newest row must be recent: TABLE[.COLUMN]=AGE ..., AGE like 90s, 15m, 6h, 3d",
            freshness.DEFAULT_FRESHNESS),
    Setting("freshness_group", "infra_freshness_group", "--freshness-group",
            "column whose every value (each symbol) must be fresh too; empty: only the table's newest row",
            freshness.DEFAULT_GROUP),
    Setting("history", "infra_history", "--history",
            "file each audit appends its row counts to (relative to the rootdir); a CI job may bring the last one",
            str(history.DEFAULT_PATH)),
    Setting("max_shrink", "infra_max_shrink", "--max-shrink",
            "the share of rows a table may lose since the last passing audit: a percentage, or a fraction like 0.1",
            "10%"),
)  # fmt: skip
BY_KEY = {setting.key: setting for setting in SETTINGS}


@dataclass(frozen=True)
class AuditSettings:
    """Everything the checks and the reports need to know, validated once."""

    project_root: Path
    tables: tuple[str, ...]
    required_paths: tuple[str, ...]
    timeouts: Timeouts
    exact_count_limit: int
    report_dir: Path | None
    project_name: str
    freshness: tuple[freshness.FreshnessRule, ...]
    freshness_group: str | None
    history: Path
    max_shrink: float


def read_ini(path: Path) -> dict[str, str]:
    """The ``[pytest]`` section of a ``pytest.ini`` (empty when there is none), by ini key."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} cannot be read as an ini file ({exc.__class__.__name__})") from None
    return dict(parser["pytest"]) if parser.has_section("pytest") else {}


def defaults() -> dict[str, str]:
    """Every setting's built-in default, by ini key."""
    return {setting.ini: setting.default for setting in SETTINGS}


def build(values: Mapping[str, str], rootdir: Path) -> AuditSettings:
    """Validate settings given by ini key (missing ones take their default) into one frozen object.

    Relative paths are relative to ``rootdir`` (where ``pytest.ini`` lives)."""
    raw = {**defaults(), **{key: str(value).strip() for key, value in values.items() if value is not None}}
    root = path_setting(raw["infra_project_root"], rootdir, "project_root") or rootdir.resolve()
    if not root.is_dir():
        raise SettingsError(f"project root {root} is not a directory", setting="project_root")
    tables = names(raw["infra_tables"])
    if not tables:
        raise SettingsError("the table list is empty: name the tables to check", setting="tables")
    try:
        timeouts = Timeouts(
            connect=number(raw, "connect_timeout", float, 0.1, MAX_TIMEOUT_S),
            query=number(raw, "query_timeout", float, 0.1, MAX_TIMEOUT_S),
        )
    except ValueError as exc:
        raise SettingsError(str(exc), setting="connect_timeout") from None
    return AuditSettings(
        project_root=root,
        tables=tables,
        required_paths=names(raw["infra_required_paths"]),
        timeouts=timeouts,
        exact_count_limit=int(number(raw, "exact_count_limit", int, 0, MAX_EXACT_COUNT_LIMIT)),
        report_dir=path_setting(raw["infra_report_dir"], rootdir, "report_dir"),
        project_name=raw["infra_project_name"] or root.name,
        freshness=parsed(freshness.parse_rules, raw, "freshness"),
        freshness_group=parsed(freshness.parse_group, raw, "freshness_group"),
        history=path_setting(raw["infra_history"], rootdir, "history") or rootdir / history.DEFAULT_PATH,
        max_shrink=parsed(history.parse_max_shrink, raw, "max_shrink"),
    )


def parsed(parse: Callable[[str], T], raw: Mapping[str, str], key: str) -> T:
    """A setting read by its own parser, whose ValueError becomes a SettingsError naming the setting."""
    try:
        return parse(raw[BY_KEY[key].ini])
    except ValueError as exc:
        raise SettingsError(str(exc), setting=key) from None


_NAME = re.compile(r'"(?:[^"]|"")*"(?:\.(?:"(?:[^"]|"")*"|[^\s,".]+))*|[^\s,"]+(?:\."(?:[^"]|"")*")?')


def names(text: str) -> tuple[str, ...]:
    """Space- or comma-separated names; a double-quoted identifier (``"Market Data"``) stays whole."""
    found = tuple(match.group(0) for match in _NAME.finditer(text))
    if "".join(found).count('"') != text.count('"'):
        raise SettingsError(f"unbalanced double quote in '{text}': quote a name with spaces as \"Market Data\"",
                            setting="tables")  # fmt: skip
    return found


def path_setting(text: str, rootdir: Path, key: str) -> Path | None:
    """A folder setting: ``~`` expanded, relative to rootdir, resolved; None when empty."""
    if not text:
        return None
    try:
        return (rootdir / Path(text).expanduser()).resolve()
    except RuntimeError:  # ~nosuchuser: expanduser cannot tell whose home
        raise SettingsError(f"cannot expand '{text}': no such user's home folder", setting=key) from None


def number(raw: Mapping[str, str], key: str, kind: type, minimum: float, maximum: float = math.inf) -> float:
    """A finite number within [minimum, maximum], or a SettingsError naming the setting."""
    text = raw[BY_KEY[key].ini]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not minimum <= value <= maximum:
        upper = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
        raise SettingsError(f"the {key.replace('_', ' ')} must be a number >= {minimum:g}{upper}, got '{text}'", setting=key)
    return value
