"""The audit's HTML report: one self-contained file a person can attach to a ticket.

A pytest plugin, registered by ``infra_audit.plugin.activate`` only when the audit runs, on top of
``infra_audit.plugin.report``'s one record per check. It names the default report file and writes the
page itself, as static HTML without a script: the verdict, each check with its evidence, warnings
and cause (said once), the environment (what was audited, where, by whom, from which commit), and
the traceback of anything that crashed (a bug in the audit, for its authors). A ticket preview or
a mail client shows all of it; nothing is loaded from beside the file. Its options (``--html``,
``--self-contained-html``, ``--metadata``) are declared by ``infra_audit.plugin.settings``.
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

import infra_audit
from infra_audit.core.dburl import scrub_data
from infra_audit.core.errors import ConfigError
from infra_audit.core.files import write_atomically
from infra_audit.plugin import settings as audit_settings
from infra_audit.plugin.report import (
    ENVIRONMENT,
    RESULTS,
    SECRETS,
    SHOUTED,
    UNWRITTEN,
    WRITTEN,
    CheckResult,
    counts_line,
    overall_verdict,
    project_identity,
    safe,
)

STARTED = pytest.StashKey[tuple[float, datetime.datetime]]()
_WRITTEN = pytest.StashKey[str]()  # the report's address, once written
_PATHS = pytest.StashKey[dict[str, Path]]()  # each report's file by its option, as decided before any check ran
GIT_TIMEOUT_S = 3.0


# --- the default HTML report ------------------------------------------------------------------


def default_html_report(config: pytest.Config) -> None:
    """Write the audit's HTML report to ``<infra_report_dir>/infra-audit-<timestamp>.html`` unless
    told otherwise. Called by ``infra_audit.plugin.activate`` (so only the audit writes it). ``--html`` wins; ``--no-default-report`` or an empty
    ``infra_report_dir`` turn it off; a run from inside another pytest test (the suite's own
    tests) never writes it."""
    option = config.option
    if getattr(option, "infra_html", None) or getattr(option, "help", False) or getattr(option, "version", False):
        return
    if getattr(option, "collectonly", False) or hasattr(config, "workerinput") or "PYTEST_CURRENT_TEST" in os.environ:
        return
    folder = audit_settings.settings(config).report_dir
    if folder is not None and not config.getoption("no_default_report"):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"infra-audit-{stamp}.html"
        for n in range(2, 100):  # two runs within a second keep both reports; a link there is not ours to follow
            if not os.path.lexists(path):
                break
            path = folder / f"infra-audit-{stamp}-{n}.html"
        option.infra_html = str(path)


def check_report_paths(config: pytest.Config) -> None:
    """Refuse, before any check runs, a report that could not be written (a folder, a device or a
    FIFO in its place, no permission, /proc): the report and JUnit would otherwise fail at the very
    end, or hang on a FIFO."""
    reports = (("HTML report", "infra_html"), ("JUnit XML", "xmlpath"), ("Markdown summary", "infra_markdown"))
    for what, option in reports:
        text = getattr(config.option, option, None)
        if not text:
            continue
        try:
            path = _report_path(text)
            config.stash.setdefault(_PATHS, {})[option] = path  # decided once: a link planted later is not followed
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                raise IsADirectoryError(f"{path} is a link that leads to no regular file")
            if path.exists() and not path.is_file():
                raise IsADirectoryError(f"{path} is not a regular file")
            if not path.exists():  # the only sure test is to try (permissions, /proc, read-only mounts)
                path.touch(exist_ok=False)
                path.unlink()
            elif not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                raise PermissionError(f"{path} or its folder is not writable")
        except RuntimeError:  # ~nosuchuser: expanduser cannot tell whose home
            raise pytest.UsageError(f"cannot write the {what} to {text}: no such user's home folder") from None
        except OSError as exc:
            raise pytest.UsageError(
                f"cannot write the {what} to {text}: {exc.strerror or exc}: choose another path "
                "(--report-dir, --html, --junitxml or --markdown)"
            ) from None


def _report_path(text: str) -> Path:
    """A report's file: the path given, ``~`` and ``$VARS`` expanded, and through a symlink only to an
    existing regular file (a dangling or looping link stays a link, which is refused)."""
    path = Path(os.path.expandvars(text)).expanduser().absolute()
    return path.resolve() if path.is_symlink() and path.is_file() else path


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


def environment(config: pytest.Config, finished: float) -> dict[str, str]:
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
        "Audit suite": f"infra-audit {infra_audit.__version__} (Python {platform.python_version()})",
        "Started": started_at.strftime("%Y-%m-%d %H:%M:%S %z"),
        "Duration": f"{finished - started:.1f} s",
    }
    rows.update({k: v for k, v in facts.items() if k not in rows})
    rows.update({str(k): str(v) for k, v in (getattr(config.option, "metadata", None) or [])})  # --metadata KEY VALUE
    return {safe(config, k): safe(config, v) for k, v in rows.items()}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STARTED] = (time.monotonic(), datetime.datetime.now().astimezone())
    _scrub_pytest_metadata(session.config)


def _scrub_pytest_metadata(config: pytest.Config) -> None:
    """Where a project loads pytest-html, its report is written beside ours: its Environment table is
    pytest-metadata's (CI variables, ``--metadata`` pairs), read at its own (trylast) session start.
    Scrubbed here first, as ours is; the check's texts it shows are scrubbed by the report plugin."""
    key = getattr(config.pluginmanager.get_plugin("metadata"), "metadata_key", None)
    if key is not None and key in config.stash:
        table = config.stash[key]
        table.update({name: scrub_data(value, config.stash.get(SECRETS, ())) for name, value in table.items()})


