"""The audit's HTML report: one self-contained file a person can attach to a ticket.

A pytest plugin, registered by ``tools.plugin.activate`` only when the audit runs, on top of
``tools.plugin.report``'s one record per check. It names the default report file and writes, as
static HTML at the top of pytest-html's page, everything a reader needs: the verdict, each check
with its evidence, warnings and cause (said once), and the environment (what was audited, where,
by whom, from which commit). Ticket previews and mail clients that drop scripts still show all of
it. pytest-html's script-built parts stay below as an extra (a sortable list) and are hidden when
no script runs. pytest-metadata's table (whose CI variables and package lists could carry tokens)
is emptied before anything shows it.
"""

from __future__ import annotations

import datetime
import getpass
import html
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

import tools
from tools.core.errors import ConfigError
from tools.plugin import settings as audit_settings
from tools.plugin.report import (
    ENVIRONMENT,
    NOT_CHECKED,
    NOT_RUN,
    RESULTS,
    SHOUTED,
    CheckResult,
    counts_line,
    overall_verdict,
    project_identity,
    safe,
)

try:
    from pytest_metadata.plugin import metadata_key
except ImportError:  # pragma: no cover - pytest-html requires pytest-metadata
    metadata_key = None

STARTED = pytest.StashKey[tuple[float, datetime.datetime]]()
ENVIRONMENT_ROWS = pytest.StashKey[dict[str, str]]()
GIT_TIMEOUT_S = 3.0


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


# --- environment ----------------------------------------------------------------------------------


def _database(config: pytest.Config) -> str:
    setting = audit_settings.db_url_setting(config)
    return f"not configured: {setting}" if isinstance(setting, ConfigError) else setting.shown


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _checkout(root: Path) -> dict[str, str]:
    """Which commit was audited: git's answer within a deadline, or why there is none (never fatal)."""
    command = ["git", "-C", str(root), "status", "--porcelain=v2", "--branch", "--untracked-files=normal"]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # read-only: never take the index lock
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=False)
    except FileNotFoundError:
        return {"Git commit": "unknown: git is not installed"}
    except subprocess.TimeoutExpired:
        return {"Git commit": f"unknown: git did not answer within {GIT_TIMEOUT_S:g} s"}
    except OSError as exc:
        return {"Git commit": f"unknown: git could not run ({exc.strerror or exc})"}
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"git exited {done.returncode}"])[0].removeprefix("fatal: ")
        return {"Git commit": "none: not a git checkout" if "not a git repository" in reason else f"unknown: {reason}"}
    headers = dict(re.findall(r"^# branch\.(oid|head) (.+)$", done.stdout, re.MULTILINE))
    changed = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    return {
        "Git commit": headers.get("oid", "unknown").replace("(initial)", "none yet (no commits)"),
        "Git branch": headers.get("head", "unknown").replace("(detached)", "none (detached HEAD)"),
        "Uncommitted changes": f"yes: {len(changed)} path(s) changed or untracked" if changed else "no",
    }


