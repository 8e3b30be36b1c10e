"""What the audit shows: each check by its human name, with its evidence or its cause, and never a secret.

A pytest plugin, registered by ``infra_audit.plugin.activate`` only when the audit runs. It keeps one record per check and serves it to:

- the terminal: a summary of every check's verdict, evidence, warnings and cause after the run
  (the spec's "Table Statistics"), the one place a cause is printed: pytest's own FAILURES,
  ERRORS and short summary are kept from repeating it;
- JUnit XML: ``check``, ``check result``, ``evidence: <label>``, ``warning`` and ``cause and fix`` properties on each test case;
- the HTML report, rendered from the same records by ``infra_audit.plugin.html``.

A check's human name comes from its ``@pytest.mark.check("root is clean")`` marker. Its verdict is
one of ``passed``, ``failed``, ``could not check`` (it errored before it could look, e.g. the
database was unreachable, or it looked and could not tell: ``conclude``) or ``not run`` (skipped): only ``passed`` is ever shown as passed, and a
skipped check fails the run. Checks record evidence (and warnings that do not fail them) through
the ``evidence`` fixture. Every report is scrubbed of the database password before anything
renders it, as the last line of defence behind messages that are built without it in the first place.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra_audit.core import db_config, dburl
from infra_audit.core.errors import COULD_NOT_LOOK, ProbeError
from infra_audit.core.text import printable
from infra_audit.plugin import settings as audit_settings

SECRETS = pytest.StashKey[tuple[str, ...]]()
EVIDENCE = pytest.StashKey[list[tuple[str, str]]]()
WARNINGS = pytest.StashKey[list[str]]()
RESULTS = pytest.StashKey[dict[str, "CheckResult"]]()
ENVIRONMENT = pytest.StashKey[dict[str, str]]()
ALL_CHECKS = pytest.StashKey[tuple[tuple[str, str], ...]]()  # (test, human name template)
CHECKS_FOLDER = pytest.StashKey[Path]()  # every test in it is a check, marked or not
WRITTEN = pytest.StashKey[list[str]]()  # the reports this run wrote, one line each, said again after the verdict
UNWRITTEN = pytest.StashKey[str]()  # why a report this run was asked for was not written: the run fails

PASSED, FAILED, NOT_CHECKED, NOT_RUN = "passed", "failed", "could not check", "not run"
SHOUTED = {PASSED: "PASSED", FAILED: "FAILED", NOT_CHECKED: "COULD NOT CHECK", NOT_RUN: "NOT RUN"}
MARKUP = {PASSED: {"green": True}, FAILED: {"red": True}, NOT_CHECKED: {"red": True}, NOT_RUN: {"yellow": True}}


class Evidence:
    """What a check saw, as ``label: value`` lines; kept even when the check fails."""

    def __init__(self, lines: list[tuple[str, str]], warnings: list[str], environment: dict[str, str]) -> None:
        self._lines = lines
        self._warnings = warnings
        self._environment = environment

    def add(self, label: str, value: object) -> None:
        self._lines.append((label, str(value)))

    def warn(self, message: str) -> None:
        """Something a person should fix that does not fail the check: shown as a warning beside its verdict."""
        self._warnings.append(message)

    def environment(self, key: str, value: object) -> None:
        """A fact about the audited system for the report's environment table (e.g. the server version)."""
        self._environment[key] = str(value)