# --- the page -------------------------------------------------------------------------------------

STYLE = """<style>
body{font-family:Helvetica,Arial,sans-serif;color:#1a1a1a;font-size:14px;line-height:1.4;margin:1.2em 1.6em;max-width:90em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.4em}
.infra-generated{color:#444;margin:.2em 0 .8em}
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
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
details.infra-crash{margin:.4em 0}details.infra-crash summary{cursor:pointer;font-weight:bold}
details.infra-crash pre{background:#f6f6f6;border:1px solid #ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap}
</style>"""


def _text(value: str) -> str:
    """Escaped text; `backticked` words shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


def _badge(verdict: str) -> str:
    return f'<span class="infra-badge infra-b-{verdict.replace(" ", "-")}">{SHOUTED[verdict]}</span>'


def _label_rows(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in pairs)


def _check_row(result: CheckResult, crashed: bool) -> str:
    """One check: name and what it verifies; verdict; evidence, then warnings, then the cause, once."""
    evidence = _label_rows(result.evidence)
    parts = [f'<table class="infra-evidence">{evidence}</table>' if evidence else ""]
    parts += [f'<div class="infra-warning">warning: {html.escape(w)}</div>' for w in result.warnings]
    if result.cause:
        where = " (a crash: its traceback is under Crashes, below)" if crashed else ""
        parts.append(f'<div class="infra-cause">{html.escape(result.cause)}{where}</div>')
    about = f'<div class="infra-about">{_text(result.about)}</div>' if result.about else ""
    warned = len(result.warnings)
    warned_note = f'<div class="infra-warned">with {warned} warning{"s" if warned > 1 else ""}</div>' if warned else ""
    return (
        f'<tr><td class="infra-name">{html.escape(result.name)}{about}</td>'
        f'<td class="infra-result">{_badge(result.verdict)}{warned_note}</td><td>{"".join(parts)}</td></tr>'
    )


def _environment_html(rows: dict[str, str]) -> str:
    return f'<h2>Environment</h2><table class="infra-env">{_label_rows(rows.items())}</table>'


def _crash_html(crashes: list[tuple[str, str]]) -> str:
    """What crashed, each traceback folded (it is for the audit's authors, not the ticket's reader)."""
    if not crashes:
        return ""
    items = "".join(
        f'<details class="infra-crash"><summary>{html.escape(what)}</summary><pre>{html.escape(text)}</pre></details>'
        for what, text in crashes
    )
    return (
        f"<h2>Crashes: bugs in the audit, with their tracebacks</h2><p>Report these to the audit's authors; "
        f"the checks above say what they could and could not check.</p>{items}"
    )


def _crashes(session: pytest.Session) -> list[tuple[str, str]]:
    """pytest's failures that are not findings (a check that crashed, a fixture's teardown, a file
    that failed to import), with their traceback and captured output, scrubbed."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    found = []
    for report in (r for key in ("failed", "error") for r in stats.get(key, ())):
        if getattr(report, "infra_finding", False) or report.longrepr is None:
            continue
        when = getattr(report, "when", None) or "collect"
        text = "\n\n".join([str(report.longrepr), *(f"--- {title} ---\n{body}" for title, body in report.sections)])
        found.append((safe(session.config, f"{report.nodeid or 'collection'} ({when})"), safe(session.config, text)))
    return found


