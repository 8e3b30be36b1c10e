"""The audit's settings: one definition, read from the project's own config without pytest.

A project keeps them in its ``pyproject.toml`` (``[tool.infra-audit]``, keys without the ``infra_``
prefix) or as ``infra_*`` keys of its pytest config (``pytest.ini``, as this checkout does). The
audit (through ``infra_audit.plugin.settings``) and the health check both build their settings
here, so the health check honours the same settings as the audit without importing pytest.
``build`` is the one function that validates them into one frozen ``AuditSettings``; a bad value
raises SettingsError naming the setting. Nothing here imports psycopg: pytest loads the plugin,
and with it these definitions, in every run of a project that installed it.
"""

from __future__ import annotations

import configparser
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from infra_audit.core.errors import SettingsError

if TYPE_CHECKING:
    from infra_audit.core.freshness import FreshnessRule
    from infra_audit.core.probe import Timeouts

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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
    Setting(
        "tables",
        "infra_tables",
        "--tables",
        'tables that must exist and be non-empty (space separated; "Quoted Name" for a name with spaces)',
        "market_data assets",
    ),
    Setting(
        "required_paths",
        "infra_required_paths",
        "--required-paths",
        "paths that must exist in the project root",
        "docs/",
    ),
    Setting(
        "connect_timeout", "infra_connect_timeout", "--connect-timeout", "seconds allowed to connect and SELECT 1", "3"
    ),
    Setting("query_timeout", "infra_query_timeout", "--query-timeout", "seconds allowed for each query", "5"),
    Setting(
        "exact_count_limit",
        "infra_exact_count_limit",
        "--exact-count-limit",
        "tables up to this many rows are counted exactly; bigger ones report the planner's estimate",
        "100000",
    ),
    Setting(
        "report_dir",
        "infra_report_dir",
        "--report-dir",
        "folder for the HTML report written by default (infra-audit-<timestamp>.html; relative to the rootdir; "
        "empty: none); --html PATH writes it elsewhere instead",
        "reports",
    ),
    Setting(
        "project_name",
        "infra_project_name",
        "--project-name",
        "the audited project's name in the report title (default: the root's folder name)",
        "",
    ),
    Setting(
        "freshness",
        "infra_freshness",
        "--freshness",
        "tables whose newest row must be recent: TABLE[.COLUMN]=AGE ..., AGE like 90s, 15m, 6h, 3d",
        "market_data=3d",
    ),
    Setting(
        "freshness_group",
        "infra_freshness_group",
        "--freshness-group",
        "column whose every value (each symbol) must be fresh too; empty: only the table's newest row",
        "symbol",
    ),
    Setting(
        "history",
        "infra_history",
        "--history",
        "file each audit appends its row counts to (relative to the rootdir); a CI job may bring the last one",
        "reports/infra-history.jsonl",
    ),
    Setting(
        "max_shrink",
        "infra_max_shrink",
        "--max-shrink",
        "the share of rows a table may lose since the last passing audit: a percentage, or a fraction like 0.1",
        "10%",
    ),
    Setting(
        "health_check",
        "infra_health_check",
        "--health-check",
        'the health check that "health check passes" runs, as a script relative to the project root run '
        "with the audit's python (empty: the installed infra-health-check)",
        "",
    ),
)
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
    freshness: tuple[FreshnessRule, ...]
    freshness_group: str | None
    history: Path
    max_shrink: float
    health_check: Path | None  # None: the installed infra-health-check


TOOL_TABLE = "infra-audit"  # [tool.infra-audit] in pyproject.toml


def _pyproject(root: Path) -> dict:
    """The project's pyproject.toml as data (empty when it has none)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{pyproject} cannot be read as TOML ({exc.__class__.__name__}: {exc})") from None


def has_tool_table(root: Path) -> bool:
    """Whether the project's pyproject.toml holds ``[tool.infra-audit]``."""
    return TOOL_TABLE in _pyproject(root).get("tool", {})


def read_project_settings(root: Path) -> dict[str, str]:
    """The settings a project keeps, by ini key: ``[tool.infra-audit]`` and ``infra_*`` keys of
    ``[tool.pytest.ini_options]`` in its ``pyproject.toml``, then ``infra_*`` keys of its ``pytest.ini``
    (which pytest, too, reads before ``pyproject.toml``)."""
    tool = _pyproject(root).get("tool", {})
    table = tool.get(TOOL_TABLE, {})
    found = {key if key.startswith("infra_") else f"infra_{key}": _ini_text(value) for key, value in table.items()}
    options = tool.get("pytest", {}).get("ini_options", {})
    found.update({key: _ini_text(value) for key, value in options.items() if key.startswith("infra_")})
    pytest_ini = root / "pytest.ini"
    if pytest_ini.is_file():
        found.update({key: value for key, value in read_ini(pytest_ini).items() if key.startswith("infra_")})
    unknown = sorted(set(found) - {setting.ini for setting in SETTINGS})
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]} in {root}'s config: see infra-audit --help")
    return found


