"""Turn the audit on for this run: its fixtures, reports and health-check process (called by the
checks' conftest, so only a run that collects the checks is an audit)."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra_audit.plugin import health_check, settings


def activate(config: pytest.Config, checks: Path) -> None:
    """Register the audit's fixtures and reports and name its default HTML report;
    ``checks`` is the folder of the audit's checks, so a run of only some of them says so."""
    if not config.pluginmanager.is_registered(settings):
        raise pytest.UsageError(
            "the audit's plugin is not loaded (pytest11 entry point 'infra_audit'): install this package "
            "(pip install -e . here) and do not disable plugin autoload, or add -p infra_audit.plugin.settings"
        )
    _one_process(config)
    _stop_on_sigterm_as_on_ctrl_c(config)
    _keep_loaded_objects_out_of_the_collections(config)
    health_check.start(config)
    # Only now the modules that load psycopg (about 100 ms): the health check's own start-up overlaps them.
    from infra_audit.plugin import fixtures, history, html, markdown, report

    report.remember_checks(config, checks)
    html.default_html_report(config)
    html.check_report_paths(config)
    # Of two trylast hooks pluggy calls the one registered later last: markdown's summary after the HTML report.
    for module in (fixtures, report, html, markdown, history, health_check):
        if not config.pluginmanager.is_registered(module):
            config.pluginmanager.register(module, module.__name__)


def _one_process(config: pytest.Config) -> None:
    """The checks share one connection, one health-check run and one verdict: pytest-xdist's ``-n``
    (in a project's addopts or PYTEST_ADDOPTS) is set aside, so the audit runs as without it."""
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        config.option.numprocesses = None
        config.option.dist = "no"
        config.option.tx = []


def _keep_loaded_objects_out_of_the_collections(config: pytest.Config) -> None:
    """A full garbage collection walks every tracked object: in the audit's process about 48,000 (pytest's,
    psycopg's, the plugins'), some 25 ms a walk on the 2-core machine, and pytest's cleanup (five walks)
    and the interpreter's exit took about 100 ms of the audit for them. What is loaded when the audit
    begins, when its checks are collected and when its session ends lives until the process ends: it
    is moved out of the collector's way (``gc.freeze``). A run inside another pytest test (this suite's)
    gives it back after the session, for the process that goes on."""
    gc.freeze()
    config.pluginmanager.register(_FreezeLoaded(), "infra_audit.gc")
    if "PYTEST_CURRENT_TEST" in os.environ:
        config.add_cleanup(gc.unfreeze)


class _FreezeLoaded:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self) -> None:
        gc.freeze()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        gc.freeze()


def _stop_on_sigterm_as_on_ctrl_c(config: pytest.Config) -> None:
    """A CI job cancelled or past its time limit gets SIGTERM: end as on Ctrl-C, with the verdict, the
    reports and the checks that did not run said, instead of dying without a word."""
    signals = _Signals()
    config.pluginmanager.register(signals, "infra_audit.signals")
    config.add_cleanup(signals.after_the_session)


class _Signals:
    """SIGTERM and Ctrl-C end the audit with exit code 2 and no traceback, whenever they come.

    While the checks run, SIGTERM becomes the KeyboardInterrupt pytest handles for Ctrl-C (the verdict
    then names what did not run). Once the write-up has begun (the verdict, the reports, the history),
    either signal is only noted: the write-up finishes whole and the run ends 2, where a KeyboardInterrupt
    would escape pytest with a traceback and 130. After the session, either one ends the process with 2;
    a run started from inside another pytest test (as the HTML report tells it) gives the handlers back."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.session: pytest.Session | None = None
        self.previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        self.in_a_test = "PYTEST_CURRENT_TEST" in os.environ  # read now: pytest unsets it after each of its tests
        signal.signal(signal.SIGTERM, self._interrupt)

    def _interrupt(self, signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one (a group kill and its forwarder)
        raise KeyboardInterrupt  # would break the write-up of the first

    def _note(self, signum: int, frame: object) -> None:
        if self.session is not None:
            self.session.exitstatus = pytest.ExitCode.INTERRUPTED

    @staticmethod
    def _end(signum: int, frame: object) -> None:
        raise SystemExit(pytest.ExitCode.INTERRUPTED)

    def _writing_up(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._note)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self) -> None:
        self._writing_up()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Iterator[None]:
        self._writing_up()
        return (yield)

    def after_the_session(self) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous if self.in_a_test else self._end)
