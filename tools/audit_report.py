"""What the audit shows: each check by its human name, with its evidence or its cause, and never a secret.

A pytest plugin (loaded by the root ``conftest.py``). It serves three readers from one record per check:

- the terminal: a summary of every check's verdict and evidence after the run (the spec's
  "Table Statistics"), then the path of the HTML report;
- pytest-html: a title naming the project, an environment table of our own safe rows (it replaces
  pytest-metadata's, whose CI variables and package lists could carry tokens), an overview of the
  checks above the results, and each row's human name, evidence and cause;
- JUnit XML: ``check``, ``check result``, ``evidence: <label>`` and ``cause and fix`` properties on each test case.

A check's human name comes from its ``@pytest.mark.check("root is clean")`` marker. Its verdict is
one of ``passed``, ``failed``, ``could not check`` (it errored before it could look, e.g. the
database was unreachable) or ``not run`` (skipped): only ``passed`` is ever shown as passed, and a
skipped check fails the run. Checks record evidence through the ``evidence`` fixture. Every report
is scrubbed of the database password before anything renders it, as the last line of defence
behind messages that are built without it in the first place.
"""

from __future__ import annotations

import datetime
import html
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tools
from tools import audit_settings, db_config, dburl

try:
    from pytest_html import extras as html_extras
except ImportError:  # pragma: no cover - pytest-html is a requirement; the plugin still works without it
    html_extras = None
try:
    from pytest_metadata.plugin import metadata_key
except ImportError:  # pragma: no cover
    metadata_key = None

SECRETS = pytest.StashKey[tuple[str, ...]]()
EVIDENCE = pytest.StashKey[list[tuple[str, str]]]()
RESULTS = pytest.StashKey[dict[str, "CheckResult"]]()
ENVIRONMENT = pytest.StashKey[dict[str, str]]()
STARTED = pytest.StashKey[tuple[float, datetime.datetime]]()
SECTION = "evidence"

PASSED, FAILED, NOT_CHECKED, NOT_RUN = "passed", "failed", "could not check", "not run"
SHOUTED = {PASSED: "PASSED", FAILED: "FAILED", NOT_CHECKED: "COULD NOT CHECK", NOT_RUN: "NOT RUN"}
MARKUP = {PASSED: {"green": True}, FAILED: {"red": True}, NOT_CHECKED: {"red": True}, NOT_RUN: {"yellow": True}}


class Evidence:
    """What a check saw, as ``label: value`` lines; kept even when the check fails."""

    def __init__(self, lines: list[tuple[str, str]], environment: dict[str, str]) -> None:
        self._lines = lines
        self._environment = environment

    def add(self, label: str, value: object) -> None:
        self._lines.append((label, str(value)))

    def environment(self, key: str, value: object) -> None:
        """A fact about the audited system for the report's environment table (e.g. the server version)."""
        self._environment[key] = str(value)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record evidence for the report: ``evidence.add("market_data", "340,494 rows")``."""
    return Evidence(request.node.stash.setdefault(EVIDENCE, []), request.config.stash.setdefault(ENVIRONMENT, {}))


def remember_secrets(config: pytest.Config, secrets: tuple[str, ...]) -> None:
    config.stash[SECRETS] = secrets


def _safe(config: pytest.Config, text: object) -> str:
    return dburl.scrub(str(text), config.stash.get(SECRETS, ()))


@dataclass(frozen=True)
class CheckResult:
    """One check as every reader sees it: human name, verdict, evidence, and the cause when not passed."""

    name: str
    test: str
    verdict: str
    evidence: tuple[tuple[str, str], ...]
    cause: str = ""
    about: str = ""


@dataclass(frozen=True)
class _Crash:
    message: str
    path: str = ""
    lineno: int = 0


@dataclass(frozen=True)
class PlainText:
    """A failure shown as its text alone (no traceback); the short summary and JUnit still quote it."""

    text: str
    reprcrash: _Crash = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reprcrash", _Crash(self.text))

    def toterminal(self, out) -> None:
        for line in self.text.splitlines() or [""]:
            out.line(line)

    def __str__(self) -> str:
        return self.text


# --- names ------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "check(name): the check's human name in the HTML report, the terminal summary and JUnit; "
        "{connect_timeout} stands for the configured connect deadline",
    )


def is_check(item: pytest.Item) -> bool:
    return item.get_closest_marker("check") is not None or "evidence" in getattr(item, "fixturenames", ())


def check_name(item: pytest.Item) -> str:
    """``@pytest.mark.check("...")``'s name, or one made from the function name."""
    marker = item.get_closest_marker("check")
    if marker is None or not marker.args:
        return item.name.removeprefix("test_").replace("_", " ")
    try:
        connect = float(audit_settings._raw(item.config, "infra_connect_timeout"))
    except ValueError:
        connect = 3.0
    return str(marker.args[0]).format(connect_timeout=f"{connect:g}")


