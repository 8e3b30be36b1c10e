"""The audit's HTML report: one self-contained file a person can attach to a ticket.

A pytest plugin, registered by ``tools.plugin.activate`` only when the audit runs, on top of
``tools.plugin.report``'s one record
per check. It names the default report file, replaces pytest-metadata's environment table (whose
CI variables and package lists could carry tokens) with our own safe rows, and renders each check
by its human name with its evidence or its cause and fix.
"""

from __future__ import annotations

import datetime
import html
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tools
from tools.core import db_config
from tools.core.errors import ConfigError
from tools.plugin import settings as audit_settings
from tools.plugin.report import (
    ENVIRONMENT,
    PASSED,
    RESULTS,
    SECTION,
    SHOUTED,
    CheckResult,
    counts_line,
    overall_verdict,
    project_identity,
    safe,
)

try:
    from pytest_html import extras as html_extras
except ImportError:  # pragma: no cover - pytest-html is a requirement; the plugin still works without it
    html_extras = None
try:
    from pytest_metadata.plugin import metadata_key
except ImportError:  # pragma: no cover
    metadata_key = None

STARTED = pytest.StashKey[tuple[float, datetime.datetime]]()


# --- the default HTML report ------------------------------------------------------------------


def default_html_report(config: pytest.Config) -> None:
    """Write the audit's HTML report to ``<infra_report_dir>/infra-audit-<timestamp>.html`` unless
    told otherwise. Called by ``tools.plugin.activate`` (so only the audit writes it), before
    pytest-html reads its options. ``--html`` wins; ``--no-default-report`` or an empty
    ``infra_report_dir`` turn it off; a run from inside another pytest test (the suite's own
    tests) never writes it."""
    option = config.option
    if getattr(option, "htmlpath", None) or getattr(option, "help", False) or getattr(option, "version", False):
        return
    if getattr(option, "collectonly", False) or hasattr(config, "workerinput") or "PYTEST_CURRENT_TEST" in os.environ:
        return
    folder = audit_settings.settings(config).report_dir
    if folder is not None and not config.getoption("no_default_report"):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"infra-audit-{stamp}.html"
        for n in range(2, 100):  # two runs within a second keep both reports
            if not path.exists():
                break
            path = folder / f"infra-audit-{stamp}-{n}.html"
        option.htmlpath = str(path)
        option.self_contained_html = True


def check_report_paths(config: pytest.Config) -> None:
    """Refuse, before any check runs, a report that could not be written (a folder that is a file,
    no permission, /proc): pytest-html and JUnit would otherwise fail at the very end, with a traceback."""
    for what, option in (("HTML report", "htmlpath"), ("JUnit XML", "xmlpath")):
        text = getattr(config.option, option, None)
        if not text:
            continue
        try:
            path = Path(os.path.expandvars(text)).expanduser().absolute()
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise IsADirectoryError(f"{path} is a folder")
            if not path.exists():  # the only sure test is to try (permissions, /proc, read-only mounts)
                path.touch(exist_ok=False)
                path.unlink()
            elif not os.access(path, os.W_OK):
                raise PermissionError(f"{path} is not writable")
        except RuntimeError:  # ~nosuchuser: expanduser cannot tell whose home
            raise pytest.UsageError(f"cannot write the {what} to {text}: no such user's home folder") from None
        except OSError as exc:
            raise pytest.UsageError(
                f"cannot write the {what} to {path}: {exc.strerror or exc}: choose another path "
                "(--report-dir, --html or --junitxml)"
            ) from None


def html_report_path(config: pytest.Config) -> Path | None:
    """Where pytest-html writes this run's report (it resolves the path the same way), or None."""
    path = getattr(config.option, "htmlpath", None)
    if not path or config.pluginmanager.getplugin("html") is None:
        return None
    return Path.cwd() / Path(os.path.expandvars(path)).expanduser()


# --- environment table ------------------------------------------------------------------------


def _database(root: Path) -> str:
    try:
        return db_config.resolve_db_url(root, os.environ).shown
    except ConfigError as exc:
        return f"not configured: {exc}"


def _environment(config: pytest.Config, finished: float | None) -> dict[str, str]:
    root, name = project_identity(config)
    started, started_at = config.stash[STARTED]
    facts = config.stash.get(ENVIRONMENT, {})
    rows = {
        "Project": name,
        "Project root": str(root),
        "Database": _database(root),
        "PostgreSQL server": facts.get(
            "PostgreSQL server", "not checked yet" if finished is None else "unknown: the database was not reached"
        ),
        "Audit suite": f"infra-audit {tools.__version__} (Python {platform.python_version()})",
        "Started": started_at.strftime("%Y-%m-%d %H:%M:%S %z"),
        "Duration": "running" if finished is None else f"{finished - started:.1f} s",
    }
    rows.update({k: v for k, v in facts.items() if k not in rows})
    rows.update({str(k): str(v) for k, v in (getattr(config.option, "metadata", None) or [])})  # --metadata KEY VALUE
    return {safe(config, k): html.escape(safe(config, v)) for k, v in rows.items()}


