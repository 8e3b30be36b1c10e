"""The audit's settings as pytest sees them: ``pytest.ini`` keys, each with a command-line flag.

The definitions and the validation live in ``tools.core.settings`` (the health check reads the
same ones without pytest); here they become options, and a bad value becomes a usage error
(exit code 4) that names the ``pytest.ini`` key and the flag, before any check runs.
"""

from __future__ import annotations

import os

import pytest

from tools.core import db_config
from tools.core import settings as core_settings
from tools.core.errors import ConfigError, InfraError, SettingsError
from tools.core.settings import AuditSettings

# How the audit's user changes each setting (a library error names the setting by its key).
SETTING_NAMES = {
    **{s.key: f"fix {s.ini} in pytest.ini, or {s.flag}" for s in core_settings.SETTINGS},
    "local_server": "for a local sandbox: python3 tools/sandbox.py start",
}
_SETTINGS = pytest.StashKey[AuditSettings]()
_DB_URL = pytest.StashKey["db_config.DbUrlSetting | ConfigError"]()
REPORT_PLUGINS = ("html", "html_fixtures", "metadata")  # the entry points of pytest-html and pytest-metadata


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("infra", "infrastructure audit (settings default to pytest.ini)")
    for setting in core_settings.SETTINGS:
        parser.addini(setting.ini, setting.help, default=setting.default)
        group.addoption(setting.flag, dest=setting.ini, metavar="VALUE", help=f"{setting.help} [ini: {setting.ini}]")
    group.addoption(
        "--no-default-report",
        action="store_true",
        help="do not write the HTML report to infra_report_dir (--html still works)",
    )
    for name in REPORT_PLUGINS:  # installed, they would load with every run: the audit writes its own report
        pluginmanager.set_blocked(name)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """The report's options, spelled as pytest-html spells them (CI jobs already pass them), added
    once the plugins the command line names are loaded: pytest-html or pytest-metadata asked for by
    name (``-p html``) would claim the same flags, so that is a usage error, not a traceback."""
    loaded = {getattr(plugin, "__name__", "").split(".")[0] for plugin in early_config.pluginmanager.get_plugins()}
    asked = [name.replace("_", "-") for name in ("pytest_html", "pytest_metadata") if name in loaded]
    if asked:
        raise pytest.UsageError(
            f"{' and '.join(asked)} {'is' if len(asked) == 1 else 'are'} not needed: the audit writes its own HTML "
            "report (--html PATH, --metadata KEY VALUE); drop the -p that loads it (PYTEST_ADDOPTS, PYTEST_PLUGINS too)"
        )
    group = parser.getgroup("infra")
    group.addoption("--html", dest="htmlpath", metavar="PATH", help="write the HTML report to PATH instead")
    group.addoption(
        "--self-contained-html", action="store_true", help="accepted for pytest-html's users: the report is always one file"
    )
    group.addoption(
        "--metadata", nargs=2, action="append", metavar=("KEY", "VALUE"),
        help="add a row to the report's environment table, e.g. --metadata Ticket '#044'",
    )  # fmt: skip
    # pytest read the command line for its first conftests before these flags existed: again, so that
    # in `pytest --html PATH` PATH is the report's, not a test path that would keep the audit's conftest out.
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=early_config.known_args_namespace)


def settings(config: pytest.Config) -> AuditSettings:
    """The validated settings, read once per run: the fixtures and the reports share them."""
    if _SETTINGS not in config.stash:
        values = {s.ini: _raw(config, s.ini) for s in core_settings.SETTINGS}
        try:
            config.stash[_SETTINGS] = core_settings.build(values, config.rootpath)
        except SettingsError as exc:
            raise pytest.UsageError(advice(exc)) from None
    return config.stash[_SETTINGS]


def advice(exc: InfraError) -> str:
    """A library error with its fix in the audit's terms (the pytest.ini key and the flag)."""
    return exc.advice(SETTING_NAMES)


def _raw(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value if value is not None else config.getini(name))


def db_url_setting(config: pytest.Config) -> db_config.DbUrlSetting | ConfigError:
    """DB_URL as found (environment, then the root's .env), or why it cannot be: resolved once per run,
    so the fixtures and the report's environment table read the same value."""
    if _DB_URL not in config.stash:
        try:
            config.stash[_DB_URL] = db_config.resolve_db_url(settings(config).project_root, os.environ)
        except ConfigError as exc:
            config.stash[_DB_URL] = exc
    return config.stash[_DB_URL]