def _environment(config: pytest.Config, finished: float) -> dict[str, str]:
    """The environment rows, scrubbed: what was audited, from which commit, where, by whom, when."""
    root, name = project_identity(config)
    started, started_at = config.stash[STARTED]
    facts = config.stash.get(ENVIRONMENT, {})
    rows = {
        "Project": name,
        "Project root": str(root),
        **_checkout(root),
        "Host": socket.gethostname(),
        "OS user": _os_user(),
        "Database": _database(config),
        "PostgreSQL server": facts.get("PostgreSQL server", "unknown: the database was not reached"),
        "Audit suite": f"infra-audit {tools.__version__} (Python {platform.python_version()})",
        "Started": started_at.strftime("%Y-%m-%d %H:%M:%S %z"),
        "Duration": f"{finished - started:.1f} s",
    }
    rows.update({k: v for k, v in facts.items() if k not in rows})
    rows.update({str(k): str(v) for k, v in (getattr(config.option, "metadata", None) or [])})  # --metadata KEY VALUE
    return {safe(config, k): safe(config, v) for k, v in rows.items()}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the clock, and empty pytest-metadata's table before anything prints it (``-v``'s header,
    pytest-html's data); put one in place when ``-p no:metadata`` left none (pytest-html needs it)."""
    config = session.config
    config.stash[STARTED] = (time.monotonic(), datetime.datetime.now().astimezone())
    if metadata_key is not None:
        config.stash.setdefault(metadata_key, {}).clear()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The environment, complete, before pytest-html writes the report (it runs last)."""
    if STARTED in session.config.stash:
        session.config.stash[ENVIRONMENT_ROWS] = _environment(session.config, time.monotonic())


# --- the page -------------------------------------------------------------------------------------

# pytest-html's base style is grey (#999) 12 px text; ours is dark and readable. Its script-built
# parts (filters, sortable table) show only when a script ran (the class set by JS_MARK); its
# environment table, run count ("4 tests took 48 ms") and unused outcome filters never show.
STYLE = """<style>
body{color:#1a1a1a;font-size:14px;line-height:1.4}
h2{margin-top:1.4em}
.infra-verdict{font-size:1.3em;padding:.5em .7em;border-radius:4px;margin:.6em 0}
.infra-PASSED{background:#e3f5e1;color:#14501a}.infra-FAILED{background:#fde2e1;color:#7a1209}
.infra-PARTIAL{background:#fff4d6;color:#5c4300}
table.infra-checks,table.infra-env{border-collapse:collapse;margin:.4em 0 1em;color:#1a1a1a}
table.infra-checks{width:100%}
table.infra-checks>thead>tr>th,table.infra-checks>tbody>tr>td,table.infra-env th,table.infra-env td{
border:1px solid #bbb;padding:.45em .6em;text-align:left;vertical-align:top}
table.infra-checks>thead>tr>th,table.infra-env th{background:#f0f0f0}
table.infra-checks td.infra-name{width:22%;font-weight:bold}
table.infra-checks td.infra-result{width:1%;white-space:nowrap}
.infra-warned{font-size:.85em;color:#4a3a00;margin-top:.3em}
.infra-about{font-weight:normal;color:#333;font-size:.9em;margin-top:.3em}
.infra-badge{display:inline-block;white-space:nowrap;padding:.1em .45em;border-radius:3px;font-weight:bold;color:#fff}
.infra-b-passed{background:#1e7b34}.infra-b-failed{background:#b3261e}.infra-b-could-not-check{background:#a34700}
.infra-b-not-run{background:#6b5900}
table.infra-evidence{border-collapse:collapse}
table.infra-evidence th{font-weight:normal;color:#333;text-align:left;padding:0 .8em .15em 0;vertical-align:top;white-space:nowrap}
table.infra-evidence td{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;color:#111;padding:0 0 .15em;word-break:break-word}
.infra-cause,.infra-warning{margin:.4em 0 .1em;padding:.35em .55em;white-space:pre-wrap;border-left:4px solid}
.infra-cause{background:#fdecea;border-color:#b3261e;color:#5c0d07}
.infra-warning{background:#fff6d6;border-color:#a37f00;color:#4a3a00}
table.infra-env th{font-weight:normal;color:#333;white-space:nowrap}
table.infra-env td{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
#environment-header,#environment,.run-count,p.filter,.controls .collapse{display:none}
.logwrapper:not(:has(.log)){display:none}
.filters input[data-test-result=xfailed],.filters span.xfailed,.filters input[data-test-result=xpassed],
.filters span.xpassed,.filters input[data-test-result=rerun],.filters span.rerun,
.filters input[data-test-result=retried],.filters span.retried{display:none}
html:not(.infra-js) .infra-js-only,html:not(.infra-js) .controls,html:not(.infra-js) #results-table{display:none}
#results-table{color:#333;font-size:13px}
#results-table th:last-child,#results-table td.col-links{display:none}
#results-table tbody.error td.col-result,#results-table tbody.skipped td.col-result{font-size:0}
#results-table tbody.error td.col-result::before{content:"Could not check";font-size:13px}
#results-table tbody.skipped td.col-result::before{content:"Not run";font-size:13px}
</style>"""
JS_MARK = '<script>document.documentElement.classList.add("infra-js")</script>'


def _text(value: str) -> str:
    """Escaped text; `backticked` words shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


def _badge(verdict: str) -> str:
    return f'<span class="infra-badge infra-b-{verdict.replace(" ", "-")}">{SHOUTED[verdict]}</span>'


def _label_rows(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in pairs)


def _check_row(result: CheckResult) -> str:
    """One check: name and what it verifies; verdict; evidence, then warnings, then the cause, once."""
    evidence = _label_rows(result.evidence)
    parts = [f'<table class="infra-evidence">{evidence}</table>' if evidence else ""]
    parts += [f'<div class="infra-warning">warning: {html.escape(w)}</div>' for w in result.warnings]
    if result.cause:
        parts.append(f'<div class="infra-cause">{html.escape(result.cause)}</div>')
    about = f'<div class="infra-about">{_text(result.about)}</div>' if result.about else ""
    warned = len(result.warnings)
    warned_note = f'<div class="infra-warned">with {warned} warning{"s" if warned > 1 else ""}</div>' if warned else ""
    return (
        f'<tr><td class="infra-name">{html.escape(result.name)}{about}</td>'
        f'<td class="infra-result">{_badge(result.verdict)}{warned_note}</td><td>{"".join(parts)}</td></tr>'
    )


def _environment_html(rows: dict[str, str]) -> str:
    return f'<h2>Environment</h2><table class="infra-env">{_label_rows(rows.items())}</table>'


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    """The report itself, as static HTML: the verdict, every check, the environment."""
    config = session.config
    results = list(config.stash.get(RESULTS, {}).values())
    parts = [STYLE, JS_MARK]
    if results:
        overall = overall_verdict(config, results, session.exitstatus)
        rows = "".join(_check_row(result) for result in results)
        verdict = html.escape(counts_line(config, results, session.exitstatus))
        parts.append(f'<p class="infra-verdict infra-{overall}"><strong>Audit {overall}</strong>: {verdict}</p>')
        parts.append(
            '<table class="infra-checks"><thead><tr><th>Check</th><th>Result</th>'
            f"<th>Evidence, warnings, cause and fix</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts.append(_environment_html(config.stash.get(ENVIRONMENT_ROWS, {})))
    parts.append('<h2 class="infra-js-only">As pytest ran them (sortable, filterable)</h2>')
    prefix.extend(parts)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_html_report_title(report) -> None:
    """Our title, our words on pytest-html's filters, and its rows closed (the report above says it all)."""
    report.title = f"Infrastructure audit: {safe(report.config, project_identity(report.config)[1])}"
    report.set_data("renderCollapsed", ["all"])
    for outcome, label in (("passed", "passed"), ("failed", "failed"), ("error", NOT_CHECKED), ("skipped", NOT_RUN)):
        report.outcomes[outcome]["label"] = label


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list) -> None:
    cells.insert(1, '<th class="sortable" data-column-type="check">Check</th>')


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report, cells: list) -> None:
    cells.insert(1, f'<td class="col-check">{html.escape(getattr(report, "infra_check", ""))}</td>')


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_html(report, data: list) -> None:
    """A check's evidence and cause are in the table above: its row here keeps only what is not
    (a crash's traceback, captured output)."""
    if getattr(report, "infra_finding", False) or data == ["No log output captured."]:
        data.clear()
