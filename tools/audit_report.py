"""What the audit shows: each check's evidence, and never a secret.

A pytest plugin (loaded by the root ``conftest.py``). Checks record evidence through the
``evidence`` fixture; it is attached to the test's report (a report section, which the terminal,
pytest-html and JUnit XML all carry, plus JUnit properties) and summarised after the run.
Every report is scrubbed of the database password before anything renders it, as the last line
of defence behind messages that are built without it in the first place.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools import dburl

SECRETS = pytest.StashKey[tuple[str, ...]]()
EVIDENCE = pytest.StashKey[list[tuple[str, str]]]()
SUMMARY = pytest.StashKey[list[tuple[str, str, list[tuple[str, str]]]]]()
SECTION = "evidence"


class Evidence:
    """What a check saw, as ``label: value`` lines; kept even when the check fails."""

    def __init__(self, lines: list[tuple[str, str]]) -> None:
        self._lines = lines

    def add(self, label: str, value: object) -> None:
        self._lines.append((label, str(value)))


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record evidence for the report: ``evidence.add("market_data", "340,494 rows")``."""
    return Evidence(request.node.stash.setdefault(EVIDENCE, []))


def remember_secrets(config: pytest.Config, secrets: tuple[str, ...]) -> None:
    config.stash[SECRETS] = secrets


def _scrub_report(report: pytest.TestReport | pytest.CollectReport, secrets: tuple[str, ...]) -> None:
    if report.longrepr is not None:
        text = str(report.longrepr)
        clean = dburl.scrub(text, secrets)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, dburl.scrub(content, secrets)) for title, content in report.sections]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    lines = item.stash.get(EVIDENCE, [])
    if lines and report.when == "call":
        report.sections.append((SECTION, "\n".join(f"{label}: {value}" for label, value in lines)))
        report.user_properties.extend(lines)
        item.config.stash.setdefault(SUMMARY, []).append((item.name, report.outcome, lines))
    _scrub_report(report, item.config.stash.get(SECRETS, ()))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    _scrub_report(report, collector.config.stash.get(SECRETS, ()))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The evidence of every check in one place, after the run (the spec's "Table Statistics")."""
    summary = config.stash.get(SUMMARY, [])
    if not summary:
        return
    terminalreporter.section("infrastructure evidence")
    for name, outcome, lines in summary:
        terminalreporter.line(f"{name} [{outcome}]")
        for label, value in lines:
            terminalreporter.line(dburl.scrub(f"   {label}: {value}", config.stash.get(SECRETS, ())))