def note_environment(config: pytest.Config, key: str, value: object) -> None:
    """A fact for the environment table from outside a check (a fixture that learnt it)."""
    config.stash.setdefault(ENVIRONMENT, {})[key] = str(value)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record evidence for the report: ``evidence.add("market_data", "340,494 rows")``."""
    stash = request.node.stash
    return Evidence(
        stash.setdefault(EVIDENCE, []), stash.setdefault(WARNINGS, []), request.config.stash.setdefault(ENVIRONMENT, {})
    )


def remember_secrets(config: pytest.Config, secrets: tuple[str, ...]) -> None:
    config.stash[SECRETS] = secrets


def known_secrets(config: pytest.Config) -> tuple[str, ...]:
    """Every password this run could print (DB_URL's, even malformed; POSTGRES_* and libpq's)."""
    found = audit_settings.settings(config)
    return db_config.known_secrets(found.project_root, os.environ, shown=found.tables)


def safe(config: pytest.Config, text: object) -> str:
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
    warnings: tuple[str, ...] = ()


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
    remember_secrets(config, known_secrets(config))
    config.addinivalue_line(
        "markers",
        "check(name): the check's human name in the HTML report, the terminal summary and JUnit; "
        "{connect_timeout} stands for the configured connect deadline",
    )


def is_check(item: pytest.Item) -> bool:
    """A test marked as a check, one that records evidence, or any test in the audit's checks folder (a
    check the user added there without a marker is reported like the built-in ones)."""
    if item.get_closest_marker("check") is not None or "evidence" in getattr(item, "fixturenames", ()):
        return True
    folder = item.config.stash.get(CHECKS_FOLDER, None)
    return folder is not None and item.path.is_relative_to(folder)


def check_name(item: pytest.Item) -> str:
    """``@pytest.mark.check("...")``'s name, or one made from the function name."""
    marker = item.get_closest_marker("check")
    if marker is None or not marker.args:
        return _unmarked_name(item.name)
    return _named(item.config, str(marker.args[0]))


def _unmarked_name(test: str) -> str:
    """A check's name without a ``check`` marker: its function's, in words."""
    return test.removeprefix("test_").replace("_", " ")


def _named(config: pytest.Config, template: str) -> str:
    """A check's human name from its marker's text: ``{connect_timeout}`` is the configured deadline."""
    return template.format(connect_timeout=f"{audit_settings.settings(config).timeouts.connect:g}")