def _fill_environment(config: pytest.Config, finished: float | None) -> None:
    """Replace pytest-metadata's table in place (pytest-html holds the same dict) with our own rows."""
    if metadata_key is None or metadata_key not in config.stash:
        return
    table = config.stash[metadata_key]
    table.clear()
    table.update(_environment(config, finished))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STARTED] = (time.monotonic(), datetime.datetime.now().astimezone())
    _fill_environment(session.config, None)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_html_report_title(report) -> None:
    report.title = f"Infrastructure audit: {safe(report.config, project_identity(report.config)[1])}"
    report.outcomes["error"]["label"] = "Could not check (errors)"


# --- HTML rendering -----------------------------------------------------------------------------

STYLE = """<style>
.infra-verdict{font-size:1.3em;padding:.4em .6em;border-radius:4px;margin:.6em 0}
.infra-PASSED{background:#e3f5e1;color:#1b5e20}.infra-FAILED{background:#fde2e1;color:#8b1a10}
table.infra-checks{border-collapse:collapse;margin:.6em 0 1.2em;width:100%}
table.infra-checks th,table.infra-checks td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}
.infra-v-passed{color:#1b5e20;font-weight:bold}.infra-v-failed,.infra-v-could-not-check{color:#b71c1c;font-weight:bold}
.infra-v-not-run{color:#8a6d00;font-weight:bold}
.infra-cause{margin:.3em 0;padding:.3em .5em;background:#fff4e5;border-left:4px solid #e65100;white-space:pre-wrap}
.infra-evidence{margin:.2em 0;padding-left:1.2em}.infra-about{color:#555;margin:.2em 0}
</style>"""


def _verdict_html(verdict: str) -> str:
    return f'<span class="infra-v-{verdict.replace(" ", "-")}">{SHOUTED[verdict]}</span>'


def _evidence_html(result: CheckResult) -> str:
    items = "".join(f"<li>{html.escape(label)}: {html.escape(value)}</li>" for label, value in result.evidence)
    cause = f'<div class="infra-cause">{html.escape(result.cause)}</div>' if result.cause else ""
    return (f'<ul class="infra-evidence">{items}</ul>' if items else "") + cause


def _details_html(result: CheckResult) -> str:
    """The expanded row: what the check verifies, its verdict, evidence and cause."""
    return (
        f"<p><strong>{html.escape(result.name)}</strong>: {_verdict_html(result.verdict)}</p>"
        f'<p class="infra-about">{html.escape(result.about)}</p>{_evidence_html(result)}'
    )


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    """Above the results: the overall verdict and one line per check with its evidence or cause."""
    results = list(session.config.stash.get(RESULTS, {}).values())
    if not results:
        return
    overall = overall_verdict(results, session.exitstatus)
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{_verdict_html(r.verdict)}</td><td>{_evidence_html(r)}</td></tr>"
        for r in results
    )
    prefix.extend(
        [
            STYLE,
            f'<p class="infra-verdict infra-{overall}"><strong>Audit {overall}</strong>: '
            f"{html.escape(counts_line(results, session.exitstatus))}</p>",
            '<table class="infra-checks"><thead><tr><th>Check</th><th>Result</th><th>Evidence, or cause and fix</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>",
        ]
    )


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="check">Check</th>')
    cells.insert(2, "<th>Finding</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report, cells: list) -> None:
    result: CheckResult | None = getattr(report, "infra_result", None)
    name = getattr(report, "infra_check", "")
    if result is None:
        finding = html.escape(str(report.longrepr).strip().splitlines()[0]) if report.failed and report.longrepr else ""
    elif result.verdict == PASSED:
        finding = "; ".join(html.escape(f"{label}: {value}") for label, value in result.evidence[:3])
    else:
        finding = html.escape(result.cause.splitlines()[0] if result.cause else SHOUTED[result.verdict])
    cells.insert(1, f'<td class="col-check">{html.escape(name)}</td>')
    cells.insert(2, f'<td class="col-finding">{finding}</td>')


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_html(report, data: list) -> None:
    """The evidence is shown as a list above the log: drop its plain-text copy from the log."""
    if getattr(report, "infra_result", None) is not None:
        data[:] = [entry for entry in data if not entry.startswith(f"{' ' + SECTION + ' ':-^80}")]
        if data == ["No log output captured."]:
            data.clear()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Each check's expanded row; runs after ``audit_report`` has made (and scrubbed) its record."""
    report = yield
    result: CheckResult | None = getattr(report, "infra_result", None)
    if result is not None and html_extras is not None:
        report.extras = [*getattr(report, "extras", []), html_extras.html(_details_html(result))]
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Complete the environment table before pytest-html writes the report (it runs last)."""
    if STARTED in session.config.stash:
        _fill_environment(session.config, time.monotonic())


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """After the checks' summary: where the report to attach is."""
    path = html_report_path(config)
    if path is not None and config.stash.get(RESULTS, {}):
        terminalreporter.line(f"HTML report (attach it to the ticket): {path}")
