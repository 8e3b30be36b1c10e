"""The plugin's entry point (``pytest11``): the audit's settings as pytest sees them, ini keys and flags.

Installed, pytest loads this module in every run, so the flags are known before it reads the
command line (``--project-root /srv/app infra_tests`` parses). It only declares: nothing of the
audit runs unless its checks do (``infra_tests/conftest.py`` activates the reports).
The definitions and the validation live in ``infra_audit.core.settings`` (the health check reads the
same ones without pytest); here they become options, and a bad value becomes a usage error
(exit code 4) that names the setting and the flag, before any check runs.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from infra_audit.core import settings as core_settings
from infra_audit.core.errors import ConfigError, InfraError, SettingsError
from infra_audit.core.settings import AuditSettings

if TYPE_CHECKING:
    from infra_audit.core.db_config import DbUrlSetting
from infra_audit.plugin import usage

# How the audit's user changes each setting (a library error names the setting by its key).
SETTING_NAMES = {
    **{s.key: f"fix {s.ini} in the project's settings, or {s.flag}" for s in core_settings.SETTINGS},
    "local_server": "for a local sandbox: infra-sandbox start, or python3 tools/sandbox.py start in its checkout",
}
_SETTINGS = pytest.StashKey[AuditSettings]()
_TEXTS = pytest.StashKey[dict[str, str]]()
_NOT_IN_INI = "(not set in the pytest config: [tool.infra-audit], else the default)"
_DB_URL = pytest.StashKey["DbUrlSetting | ConfigError"]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup(
        "infra",
        "infrastructure audit (settings default to the project's config: pytest.ini, or [tool.infra-audit] in pyproject.toml)",
    )
    for setting in core_settings.SETTINGS:
        parser.addini(setting.ini, setting.help, default=_NOT_IN_INI)
        group.addoption(setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]")
    group.addoption(
        "--no-default-report",
        action="store_true",
        help="do not write the HTML report to infra_report_dir (--html still works)",
    )
    group.addoption(
        "--markdown",
        dest="infra_markdown",
        metavar="PATH",
        help="write a Markdown summary (verdict, a table row per check, the environment) to PATH for a ticket; "
        "with GITHUB_STEP_SUMMARY set it is appended there too",
    )
    if not pluginmanager.is_registered(usage):
        pluginmanager.register(usage, "infra-audit-usage")


def typed_command(prog: str) -> str:
    """The command as typed, for the audit's --help usage line and usage errors: ``python -m pytest`` would
    show as ``__main__.py``; ``pytest`` and ``infra-audit`` already show as themselves. Other runs keep
    pytest's own."""
    if prog != "__main__.py":
        return prog
    argv = getattr(sys, "orig_argv", [])  # Python 3.10+
    return shlex.join(argv[: argv.index("-m") + 2]) if "-m" in argv else "python -m pytest"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """The report's options, spelled as pytest-html spells them (CI jobs already pass them), where
    pytest-html and pytest-metadata are not loaded; where they are, those flags are theirs and the
    audit writes its own report to infra_report_dir as always."""
    taken = {
        name for group in (*parser._groups, parser._anonymous) for option in group.options for name in option.names()
    }
    group = parser.getgroup("infra")
    if "--html" not in taken:
        group.addoption("--html", dest="infra_html", metavar="PATH", help="write the HTML report to PATH instead")
        group.addoption(
            "--self-contained-html",
            action="store_true",
            help="accepted for pytest-html's users: the report is always one file",
        )
    if "--metadata" not in taken:
        group.addoption(
            "--metadata",
            nargs=2,
            action="append",
            metavar=("KEY", "VALUE"),
            help="add a row to the report's environment table, e.g. --metadata Ticket '#044'",
        )
    # pytest read the command line for its first conftests before these flags existed: again, so that
    # in `pytest --html PATH` PATH is the report's, not a test path that would keep the audit's conftest out.
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=early_config.known_args_namespace)
    if _runs_the_checks(early_config):
        from infra_audit.plugin import health_check  # the audit: its health check starts before any conftest loads

        parser.prog = typed_command(parser.prog)
        health_check.start(early_config)


def _runs_the_checks(config: pytest.Config) -> bool:
    """Whether the paths of this run (its arguments, else ``testpaths``) are the installed checks or lie in
    them: an audit, known before its conftest is loaded. (Checks not installed from the run's own folder
    are an audit too; their conftest turns it on a moment later.)"""
    spec = importlib.util.find_spec("infra_audit.checks")
    checks = [Path(folder) for folder in (spec.submodule_search_locations or [])] if spec else []
    options = config.known_args_namespace
    if not checks or options.pyargs:
        return False
    given = [config.invocation_params.dir / arg.split("::")[0] for arg in options.file_or_dir or []]
    paths = [path.resolve() for path in given or [config.rootpath / path for path in config.getini("testpaths")]]
    return any(folder == path or folder in path.parents for path in paths for folder in checks)


def setting_texts(config: pytest.Config) -> dict[str, str]:
    """Each setting's text by ini key (flag, else ini, else the project's settings, else the default),
    read once per run, not yet validated: enough to start the health check before psycopg loads."""
    if _TEXTS not in config.stash:
        try:
            kept = core_settings.read_project_settings(config.rootpath)
        except SettingsError as exc:
            raise pytest.UsageError(advice(exc)) from None
        config.stash[_TEXTS] = core_settings.texts({s.ini: _raw(config, s.ini, kept) for s in core_settings.SETTINGS})
    return config.stash[_TEXTS]


def settings(config: pytest.Config) -> AuditSettings:
    """The validated settings, read once per run: the fixtures and the reports share them."""
    if _SETTINGS not in config.stash:
        try:
            config.stash[_SETTINGS] = core_settings.build(setting_texts(config), config.rootpath)
        except SettingsError as exc:
            raise pytest.UsageError(advice(exc)) from None
    return config.stash[_SETTINGS]


def advice(exc: InfraError) -> str:
    """A library error with its fix in the audit's terms (the pytest.ini key and the flag)."""
    return exc.advice(SETTING_NAMES)


def _raw(config: pytest.Config, name: str, kept: dict[str, str]) -> str | None:
    """A setting's text: its flag, else the ini pytest read, else the project's settings (None: the default).
    The flags as parsed for the first conftests: the health check may start before the rest is parsed."""
    value = getattr(config.known_args_namespace, name, None)
    if value is None and config.getini(name) != _NOT_IN_INI:
        value = config.getini(name)
    return str(value) if value is not None else kept.get(name)


def db_url_setting(config: pytest.Config) -> DbUrlSetting | ConfigError:
    """DB_URL as found (environment, then the root's .env), or why it cannot be: resolved once per run,
    so the fixtures and the report's environment table read the same value."""
    from infra_audit.core import db_config  # python-dotenv: only when the audit runs

    if _DB_URL not in config.stash:
        try:
            config.stash[_DB_URL] = db_config.resolve_db_url(settings(config).project_root, os.environ)
        except ConfigError as exc:
            config.stash[_DB_URL] = exc
    return config.stash[_DB_URL]