def page(session: pytest.Session) -> str:
    """The whole report: title, verdict, every check, what crashed, the environment."""
    config = session.config
    results = list(config.stash.get(RESULTS, {}).values())
    crashes = _crashes(session)
    title = html.escape(f"Infrastructure audit: {safe(config, project_identity(config)[1])}")
    started_at = config.stash[STARTED][1]
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{STYLE}</head><body>',
        f"<h1>{title}</h1>",
        f'<p class="infra-generated">Audited on {started_at:%Y-%m-%d at %H:%M:%S %z}.</p>',
    ]
    overall = overall_verdict(config, results, session.exitstatus)
    verdict = html.escape(counts_line(config, results, session.exitstatus))
    parts.append(f'<p class="infra-verdict infra-{overall}"><strong>Audit {overall}</strong>: {verdict}</p>')
    if results:
        rows = "".join(
            _check_row(result, any(f"::{result.test} (" in what for what, _ in crashes)) for result in results
        )
        parts.append(
            '<table class="infra-checks"><thead><tr><th>Check</th><th>Result</th>'
            f"<th>Evidence, warnings, cause and fix</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts.append(_crash_html(crashes))
    parts.append(_environment_html(environment(config, time.monotonic())))
    parts.append("</body></html>\n")
    return "".join(parts)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the report once the run's verdict is final (``report`` may fail a run with a skipped
    check), whole or not at all; one that cannot be written fails the run and says why."""
    config = session.config
    text = getattr(config.option, "infra_html", None)
    if not text or config.option.collectonly:
        return
    try:
        path = report_path(config, "infra_html")
        if STARTED not in config.stash or path is None:  # registered after the session began
            raise RuntimeError("the audit's report started late: run it as `pytest infra_tests ...`")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, page(session).encode("utf-8", "backslashreplace"))
    except Exception as exc:  # noqa: BLE001 - a disk that filled up, or a bug: one line and a failed run, not a traceback
        why = (
            exc.strerror
            if isinstance(exc, OSError) and exc.strerror
            else str(exc)
            if isinstance(exc, RuntimeError)
            else f"{type(exc).__name__}: {exc}"
        )
        config.stash[UNWRITTEN] = safe(config, f"the HTML report was not written to {text}: {why}")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        config.stash[_WRITTEN] = path.as_uri()
        config.stash.setdefault(WRITTEN, []).append(f"HTML report: {path.as_uri()}")


def report_path(config: pytest.Config, option: str) -> Path | None:
    """The file a report option (``infra_html``, ``infra_markdown``) names, as decided before any check ran."""
    return config.stash.get(_PATHS, {}).get(option)


def written_report(config: pytest.Config) -> Path | None:
    """The HTML report this run wrote, if it did."""
    return report_path(config, "infra_html") if _WRITTEN in config.stash else None


def pytest_terminal_summary(terminalreporter) -> None:
    written = terminalreporter.config.stash.get(_WRITTEN, None)
    if written is not None:  # pytest-html's line, where CI jobs look for it; the audit's summary repeats it last
        terminalreporter.write_sep("-", f"Generated html report: {written}")
