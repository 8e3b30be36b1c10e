"""The audit's pytest plugin: its settings, its terminal summary and its HTML report.

``tools.plugin.settings`` (the options) and ``tools.plugin.usage`` (the nearest flag for a
mistyped one) are loaded with ``-p`` from the audit's ``pytest.ini``: pytest must know them before
it reads the command line. The reports are registered by ``activate``, which
``infra_tests/conftest.py`` calls: that conftest is loaded only when the audit runs, so the
suite's own tests (``python -m pytest tests``) never set the audit up.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tools.plugin import history, html, report


def activate(config: pytest.Config, checks: Path) -> None:
    """Register the audit's reports and name its default HTML report;
    ``checks`` is the folder of the audit's checks, so a run of only some of them says so."""
    if not config.pluginmanager.has_plugin("tools.plugin.settings"):
        raise pytest.UsageError(
            "the audit's settings are not loaded (its pytest.ini loads them with -p tools.plugin.settings): run "
            "`pytest infra_tests` from the checkout without -c, or add that -p to the ini you use"
        )
    report.remember_checks(config, checks)
    _stop_on_sigterm_as_on_ctrl_c(config)
    html.default_html_report(config)
    html.check_report_paths(config)
    for module in (report, html, history):
        if not config.pluginmanager.is_registered(module):
            config.pluginmanager.register(module, f"infra-audit-{module.__name__.rsplit('.', 1)[1]}")


def _stop_on_sigterm_as_on_ctrl_c(config: pytest.Config) -> None:
    """A CI job cancelled or past its time limit gets SIGTERM: end as on Ctrl-C, with the verdict, the
    reports and the checks that did not run said, instead of dying without a word."""

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one (a group kill and its forwarder)
        raise KeyboardInterrupt                        # would break the write-up of the first

    previous = signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))