def _ini_text(value: object) -> str:
    """A TOML value as the ini text the settings parse: a list is space separated (a name with spaces quoted)."""
    if isinstance(value, list):
        return " ".join(f'"{item}"' if " " in str(item) else str(item) for item in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


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


def texts(values: Mapping[str, str | None]) -> dict[str, str]:
    """Every setting's text by ini key, as given (stripped) or its default: what ``build`` validates."""
    return {**defaults(), **{key: str(value).strip() for key, value in values.items() if value is not None}}


def project_root(raw: Mapping[str, str], rootdir: Path) -> Path:
    """The project root a setting's texts name (``rootdir`` when they name none), not yet proven a folder."""
    return path_setting(raw["infra_project_root"], rootdir, "project_root") or rootdir.resolve()


def build(values: Mapping[str, str | None], rootdir: Path) -> AuditSettings:
    """Validate settings given by ini key (missing ones take their default) into one frozen object.

    Relative paths are relative to ``rootdir`` (where the project's config lives)."""
    from infra_audit.core import freshness  # psycopg: only once settings are built
    from infra_audit.core.probe import MAX_TIMEOUT_S, Timeouts

    raw = texts(values)
    root = project_root(raw, rootdir)
    if not root.is_dir():
        raise SettingsError(f"project root {root} is not a directory", setting="project_root")
    tables = names(raw, "tables")
    if not tables:
        raise SettingsError("the table list is empty: name the tables to check", setting="tables")
    return AuditSettings(
        project_root=root,
        tables=tables,
        required_paths=names(raw, "required_paths"),
        timeouts=Timeouts(  # number holds each within the range Timeouts accepts
            connect=number(raw, "connect_timeout", float, 0.1, MAX_TIMEOUT_S),
            query=number(raw, "query_timeout", float, 0.1, MAX_TIMEOUT_S),
        ),
        exact_count_limit=int(number(raw, "exact_count_limit", int, 0, MAX_EXACT_COUNT_LIMIT)),
        report_dir=path_setting(raw["infra_report_dir"], rootdir, "report_dir"),
        project_name=raw["infra_project_name"] or root.name,
        freshness=parsed(freshness.parse_rules, raw, "freshness"),
        freshness_group=parsed(freshness.parse_group, raw, "freshness_group"),
        history=path_setting(raw["infra_history"], rootdir, "history", resolve_name=False)
        or rootdir / BY_KEY["history"].default,
        max_shrink=parsed(parse_max_shrink, raw, "max_shrink"),
        health_check=path_setting(raw["infra_health_check"], root, "health_check"),
    )


def parse_max_shrink(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1; a ValueError in one line for anything else or out of 0..100%."""
    cleaned = text.strip()
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(%?)", cleaned)
    if not match:
        raise ValueError(
            f"infra_max_shrink: '{cleaned}' is not a share: write a percentage like 10% or a fraction like 0.1"
        )
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 <= value < 1:
        raise ValueError(
            f"infra_max_shrink: '{cleaned}' is out of range: write from 0% up to (not including) 100%, e.g. 10% or 0.1"
        )
    return value


def parsed(parse: Callable[[str], T], raw: Mapping[str, str], key: str) -> T:
    """A setting read by its own parser, whose ValueError becomes a SettingsError naming the setting."""
    try:
        return parse(raw[BY_KEY[key].ini])
    except ValueError as exc:
        raise SettingsError(str(exc), setting=key) from None


_NAME = re.compile(r'"(?:[^"]|"")*"(?:\.(?:"(?:[^"]|"")*"|[^\s,".]+))*|[^\s,"]+(?:\."(?:[^"]|"")*")?')


def names(raw: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A setting's space- or comma-separated names; a double-quoted one (``"Market Data"``) stays whole."""
    text = raw[BY_KEY[key].ini]
    found = tuple(match.group(0) for match in _NAME.finditer(text))
    if "".join(found).count('"') != text.count('"'):
        raise SettingsError(
            f"unbalanced double quote in '{text}': quote a name with spaces as \"Market Data\"", setting=key
        )
    return found


def path_setting(text: str, rootdir: Path, key: str, *, resolve_name: bool = True) -> Path | None:
    """A path setting: ``~`` expanded, relative to rootdir, resolved; None when empty. ``resolve_name=False``
    keeps the last part as named (a symbolic link stays a link, for the file's own checks to refuse)."""
    if not text:
        return None
    try:
        path = rootdir / Path(text).expanduser()
        return path.resolve() if resolve_name else path.parent.resolve() / path.name
    except RuntimeError:  # ~nosuchuser: expanduser cannot tell whose home
        raise SettingsError(f"cannot expand '{text}': no such user's home folder", setting=key) from None


def number(raw: Mapping[str, str], key: str, kind: type, minimum: float, maximum: float) -> float:
    """A finite number within [minimum, maximum], or a SettingsError naming the setting."""
    text = raw[BY_KEY[key].ini]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not minimum <= value <= maximum:
        raise SettingsError(
            f"the {key.replace('_', ' ')} must be a number >= {minimum:g} and <= {maximum:g}, got '{text}'",
            setting=key,
        )
    return value