def _about(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


# --- one record per check, attached to every report ----------------------------------------


class CouldNotCheck(pytest.fail.Exception):
    """A check looked and could not tell (a table locked, a query past its deadline): not a finding."""


def probe_failed(evidence: Evidence, label: str, exc: ProbeError, problems: list[str], unknowns: list[str]) -> None:
    """File a probe that raised for ``label``, in the audit's terms: a cause that says it could not look
    (a lock, a deadline) among the ``unknowns``, any other among the ``problems``; its evidence says which."""
    unknown = exc.cause in COULD_NOT_LOOK
    evidence.add(label, f"{'could not check' if unknown else 'FAILED'} ({exc.cause})")
    (unknowns if unknown else problems).append(audit_settings.advice(exc))


def conclude(problems: list[str], unknowns: list[str]) -> None:
    """End a check that looked at several things: FAILED when it found something wrong, else COULD NOT
    CHECK when something could not be looked at; either way it says all it found."""
    if problems:
        pytest.fail("\n".join(problems + unknowns), pytrace=False)
    if unknowns:
        raise CouldNotCheck("\n".join(unknowns), pytrace=False)


def _verdict(report: pytest.TestReport, call: pytest.CallInfo) -> str | None:
    """The check's verdict if this phase decides it: a failed or skipped setup, or the call."""
    if report.when == "setup":
        return NOT_CHECKED if report.failed else NOT_RUN if report.skipped else None
    if report.when == "call":
        if report.failed and call.excinfo is not None and isinstance(call.excinfo.value, CouldNotCheck):
            return NOT_CHECKED
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
        verdict = _verdict(report, call)
        if verdict is not None:
            _record(item, report, call, verdict, item.stash.get(EVIDENCE, []))
    _scrub_report(report, config.stash.get(SECRETS, ()))
    return report


def _record(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo, verdict: str, lines: list[tuple[str, str]]
) -> None:
    """The check's one record, kept for the summary and the HTML and copied into JUnit properties."""
    config = item.config
    cause = "" if verdict == PASSED else _cause(report, call)
    if verdict == NOT_CHECKED:
        cause = f"could not check: {cause}"
        if _is_plain_failure(call):  # a kept reason (the Attempt pattern), not a bug: say it as such
            report.longrepr = PlainText(cause)
    # A finding in the check's own words is said by the audit summary; a crash keeps pytest's traceback.
    report.infra_finding = verdict in (FAILED, NOT_CHECKED) and _is_plain_failure(call)
    result = CheckResult(
        report.infra_check,
        item.name,
        verdict,
        tuple((safe(config, label), safe(config, value)) for label, value in lines),
        safe(config, cause),
        _about(item),
        tuple(safe(config, w) for w in item.stash.get(WARNINGS, [])),
    )
    config.stash.setdefault(RESULTS, {})[item.nodeid] = result
    report.infra_result = result
    item.user_properties.extend([("check", result.name), ("check result", verdict)])
    item.user_properties.extend((f"evidence: {label}", value) for label, value in result.evidence)
    item.user_properties.extend(("warning", warning) for warning in result.warnings)
    if result.cause:
        item.user_properties.append(("cause and fix", result.cause))


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """pytest's own closing line counts in the audit's words, so it never contradicts the verdict line: a
    check that could not check (a finding, not a crash) is no pytest "error", a check not run no "skipped"."""
    result = getattr(report, "infra_result", None)
    if result is None:
        return None
    if result.verdict == NOT_CHECKED and report.infra_finding:
        return NOT_CHECKED, "C", SHOUTED[NOT_CHECKED]
    if result.verdict == NOT_RUN:
        return NOT_RUN, "s", SHOUTED[NOT_RUN]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    _scrub_report(report, collector.config.stash.get(SECRETS, ()))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A skipped check fails the run: it proved nothing (before the HTML report is written)."""
    results = session.config.stash.get(RESULTS, {}).values()
    if session.exitstatus == pytest.ExitCode.OK and any(r.verdict == NOT_RUN for r in results):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def counts_line(config: pytest.Config, results: list[CheckResult], exitstatus: int) -> str:
    """``1 failed, 1 could not check, 4 passed (1 warning)``; when pytest itself failed the run
    otherwise (a collection error, an error in teardown), that too: the verdict must match the exit code;
    and the checks this run left out (``-k``, a file path), so a partial run never reads as the audit."""
    parts = [(sum(r.verdict == v for r in results), v) for v in (FAILED, NOT_CHECKED, NOT_RUN, PASSED)]
    counts = ", ".join(f"{n} {verdict}" for n, verdict in parts if n) or "no check ran"
    warned = sum(len(r.warnings) for r in results)
    if warned:
        counts += f" ({warned} warning{'s' if warned > 1 else ''})"
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    if interrupted:
        counts += "; interrupted before the audit finished"
    elif exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        counts += f"; pytest ended with exit code {int(exitstatus)}: nothing matched what was selected (-k, a path)"
    elif exitstatus != pytest.ExitCode.OK and all(r.verdict == PASSED for r in results):
        counts += f"; but pytest ended with exit code {int(exitstatus)}: see its errors"
    left_out = not_selected(config, results)
    if left_out:
        why = "did not run" if interrupted else "not run (not selected)"
        counts += f"; {len(left_out)} of the audit's checks {why}: {', '.join(left_out)}"
    if UNWRITTEN in config.stash:
        counts += f"; {config.stash[UNWRITTEN]}"
    return counts


def overall_verdict(config: pytest.Config, results: list[CheckResult], exitstatus: int) -> str:
    """PASSED only when every check of the audit ran and passed; PARTIAL when those that ran passed."""
    ran_clean = exitstatus == pytest.ExitCode.OK and UNWRITTEN not in config.stash
    if not (results and ran_clean and all(r.verdict == PASSED for r in results)):
        return "FAILED"
    return "PARTIAL" if not_selected(config, results) else "PASSED"


def remember_checks(config: pytest.Config, folder: Path) -> None:
    """Every check the audit has, (test, human name) from each ``@pytest.mark.check("...")`` test and
    each other module-level ``test_*`` function in ``folder``, read without importing them: a run of
    only some of them must say so."""
    found = []
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            named = [
                call.args[0].value
                for call in node.decorator_list
                if isinstance(call, ast.Call)
                and getattr(call.func, "attr", "") == "check"
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ]
            if not named and node in tree.body and node.name.startswith("test_"):
                named = [_unmarked_name(node.name)]
            found += [(node.name, name) for name in named]
    config.stash[ALL_CHECKS] = tuple(found)
    config.stash[CHECKS_FOLDER] = folder.resolve()


def see(config: pytest.Config, test: str) -> str:
    """``see "database reachable within 3 s"``: a pointer to the one check that states a cause, by
    the human name its marker gives it (so the pointer follows a renamed check)."""
    template = dict(config.stash.get(ALL_CHECKS, ())).get(test, test)
    return f'see "{_named(config, template)}"'


def not_selected(config: pytest.Config, results: list[CheckResult]) -> list[str]:
    """The human names of the audit's checks that this run did not run at all."""
    ran = {result.test for result in results}
    return [_named(config, name) for test, name in config.stash.get(ALL_CHECKS, ()) if test not in ran]


def project_identity(config: pytest.Config) -> tuple[Path, str]:
    """The audited root and the name the reports give it."""
    found = audit_settings.settings(config)
    return found.project_root, found.project_name


# --- terminal -----------------------------------------------------------------------------------


class SaidInSummary:
    """A finding's failure text once the audit summary says it: pytest's FAILURES and ERRORS sections
    print a pointer instead, and its short summary keeps the verdict line without repeating the cause."""

    def toterminal(self, out) -> None:
        out.line("(its cause is in the infrastructure audit summary below)")

    def __str__(self) -> str:
        return ""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> Iterator[None]:
    """Around pytest's own sections (JUnit and the HTML report are written by now): first keep them
    from repeating each finding's cause, and leave them out entirely when findings are all there is;
    then, last before pytest's final line, every check's verdict, evidence, warnings and cause
    (the spec's "Table Statistics")."""
    shown = [r for key in ("failed", "error") for r in terminalreporter.stats.get(key, ())]
    findings = [r for r in shown if getattr(r, "infra_finding", False)]
    for report in findings:
        report.longrepr = SaidInSummary()
        report.sections = []
    if findings and len(findings) == len(shown):
        config.option.tbstyle = "no"  # no FAILURES/ERRORS sections; a crash (a bug) still gets them
    outcome = yield
    _write_summary(terminalreporter, exitstatus, config)
    return outcome


def _write_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = list(config.stash.get(RESULTS, {}).values())
    if config.option.collectonly:
        return

    def write(line: str, **markup: bool) -> None:  # a value from the database may hold terminal escapes
        terminalreporter.line(printable(line), **markup)

    terminalreporter.section(f"infrastructure audit: {safe(config, project_identity(config)[1])}")
    for result in results:
        write(f"{SHOUTED[result.verdict]:<16} {result.name}", bold=True, **MARKUP[result.verdict])
        for label, value in result.evidence:
            write(f"{'':<17}{label}: {value}")
        for warning in result.warnings:
            write(f"{'':<17}warning: {warning}", yellow=True)
        for line in result.cause.splitlines():
            write(f"{'':<17}{line}", **MARKUP[result.verdict])
    overall = overall_verdict(config, results, exitstatus)
    colour = {"PASSED": {"green": True}, "PARTIAL": {"yellow": True}}.get(overall, {"red": True})
    write(f"audit {overall}: {counts_line(config, results, exitstatus)}", bold=True, **colour)
    for line in config.stash.get(WRITTEN, []):  # where a reader looks for it: at the end, beside the verdict
        write(line)
