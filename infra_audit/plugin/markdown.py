"""The audit's Markdown summary: the verdict and one table row per check, for a ticket or a CI job page.

A pytest plugin, registered by ``infra_audit.plugin.activate`` only when the audit runs. A ticket's
body or a CI job's page is Markdown (GitHub and GitLab issues, GitHub's job summary), where an HTML
attachment must be downloaded to be read. It renders the same scrubbed records as the terminal, JUnit
and the HTML report (``infra_audit.plugin.report``): the verdict, each check with its verdict and its
cause (or its key evidence and warnings), the environment's key rows and the HTML report's file name,
as GitHub Flavored Markdown. ``--markdown PATH`` writes it (replaced whole); with ``GITHUB_STEP_SUMMARY``
set it is appended to that file too, as GitHub Actions asks of every step.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from infra_audit.core.files import write_atomically
from infra_audit.plugin import html
from infra_audit.plugin.report import (
    FAILED,
    NOT_CHECKED,
    NOT_RUN,
    PASSED,
    RESULTS,
    SHOUTED,
    UNWRITTEN,
    CheckResult,
    counts_line,
    overall_verdict,
    project_identity,
    safe,
)

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
ICONS = {PASSED: "✅", FAILED: "❌", NOT_CHECKED: "⚠️", NOT_RUN: "⏭️"}
KEY_ENVIRONMENT = (
    "Project",
    "Database",
    "PostgreSQL server",
    "Git commit",
    "Git branch",
    "Uncommitted changes",
    "Host",
    "Audit suite",
    "Started",
    "Duration",
)
_SAID = pytest.StashKey[list[str]]()  # where the summary went, for the terminal
# What GFM would read as markup in a table cell (code, emphasis, links, HTML and entities, the cell's end,
# strikethrough, @mentions): escaped, so a value shows as itself.
_MARKUP = re.compile(r"([\\`*_\[\]<>&|~@])")


def text(value: str) -> str:
    """A value as literal text inside a table cell: markup characters escaped, lines joined by ``<br>``."""
    return "<br>".join(_MARKUP.sub(r"\\\1", line) for line in value.splitlines() or [""])


def _cell(result: CheckResult) -> str:
    """The cause when it did not pass; else its evidence, then its warnings."""
    if result.verdict != PASSED:
        return text(result.cause)
    lines = [f"{label}: {value}" for label, value in result.evidence]
    return text("\n".join(lines + [f"⚠️ warning: {warning}" for warning in result.warnings]))


def _verdict(result: CheckResult) -> str:
    warned = len(result.warnings)
    note = f" ({warned} warning{'s' if warned > 1 else ''})" if warned and result.verdict == PASSED else ""
    return f"{ICONS[result.verdict]} {SHOUTED[result.verdict]}{note}"


def summary(session: pytest.Session) -> str:
    """The whole summary: a heading with the verdict, the checks' table, the environment, the report's name."""
    config = session.config
    results = list(config.stash.get(RESULTS, {}).values())
    overall = overall_verdict(config, results, session.exitstatus)
    lines = [
        f"## Infrastructure audit: {text(safe(config, project_identity(config)[1]))}: {overall}",
        "",
        f"**Audit {overall}**: {text(counts_line(config, results, session.exitstatus))}",
        "",
    ]
    if results:
        lines += ["| Check | Verdict | Cause or key evidence |", "| --- | --- | --- |"]
        lines += [f"| {text(result.name)} | {_verdict(result)} | {_cell(result)} |" for result in results]
        lines.append("")
    rows = html.environment(config, time.monotonic())
    lines += ["| Environment | |", "| --- | --- |"]
    lines += [f"| {key} | {text(rows[key])} |" for key in KEY_ENVIRONMENT if key in rows]
    report = html.written_report(config)
    lines += ["", f"HTML report: `{report.name}`" if report is not None else "HTML report: none written", ""]
    return "\n".join(lines)  # every value comes scrubbed (records, environment): escaped, a URL's *** stays literal


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Once the verdict is final and the HTML report written (``activate`` registers this plugin after
    ``html``, so this runs after it): write the summary, and append it to GitHub's job summary."""
    config = session.config
    path = html.report_path(config, "infra_markdown")
    step_summary = os.environ.get(STEP_SUMMARY, "")
    if config.option.collectonly or (path is None and not step_summary):
        return
    document = summary(session).encode("utf-8", "backslashreplace")
    said = config.stash.setdefault(_SAID, [])
    for where, write in ((path, write_atomically), (Path(step_summary) if step_summary else None, _append)):
        if where is None:
            continue
        try:
            write(where, document)
        except OSError as exc:
            _unwritten(session, f"the Markdown summary was not written to {where}: {exc.strerror or exc}")
        else:
            said.append(f"Markdown summary: {where}" + (f" (${STEP_SUMMARY})" if where != path else ""))


def _append(path: Path, document: bytes) -> None:
    """Add to the job summary GitHub gave this step (other steps' summaries stay)."""
    with open(path, "ab") as handle:
        handle.write(b"\n" + document)


def _unwritten(session: pytest.Session, why: str) -> None:
    """A summary asked for and not written fails the run and says why, as a lost HTML report does."""
    config = session.config
    config.stash[UNWRITTEN] = "; ".join(filter(None, (config.stash.get(UNWRITTEN, ""), safe(config, why))))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    for line in terminalreporter.config.stash.get(_SAID, []):
        terminalreporter.write_sep("-", line)