def _about(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


# --- one record per check, attached to every report ----------------------------------------


def _verdict(report: pytest.TestReport) -> str | None:
    """The check's verdict if this phase decides it: a failed or skipped setup, or the call."""
    if report.when == "setup":
        return NOT_CHECKED if report.failed else NOT_RUN if report.skipped else None
    if report.when == "call":
        return NOT_RUN if report.skipped else FAILED if report.failed else PASSED
    return None


def _is_plain_failure(call: pytest.CallInfo) -> bool:
    """``pytest.fail(..., pytrace=False)``: a finding with its own words, not a crash."""
    excinfo = call.excinfo
    return excinfo is not None and isinstance(excinfo.value, pytest.fail.Exception) and not excinfo.value.pytrace


def _cause(report: pytest.TestReport, call: pytest.CallInfo) -> str:
    """The failure's own words: a ``pytest.fail`` message as written, else the exception's last line."""
    excinfo = call.excinfo
    if _is_plain_failure(call):
        return excinfo.value.msg
    if excinfo is not None and isinstance(excinfo.value, pytest.skip.Exception):
        return f"skipped: {excinfo.value.msg}"
    crash = getattr(report.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1:][0]


def _scrub_report(report: pytest.TestReport | pytest.CollectReport, secrets: tuple[str, ...]) -> None:
    if report.longrepr is not None:
        text = str(report.longrepr)
        clean = dburl.scrub(text, secrets)
        if clean != text:
            report.longrepr = PlainText(clean)
    report.sections = [(title, dburl.scrub(content, secrets)) for title, content in report.sections]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    config = item.config
    if is_check(item):
        report.infra_check = check_name(item)
        lines = item.stash.get(EVIDENCE, [])
        if lines and report.when == "call":
            report.sections.append((SECTION, "\n".join(f"{label}: {value}" for label, value in lines)))
        verdict = _verdict(report)
        if verdict is not None:
            cause = "" if verdict == PASSED else _cause(report, call)
            if verdict == NOT_CHECKED:
                cause = f"could not check: {cause}"
                if _is_plain_failure(call):  # a kept reason (the Attempt pattern), not a bug: say it as such
                    report.longrepr = PlainText(cause)
            result = CheckResult(
                report.infra_check, item.name, verdict,
                tuple((_safe(config, label), _safe(config, value)) for label, value in lines),
                _safe(config, cause), _about(item),
            )  # fmt: skip
            config.stash.setdefault(RESULTS, {})[item.nodeid] = result
            report.infra_result = result
            item.user_properties.extend([("check", result.name), ("check result", verdict)])
            item.user_properties.extend((f"evidence: {label}", value) for label, value in result.evidence)
            if result.cause:
                item.user_properties.append(("cause and fix", result.cause))
            if html_extras is not None:
                report.extras = [*getattr(report, "extras", []), html_extras.html(_details_html(result))]
    _scrub_report(report, config.stash.get(SECRETS, ()))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    _scrub_report(report, collector.config.stash.get(SECRETS, ()))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Complete the environment table before pytest-html writes the report (it runs last), and make
    sure a skipped check fails the run: it proved nothing."""
    if STARTED in session.config.stash:
        _fill_environment(session.config, time.monotonic())
    results = session.config.stash.get(RESULTS, {}).values()
    if session.exitstatus == pytest.ExitCode.OK and any(r.verdict == NOT_RUN for r in results):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _counts(results: list[CheckResult], exitstatus: int) -> str:
    """``1 failed, 1 could not check, 4 passed``; and when pytest itself failed the run otherwise
    (a collection error, an error in teardown), that too: the verdict must match the exit code."""
    parts = [(sum(r.verdict == v for r in results), v) for v in (FAILED, NOT_CHECKED, NOT_RUN, PASSED)]
    counts = ", ".join(f"{n} {verdict}" for n, verdict in parts if n)
    if exitstatus != pytest.ExitCode.OK and all(r.verdict == PASSED for r in results):
        counts += f"; but pytest ended with exit code {int(exitstatus)}: see its errors"
    return counts


def _overall(results: list[CheckResult], exitstatus: int) -> str:
    passed = results and exitstatus == pytest.ExitCode.OK and all(r.verdict == PASSED for r in results)
    return "PASSED" if passed else "FAILED"


# --- the default HTML report ------------------------------------------------------------------


def default_html_report(config: pytest.Config) -> None:
    """Write the audit's HTML report to ``<infra_report_dir>/infra-audit-<timestamp>.html`` unless
    told otherwise. Called by ``infra_tests/conftest.py`` (so only the audit writes it), before
    pytest-html reads its options. ``--html`` wins; ``--no-default-report`` or an empty
    ``infra_report_dir`` turn it off; a run from inside another pytest test (the suite's own
    tests) never writes it."""
    option = config.option
    if getattr(option, "htmlpath", None) or getattr(option, "help", False) or getattr(option, "version", False):
        return
    if getattr(option, "collectonly", False) or hasattr(config, "workerinput") or "PYTEST_CURRENT_TEST" in os.environ:
        return
    folder = audit_settings.report_settings(config, config.rootpath).default_dir
    if folder is not None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"infra-audit-{stamp}.html"
        for n in range(2, 100):  # two runs within a second keep both reports
            if not path.exists():
                break
            path = folder / f"infra-audit-{stamp}-{n}.html"
        option.htmlpath = str(path)
        option.self_contained_html = True


def html_report_path(config: pytest.Config) -> Path | None:
    """Where pytest-html writes this run's report (it resolves the path the same way), or None."""
    path = getattr(config.option, "htmlpath", None)
    if not path or config.pluginmanager.getplugin("html") is None:
        return None
    return Path.cwd() / Path(os.path.expandvars(path)).expanduser()


# --- environment table ------------------------------------------------------------------------


def _project(config: pytest.Config) -> tuple[Path, str]:
    try:
        root = audit_settings.from_config(config).project_root
    except pytest.UsageError:
        root = config.rootpath
    return root, audit_settings.report_settings(config, root).project_name


def _database(root: Path) -> str:
    try:
        return dburl.redact(db_config.resolve_db_url(root, os.environ).value)
    except db_config.ConfigError as exc:
        return f"not configured: {exc}"


def _environment(config: pytest.Config, finished: float | None) -> dict[str, str]:
    root, name = _project(config)
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
    return {_safe(config, k): html.escape(_safe(config, v)) for k, v in rows.items()}


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
    report.title = f"Infrastructure audit: {_safe(report.config, _project(report.config)[1])}"
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
    overall = _overall(results, session.exitstatus)
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{_verdict_html(r.verdict)}</td><td>{_evidence_html(r)}</td></tr>"
        for r in results
    )
    prefix.extend(
        [
            STYLE,
            f'<p class="infra-verdict infra-{overall}"><strong>Audit {overall}</strong>: '
            f"{html.escape(_counts(results, session.exitstatus))}</p>",
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


# --- terminal -----------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Every check's verdict and evidence in one place (the spec's "Table Statistics"), then the report's path."""
    results = list(config.stash.get(RESULTS, {}).values())
    if not results:
        return
    write = terminalreporter.line
    terminalreporter.section(f"infrastructure audit: {_safe(config, _project(config)[1])}")
    for result in results:
        write(f"{SHOUTED[result.verdict]:<16} {result.name}", bold=True, **MARKUP[result.verdict])
        for label, value in result.evidence:
            write(f"{'':<17}{label}: {value}")
        for line in result.cause.splitlines():
            write(f"{'':<17}{line}", **MARKUP[result.verdict])
    overall = _overall(results, exitstatus)
    ok = overall == "PASSED"
    write(f"audit {overall}: {_counts(results, exitstatus)}", bold=True, green=ok, red=not ok)
    path = html_report_path(config)
    if path is not None:
        write(f"HTML report (attach it to the ticket): {path}")
