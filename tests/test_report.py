"""The audit's reports as their readers get them: the HTML file attached to a ticket, the JUnit XML a
CI gate reads, and the terminal. Real runs (a subprocess against a real, seeded PostgreSQL); the
tests open the files the run wrote and read them back."""

from __future__ import annotations

import datetime
import getpass
import html
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

import infra_audit
from tests.support import REPO, AuditRun, audit_command, clean_env, write_env

HUMAN_NAMES = {
    "test_root_is_clean": "root is clean",
    "test_env_has_db_url": ".env has DB_URL",
    "test_db_reachable_within_3s": "database reachable within 3 s",
    "test_row_counts_nonzero": "row counts non-zero",
    "test_data_is_fresh": "data is fresh",
    "test_row_counts_not_shrinking": "row counts not shrinking",
    "test_required_paths_present": "required paths present",
    "test_health_check_passes": "health check passes",
}
DB_DEPENDENT = (
    "test_row_counts_nonzero",
    "test_data_is_fresh",
    "test_row_counts_not_shrinking",
    "test_health_check_passes",
)
DEPENDENT_NAMES = ("row counts non-zero", "data is fresh", "row counts not shrinking", "health check passes")
NOT_REACHED = 'could not check: the database was not reached: see "database reachable within 3 s"'


def _text(fragment: str) -> str:
    """HTML as a reader sees it: blocks on their own lines, table cells apart, no tags, spaces collapsed."""
    fragment = re.sub(r"</?(p|li|ul|div|tr|table|br)\b[^>]*>", "\n", fragment)
    fragment = re.sub(r"</?t[dh]\b[^>]*>", " ", fragment)
    lines = (" ".join(line.split()) for line in html.unescape(re.sub(r"<[^>]+>", "", fragment)).splitlines())
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class Check:
    """One row of the report's own (static) table."""

    verdict: str
    details: str  # what it verifies, evidence, warnings, cause: as text


@dataclass(frozen=True)
class HtmlReport:
    """The page as written (static HTML: what a browser, a mail client and a ticket preview all show)."""

    text: str

    @classmethod
    def read(cls, path: Path) -> HtmlReport:
        return cls(path.read_text(encoding="utf-8"))

    @property
    def crashes(self) -> str:
        """The folded tracebacks of what crashed (bugs in the audit), as text; empty when nothing did."""
        found = re.search(r"<h2>Crashes:.*?(?=<h2>)", self.text, re.S)
        return _text(found.group(0)) if found else ""

    @property
    def checks(self) -> dict[str, Check]:
        """check name -> its verdict and details, from the static table."""
        table = re.search(r'<table class="infra-checks">(.*?)</tbody></table>', self.text, re.S)
        assert table, "no static table of checks"
        found = {}
        for row in table.group(1).split('<td class="infra-name">')[1:]:
            name = _text(re.split(r"<div|</td>", row, maxsplit=1)[0])
            verdict = _text(re.search(r'<span class="infra-badge[^"]*">(.*?)</span>', row).group(1))
            found[name] = Check(verdict, _text(row))
        return found

    @property
    def environment(self) -> dict[str, str]:
        table = re.search(r'<table class="infra-env">(.*?)</table>', self.text, re.S)
        assert table, "no static environment table"
        return {_text(k): _text(v) for k, v in re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table.group(1))}

    @property
    def overview(self) -> str:
        """The verdict line above the checks, as text."""
        return _text(re.search(r'<p class="infra-verdict[^"]*">(.*?)</p>', self.text, re.S).group(1))


def assert_report_path_said_first_and_last(run: AuditRun, path: Path) -> None:
    """pytest-html's line where CI jobs look for it, and again at the end, right under the verdict line."""
    lines = run.output.splitlines()
    assert run.output.count(str(path)) == 2, run.output
    assert lines[-2] == f"HTML report: {path.as_uri()}" and lines[-3].startswith("audit "), lines[-3:]


def junit_properties(run: AuditRun) -> dict[str, dict[str, str]]:
    """test name -> its JUnit properties."""
    return {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.fromstring(run.junit).iter("testcase")
    }


def assert_no_secret(run: AuditRun, report: HtmlReport | None, *secret_values: str) -> None:
    for secret in secret_values:
        assert secret not in run.output, "password leaked to the terminal"
        assert secret not in run.junit, "password leaked to the JUnit XML"
        if report is not None:
            assert secret not in report.text and secret not in html.unescape(report.text), "password leaked to the HTML"


def audited_before(run_audit, project: Path, tmp_path: Path) -> str:
    """A passing audit of the project on record: the ``--history`` flag for the next run, which then
    compares row counts (a first audit warns that it had nothing to compare with)."""
    flag = f"--history={tmp_path / 'earlier-audits.jsonl'}"
    assert run_audit(project, flag, "--no-default-report").exit_code == 0
    return flag


def audit_with_html(run_audit, project: Path, tmp_path: Path, *args: str, env=None) -> tuple[AuditRun, HtmlReport]:
    path = tmp_path / "report" / "audit.html"
    run = run_audit(project, "--html", str(path), "--self-contained-html", *args, env=env)
    assert path.is_file(), run.output
    return run, HtmlReport.read(path)


ENVIRONMENT_ROWS = (
    "Project",
    "Project root",
    "Git commit",
    "Host",
    "OS user",
    "Database",
    "PostgreSQL server",
    "Audit suite",
    "Started",
    "Duration",
)


def _git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def python_pytest(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest ARGS`` as a user types it, in ``cwd`` (this repository unless told)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_healthy_report_is_the_proof_for_the_ticket(project, target, run_audit, tmp_path):
    write_env(project, f"DB_URL={target.url}\n")
    (project / ".env").chmod(0o600)
    (project / ".gitignore").write_text(".env\n")
    _git(project, "init", "-q", "-b", "audited-branch")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "the audited commit")
    commit = _git(project, "rev-parse", "HEAD")
    run, report = audit_with_html(run_audit, project, tmp_path, audited_before(run_audit, project, tmp_path))
    assert run.exit_code == 0, run.output

    assert "<title" in report.text and "Infrastructure audit: project" in report.text
    env = report.environment
    assert set(ENVIRONMENT_ROWS) <= set(env), env
    assert env["Project root"] == str(project)
    assert env["Git commit"] == commit
    assert env["Git branch"] == "audited-branch"
    assert env["Uncommitted changes"] == "no"
    assert env["Host"] == socket.gethostname() and env["OS user"] == getpass.getuser()
    assert env["Database"] == target.url.replace(target.role.password, "***")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", env["PostgreSQL server"]), env
    assert env["Audit suite"].startswith(f"infra-audit {infra_audit.__version__} ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", env["Started"]), env
    assert re.fullmatch(r"\d+\.\d s", env["Duration"]), env
    assert not {"Packages", "Plugins", "Platform"} & set(env), "pytest-metadata's rows must not show"

    checks = report.checks
    assert sorted(checks) == sorted(HUMAN_NAMES.values())
    assert {check.verdict for check in checks.values()} == {"PASSED"}
    assert report.overview == "Audit PASSED: 8 passed"
    evidence = {
        ".env has DB_URL": f"source {project / '.env'} (DB_URL)",
        "database reachable within 3 s": "connect time (connect + SELECT 1) ",
        "row counts non-zero": "market_data 120 rows (exact count)",
        "root is clean": "artifacts none",
        "required paths present": "tools/cleanup_root.py present",
        "health check passes": "exit code 0",
    }
    for name, line in evidence.items():
        assert line in checks[name].details, checks[name].details
    assert "assets 4 rows (exact count)" in checks["row counts non-zero"].details
    ran = f"command python3 {REPO / 'tools' / 'health_check.py'} --root {project}"  # the audit's own, not the project's
    assert ran in checks["health check passes"].details, checks["health check passes"].details
    assert "warning" not in checks[".env has DB_URL"].details, "a 0600 .env is fine"
    assert "needs the database" not in report.text and "`db`" not in report.text, "no code jargon"
    assert "Traceback" not in report.text and report.crashes == ""
    assert "<script" not in report.text and "<link" not in report.text, "one static file: nothing to run or fetch"

    properties = junit_properties(run)
    for test, name in HUMAN_NAMES.items():
        assert properties[test]["check"] == name
        assert properties[test]["check result"] == "passed"
    assert properties["test_row_counts_nonzero"]["evidence: public.market_data"] == "120 rows (exact count)"
    assert re.search(r"PASSED +row counts non-zero\n +public.market_data: 120 rows \(exact count\)", run.output)
    assert_report_path_said_first_and_last(run, tmp_path / "report" / "audit.html")
    assert not (tmp_path / "report" / "assets").exists(), "self-contained: nothing beside the file"
    assert_no_secret(run, report, target.role.password)


def test_uncommitted_changes_and_a_missing_git_are_reported_not_fatal(project, run_audit, tmp_path):
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "base")
    (project / "docs" / "new.md").write_text("not committed\n")
    (project / "tools" / "cleanup_root.py").write_text("# changed\n")
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert report.environment["Uncommitted changes"] == "yes: 2 path(s) changed or untracked"

    no_git = clean_env(PATH=str(tmp_path / "empty-bin"))  # no git on PATH: the audit still runs and says so
    (tmp_path / "empty-bin").mkdir()
    run, report = audit_with_html(run_audit, project, tmp_path, env=no_git)
    assert run.exit_code == 1 and "Traceback" not in run.output, run.output
    assert report.environment["Git commit"] == "unknown: git is not installed"


def test_refused_connection_is_said_once_per_check(project, run_audit, tmp_path, closed_port):
    """Every check that the refused connection stopped names it once, in the HTML and in the terminal."""
    port = closed_port
    write_env(project, f"DB_URL=postgresql://trader:pw-{secrets.token_hex(6)}@127.0.0.1:{port}/mt5_crs\n")
    (project / ".env").chmod(0o600)
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output
    refused = f"connection refused by 127.0.0.1:{port}"

    checks = report.checks
    verdicts = {name: check.verdict for name, check in checks.items()}
    assert verdicts == {
        ".env has DB_URL": "PASSED",
        "database reachable within 3 s": "FAILED",
        "row counts non-zero": "COULD NOT CHECK",
        "data is fresh": "COULD NOT CHECK",
        "row counts not shrinking": "COULD NOT CHECK",
        "root is clean": "PASSED",
        "required paths present": "PASSED",
        "health check passes": "COULD NOT CHECK",
    }
    for name in DEPENDENT_NAMES:
        assert refused not in checks[name].details, "said once, by the check it belongs to"
        assert NOT_REACHED in checks[name].details, checks[name].details
    assert checks["database reachable within 3 s"].details.count(refused) == 1
    assert report.text.count(refused) == 1, "the whole file: once"
    assert report.overview == "Audit FAILED: 1 failed, 4 could not check, 3 passed"
    assert report.environment["PostgreSQL server"] == "unknown: the database was not reached"
    assert report.crashes == "", "a finding is no crash"

    assert run.output.count(refused) == 1, run.output
    assert "= FAILURES =" not in run.output and "= ERRORS =" not in run.output
    assert re.search(r"^FAILED \S+::test_db_reachable_within_3s$", run.output, re.M), "verdict line, no cause"
    assert "ERROR" not in run.output, "a check that could not look is no pytest error"
    verdict, said_last, closing = run.output.splitlines()[-3:]
    assert verdict == "audit FAILED: 1 failed, 4 could not check, 3 passed"
    assert re.fullmatch(r"=+ 1 failed, 3 passed, 4 could not check in [\d.]+s =+", closing), "the same counts"
    assert_report_path_said_first_and_last(run, tmp_path / "report" / "audit.html")
    properties = junit_properties(run)
    assert properties["test_row_counts_nonzero"]["cause and fix"] == NOT_REACHED
    assert refused in run.message("test_db_reachable_within_3s"), "JUnit keeps the cause for CI"


def test_wrong_password_report_separates_failed_from_could_not_check(project, target, run_audit, tmp_path):
    wrong = "pw-wrong-" + secrets.token_urlsafe(12)
    write_env(project, f"DB_URL={target.url.replace(target.role.password, wrong)}\n")
    (project / ".env").chmod(0o600)
    (project / "tools" / "cleanup_root.py").unlink()
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output

    checks = report.checks
    auth = f"authentication failed for user '{target.role.name}'"
    assert checks["database reachable within 3 s"].verdict == "FAILED"
    assert "check the user name and credentials in DB_URL" in checks["database reachable within 3 s"].details
    for test in DB_DEPENDENT:
        check = checks[HUMAN_NAMES[test]]
        assert check.verdict == "COULD NOT CHECK"
        assert auth not in check.details and NOT_REACHED in check.details, "the cause once, a pointer here"
    assert checks["required paths present"].verdict == "FAILED"
    assert "tools/cleanup_root.py MISSING" in checks["required paths present"].details
    assert "missing from " in checks["required paths present"].details
    assert report.overview == "Audit FAILED: 2 failed, 4 could not check, 2 passed"
    for check in checks.values():
        assert "Traceback" not in check.details and not re.search(r"\.py:\d+", check.details)

    assert {test: run.outcome(test) for test in DB_DEPENDENT} == dict.fromkeys(DB_DEPENDENT, "error")
    properties = junit_properties(run)
    for test in DB_DEPENDENT:
        assert properties[test]["check result"] == "could not check"
        assert properties[test]["cause and fix"] == NOT_REACHED
        assert "could not check: " in run.message(test)
    assert properties["test_db_reachable_within_3s"]["check result"] == "failed"
    assert re.search(r"COULD NOT CHECK +health check passes\n +" + re.escape(NOT_REACHED), run.output)
    assert run.output.count(auth) == 1, "the cause once, by the check it belongs to"
    assert "audit FAILED: 2 failed, 4 could not check, 2 passed" in run.output
    assert_no_secret(run, report, target.role.password, wrong)


def test_missing_db_url_is_not_a_failed_connection(project, run_audit, tmp_path):
    """No DB_URL, no attempt: "database reachable" could not check; it did not fail "after 0.000 s"."""
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output
    reachable = report.checks["database reachable within 3 s"]
    assert reachable.verdict == "COULD NOT CHECK"
    assert 'could not check: no usable DB_URL: see ".env has DB_URL"' in reachable.details
    assert "failed after" not in report.text and "failed after" not in run.output
    assert re.search(
        r'COULD NOT CHECK +database reachable within 3 s\n +could not check: no usable DB_URL: see "\.env', run.output
    )
    assert run.output.count("DB_URL is not set") == 1, "the cause once, by the .env check"
    assert junit_properties(run)["test_db_reachable_within_3s"]["check result"] == "could not check"


def test_readable_env_file_passes_with_a_visible_warning(project, target, run_audit, tmp_path):
    write_env(project, f"DB_URL={target.url}\n")
    (project / ".env").chmod(0o644)
    run, report = audit_with_html(run_audit, project, tmp_path, audited_before(run_audit, project, tmp_path))
    assert run.exit_code == 0, run.output
    warning = ".env is readable by other users (mode 0644), and it holds the password: chmod 600 .env"
    check = report.checks[".env has DB_URL"]
    assert check.verdict == "PASSED" and "with 1 warning" in check.details and f"warning: {warning}" in check.details
    assert report.overview == "Audit PASSED: 8 passed (1 warning)"
    assert re.search(rf"PASSED +\.env has DB_URL\n(.*\n)* +warning: {re.escape(warning)}\n", run.output)
    assert "audit PASSED: 8 passed (1 warning)" in run.output
    assert junit_properties(run)["test_env_has_db_url"]["warning"] == warning
    assert_no_secret(run, report, target.role.password)


def test_missing_table_report_names_the_table_and_the_fix(project, target, run_audit, tmp_path):
    target.admin.execute("DROP TABLE assets CASCADE")
    write_env(project, f"DB_URL={target.url}\n")
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output
    check = report.checks["row counts non-zero"]
    assert check.verdict == "FAILED"
    assert "market_data 120 rows (exact count)" in check.details
    assert "assets FAILED (missing)" in check.details
    assert (
        f"table 'assets' does not exist in database '{target.dbname}'" in check.details and "create it" in check.details
    )
    assert report.checks["database reachable within 3 s"].verdict == "PASSED"
    assert junit_properties(run)["test_row_counts_nonzero"]["evidence: assets"] == "FAILED (missing)"
    assert_no_secret(run, report, target.role.password)


def test_a_crashing_check_keeps_its_traceback_and_the_findings_stay_quiet(project, run_audit, tmp_path):
    """A crash is a bug in the audit: pytest's traceback is what to report. The findings beside it
    still say their cause only in the audit summary."""
    (tmp_path / "crash_root_check.py").write_text(
        "def pytest_runtest_call(item):\n"
        "    if item.name == 'test_root_is_clean':\n"
        "        raise RuntimeError('boom: a bug in the audit')\n"
    )
    run, report = audit_with_html(
        run_audit, project, tmp_path, "-p", "crash_root_check", env=clean_env(PYTHONPATH=str(tmp_path))
    )
    assert report.checks["root is clean"].verdict == "FAILED"
    assert (
        "RuntimeError: boom: a bug in the audit (a crash: its traceback is under Crashes, below)"
        in report.checks["root is clean"].details
    )
    assert "under Crashes" not in report.checks[".env has DB_URL"].details, "a finding is no crash"
    assert "test_root_is_clean (call)" in report.crashes and "crash_root_check.py:3" in report.crashes, (
        "the traceback, below"
    )
    assert "DB_URL is not set" not in report.crashes, "findings are no crashes"
    assert "= FAILURES =" in run.output and "crash_root_check.py:3" in run.output
    assert run.output.count("DB_URL is not set") == 1, "the summary's one, and no more"


def test_mistyped_flag_names_the_nearest_one(project, run_audit):
    run = run_audit(project, "--tabels", "market_data")
    assert run.exit_code == 4
    assert "unrecognized flag --tabels: did you mean --tables?" in run.output
    run = run_audit(project, "--connect-timout=3")
    assert run.exit_code == 4 and "did you mean --connect-timeout?" in run.output


def _reports_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("infra-audit-*.html")) if folder.exists() else []


def test_default_report_is_written_only_by_a_real_audit_run(project, run_audit, tmp_path):
    """No database needed: the report is written whatever the checks find."""
    folder = tmp_path / "reports"
    standalone = {k: v for k, v in clean_env().items() if k != "PYTEST_CURRENT_TEST"}

    run = run_audit(project, f"--report-dir={folder}", "--connect-timeout=5", env=standalone)
    assert run.exit_code == 1, run.output
    (written,) = _reports_in(folder)
    assert re.fullmatch(r"infra-audit-\d{8}-\d{6}\.html", written.name)
    assert_report_path_said_first_and_last(run, written)
    report = HtmlReport.read(written)
    assert "<style" in report.text and "<link " not in report.text, "the default report is self-contained"
    assert "database reachable within 5 s" in report.checks
    written.unlink()

    for off in ([f"--report-dir={folder}", "--no-default-report"], ["-o", "infra_report_dir="]):
        run = run_audit(project, *off, env=standalone)
        assert run.exit_code == 1 and "html report" not in run.output
    run = run_audit(project, f"--report-dir={folder}")  # from inside a pytest test, as here: never
    assert run.exit_code == 1 and "html report" not in run.output
    assert _reports_in(folder) == []


def test_environment_table_holds_no_ci_variables(project, run_audit, tmp_path):
    """pytest-html once leaked tokens through pytest-metadata's CI variables (pytest-html #233)."""
    token = "tok-" + secrets.token_urlsafe(12)
    env = clean_env(BUILD_URL=f"https://bot:{token}@ci.example/job/1", GITLAB_USER_EMAIL="dev@example.com", CI="true")
    write_env(project, f"DB_URL=postgresql://app:{token}@127.0.0.1:1/app\n")
    _git(project, "init", "-q", "-b", f"try-{token}")  # a fact from outside the audit, scrubbed like the rest
    run, report = audit_with_html(run_audit, project, tmp_path, "--metadata", "Ticket", "#044", env=env)
    assert report.environment["Ticket"] == "#044"
    assert report.environment["Git branch"] == "try-***"
    assert report.environment["Database"] == "postgresql://app:***@127.0.0.1:1/app"
    assert not {"BUILD_URL", "GITLAB_USER_EMAIL", "CI"} & set(report.environment)
    assert "BUILD_URL" not in report.text and "GITLAB_USER_EMAIL" not in report.text
    assert "dev@example.com" not in report.text
    assert_no_secret(run, report, token)


def test_a_skipped_check_fails_the_run(project, run_audit, tmp_path):
    (tmp_path / "skip_root_check.py").write_text(
        "import pytest\n\n"
        "def pytest_runtest_setup(item):\n"
        "    if item.name == 'test_root_is_clean':\n"
        "        pytest.skip('skipped on purpose')\n"
    )
    env = clean_env(PYTHONPATH=str(tmp_path))
    run = run_audit(project, "-p", "skip_root_check", "-k", "test_root_is_clean", env=env)
    assert run.outcome("test_root_is_clean") == "skipped"
    assert run.exit_code == 1, "a check that did not run must not let the gate pass"
    assert junit_properties(run)["test_root_is_clean"]["check result"] == "not run"
    assert re.search(r"NOT RUN +root is clean", run.output)
    assert "audit FAILED: 1 not run" in run.output


@pytest.mark.parametrize(
    ("interrupted", "said", "stop"),
    [
        (
            "test_required_paths_present",
            "; interrupted before the audit finished; 2 of the audit's checks did not run: required paths present, health check passes",
            (signal.SIGINT,),
        ),
        (
            "test_env_has_db_url",
            "Audit FAILED: no check ran; interrupted before the audit finished; 8 of the audit's checks did not run: .env has DB_URL,",
            (signal.SIGINT,),
        ),
        (
            "test_required_paths_present",
            "; interrupted before the audit finished; 2 of the audit's checks did not run",
            (signal.SIGTERM,),
        ),
        (
            "test_required_paths_present",
            "; interrupted before the audit finished; 2 of the audit's checks did not run",
            (signal.SIGTERM, signal.SIGTERM),
        ),
    ],
    ids=[
        "half-way",
        "in the first check",
        "SIGTERM, as a CI job cancelled or timed out",
        "two SIGTERMs, as a group kill and its forwarder send",
    ],
)
def test_ctrl_c_leaves_a_report_that_says_it_was_interrupted(project, tmp_path, interrupted, said, stop):
    """An audit stopped half-way is no verdict: its report says so, and names the checks that did not run.

    The signal is sent from inside the check it interrupts (a second one while the first is written up),
    so it lands there however long a loaded machine takes to start the audit: no clock in the test."""
    (tmp_path / "signal_in_check.py").write_text(
        "import os, signal\n\n"
        "def pytest_runtest_call(item):\n"
        f"    if item.name == {interrupted!r}:\n"
        f"        os.kill(os.getpid(), {int(stop[0])})\n\n"
        "def pytest_keyboard_interrupt(excinfo):\n"
        f"    for each in {[int(each) for each in stop[1:]]!r}:\n"
        "        os.kill(os.getpid(), each)\n"
    )
    path = tmp_path / "audit.html"
    command = audit_command(
        project, "-p", "signal_in_check", f"--html={path}", f"--history={tmp_path / 'history.jsonl'}"
    )
    audit = subprocess.run(
        command,
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = audit.stdout
    assert audit.returncode == 2, output
    overview = HtmlReport.read(path).overview
    assert overview.startswith("Audit FAILED: ") and said in overview, overview
    assert "not selected" not in overview and "interrupted before the audit finished" in output
    assert "Traceback" not in output


def test_a_check_the_user_adds_is_reported_like_the_built_in_ones(project, tmp_path):
    """A test dropped into infra_tests/ without a marker gets a name, a verdict and a cause in the summary
    and in JUnit (it once showed only as "pytest ended with exit code 1"), and a run that leaves it out says so."""
    checks = tmp_path / "checks" / "infra_tests"
    shutil.copytree(REPO / "infra_tests", checks, ignore=shutil.ignore_patterns("__pycache__"))
    (checks / "test_backups.py").write_text(
        "def test_backups_are_recent():\n"
        '    """The nightly backup ran."""\n'
        '    assert False, "no backup since 2026-12-01"\n'
    )

    def run(*args: str) -> AuditRun:
        junit = tmp_path / f"junit-{len(args)}.xml"
        done = python_pytest(
            str(checks),
            "-c",
            str(REPO / "pytest.ini"),
            f"--rootdir={REPO}",
            f"--project-root={project}",
            "--no-default-report",
            f"--junitxml={junit}",
            f"--history={tmp_path / 'history.jsonl'}",
            *args,
        )
        return AuditRun(done.returncode, done.stdout + done.stderr, junit.read_text(), {}, 0.0)

    audit = run()
    assert audit.exit_code == 1
    assert re.search(r"^FAILED +backups are recent\n +AssertionError: no backup since 2026-12-01$", audit.output, re.M)
    assert "pytest ended with exit code" not in audit.output, audit.output
    properties = junit_properties(audit)["test_backups_are_recent"]
    assert (properties["check"], properties["check result"]) == ("backups are recent", "failed")
    assert "no backup since 2026-12-01" in properties["cause and fix"]
    partial = run("-k", "not backups")
    assert "not run (not selected): backups are recent" in partial.output, partial.output


def test_verdict_badges_need_no_emoji_font():
    """Most servers and CI images have no emoji font: a badge must be plain text, or it shows as an empty box."""
    from infra_audit.plugin import html as report_html
    from infra_audit.plugin.report import SHOUTED

    for verdict, shouted in SHOUTED.items():
        badge = report_html._badge(verdict)
        assert badge.isascii() and f">{shouted}</span>" in badge, badge


def test_help_and_usage_errors_name_the_command_typed():
    """`python -m pytest --help` said `usage: __main__.py`."""
    typed = shlex.join([sys.executable, "-m", "pytest"])
    for args, stream in ((["--help"], "stdout"), (["--no-such-flag"], "stderr")):
        done = python_pytest("infra_tests", *args)
        said = getattr(done, stream)
        assert f"usage: {typed} [options]" in said and "__main__.py" not in said, said


def test_a_run_that_is_not_the_audit_keeps_pytests_usage_line(tmp_path):
    """The installed plugin changes nothing of another project's run: its --help is pytest's own."""
    (tmp_path / "test_theirs.py").write_text("def test_theirs():\n    pass\n")
    done = python_pytest("--help", cwd=tmp_path)
    assert done.returncode == 0 and "usage: __main__.py [options]" in done.stdout, done.stdout + done.stderr


HOLD = """\
import os, signal, sys, time
import pytest

SIGNALS = {signal.SIGTERM, signal.SIGINT}
MOMENT = os.environ["HOLD_AT"]


def hold():
    # Signals held back, say where the run is, and wait until the test's signal is pending: it is
    # delivered here, on release, at exactly this moment of the run.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    print(f"holding {MOMENT}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 120
    while not SIGNALS & signal.sigpending() and time.monotonic() < deadline:
        time.sleep(0.01)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def pytest_unconfigure(config):
    if MOMENT == "after the verdict":
        hold()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    if MOMENT == "after the session":  # added before the audit's own: runs after it
        config.add_cleanup(hold)
"""


@pytest.mark.parametrize("moment", ["after the verdict", "after the session"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_after_the_verdict_is_exit_2_without_a_traceback(project, tmp_path, moment, stop):
    """Once the verdict is out, SIGTERM or Ctrl-C still ends the run as the README promises: exit 2,
    no KeyboardInterrupt traceback (it once escaped pytest, exit 130, in 4 of 13 tries)."""
    (tmp_path / "hold_at.py").write_text(HOLD)
    command = audit_command(project, "-p", "hold_at", "--no-default-report", f"--history={tmp_path / 'history.jsonl'}")
    standalone = {
        k: v for k, v in clean_env(PYTHONPATH=str(tmp_path), HOLD_AT=moment).items() if k != "PYTEST_CURRENT_TEST"
    }  # as a user starts it, not from inside a test
    audit = subprocess.Popen(
        command, cwd=REPO, env=standalone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output = ""
        for line in audit.stdout:  # until the run says it holds (or ends without getting there)
            output += line
            if line.startswith("holding"):
                audit.send_signal(stop)
                break
        rest, _ = audit.communicate(timeout=120)
    finally:
        audit.kill()
    output += rest
    assert f"holding {moment}" in output and "audit FAILED: " in output, output
    assert audit.returncode == 2, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


def test_a_report_that_cannot_be_written_fails_the_run(project, target, run_audit, tmp_path):
    """Checked at the start, the folder can still go before the end (a full disk, a clean-up): the
    CI gate asked for the report, so a green run without it would be a false green."""
    folder = tmp_path / "reports"
    (tmp_path / "lose_the_folder.py").write_text(
        "import pathlib, shutil\nimport pytest\n\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_sessionfinish(session):\n"
        f"    shutil.rmtree({str(folder)!r})\n"
        f"    pathlib.Path({str(folder)!r}).write_text('now a file')\n"
    )
    write_env(project, f"DB_URL={target.url}\n")
    (project / ".env").chmod(0o600)
    run = run_audit(
        project,
        audited_before(run_audit, project, tmp_path),
        "-p",
        "lose_the_folder",
        f"--html={folder / 'audit.html'}",
        env=clean_env(PYTHONPATH=str(tmp_path)),
    )
    assert run.exit_code == 1, run.output
    said = f"audit FAILED: 8 passed; the HTML report was not written to {folder / 'audit.html'}: File exists"
    assert said in run.output and "Traceback" not in run.output
    assert "Generated html report" not in run.output


@pytest.mark.parametrize("option", ["--html", "--junitxml"])
@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_what_is_no_report_file_in_its_place_is_refused_and_left_alone(project, run_audit, tmp_path, option, kind):
    """A device or a FIFO is no report file (replacing it would destroy it, writing to a FIFO would
    hang); a dangling link would have the audit create a file wherever it points."""
    place, victim = tmp_path / "report-here", tmp_path / "elsewhere" / "victim.html"
    os.mkfifo(place) if kind == "fifo" else place.symlink_to(victim)
    run = run_audit(project, f"{option}={place}")
    assert run.exit_code == 4, run.output
    said = "is not a regular file" if kind == "fifo" else "is a link that leads to no regular file"
    assert f"{place} {said}: choose another path" in run.output
    assert stat.S_ISFIFO(place.lstat().st_mode) if kind == "fifo" else place.is_symlink() and not victim.exists()


def test_the_default_report_never_follows_a_link_planted_at_its_name(project, run_audit, tmp_path):
    """Links at the names the next seconds' reports would take: the audit writes beside them, never through."""
    folder, victims = tmp_path / "reports", tmp_path / "victims"
    folder.mkdir()
    now = datetime.datetime.now()
    for second in range(15):
        stamp = (now + datetime.timedelta(seconds=second)).strftime("%Y%m%d-%H%M%S")
        (folder / f"infra-audit-{stamp}.html").symlink_to(victims / f"{stamp}.html")
    standalone = {k: v for k, v in clean_env().items() if k != "PYTEST_CURRENT_TEST"}
    run = run_audit(project, f"--report-dir={folder}", env=standalone)
    assert run.exit_code == 1, run.output  # no DB_URL here: the report is written all the same
    (written,) = [path for path in folder.iterdir() if not path.is_symlink()]
    assert re.fullmatch(r"infra-audit-\d{8}-\d{6}-2\.html", written.name) and not victims.exists()


def test_html_path_as_a_separate_word_before_any_test_path(project, target, tmp_path):
    """`pytest --html PATH` (no `=`, no test path, as the README writes it): PATH is the report's."""
    report = tmp_path / "audit.html"
    write_env(project, f"DB_URL={target.url}\n")
    done = python_pytest(
        "--html",
        str(report),
        "--metadata",
        "Ticket",
        "44",
        f"--project-root={project}",
        f"--history={tmp_path / 'h.jsonl'}",
    )
    assert done.returncode == 0 and "audit PASSED" in done.stdout, done.stdout + done.stderr
    assert HtmlReport.read(report).environment["Ticket"] == "44"


def test_the_server_version_is_known_whichever_check_connected(project, target, run_audit, tmp_path):
    """`-k health_check` never runs "database reachable", but the connection it used knows the server."""
    write_env(project, f"DB_URL={target.url}\n")
    run, report = audit_with_html(run_audit, project, tmp_path, "-k", "health_check")
    assert run.outcome("test_health_check_passes") == "passed", run.output
    assert re.fullmatch(r"\d+\.\d+", report.environment["PostgreSQL server"]), report.environment


def test_another_ini_runs_the_audit_with_its_settings(tmp_path):
    """`-c other.ini`: the plugin is installed (its entry point), so the audit runs, with that ini's settings."""
    (tmp_path / "other.ini").write_text("[pytest]\ninfra_required_paths = nowhere-else/\n")
    done = python_pytest("-c", str(tmp_path / "other.ini"), str(REPO / "infra_tests"))
    assert done.returncode == 1 and "INTERNALERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "nowhere-else/: MISSING" in done.stdout


def test_without_the_plugin_loaded_the_audit_is_one_usage_line(tmp_path):
    """Plugin autoload off (PYTEST_DISABLE_PLUGIN_AUTOLOAD): say how to load it, not INTERNALERROR."""
    done = python_pytest(str(REPO / "infra_tests"), env=clean_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert done.returncode == 4 and "INTERNALERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert done.stderr.strip().startswith("ERROR: the audit's plugin is not loaded")


def test_a_link_planted_at_the_reports_name_during_the_run_is_not_followed(project, run_audit, tmp_path):
    """The report's file is decided before any check runs; a link put there later is refused, and what
    it points at keeps its bytes."""
    report, victim = tmp_path / "out" / "report.html", tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "plant_link.py").write_text(
        "import pathlib\n\n"
        "def pytest_runtest_call(item):\n"
        f"    link = pathlib.Path({str(report)!r})\n"
        "    if not link.is_symlink():\n"
        f"        link.symlink_to({str(victim)!r})\n"
    )
    run = run_audit(project, "-p", "plant_link", f"--html={report}", env=clean_env(PYTHONPATH=str(tmp_path)))
    assert run.exit_code == 1 and victim.read_text() == "precious", run.output
    assert (
        f"the HTML report was not written to {report}: {report} is not a regular file: it is left as it is"
        in run.output
    )


def test_an_empty_required_paths_list_is_not_run_and_fails_the_run(project, run_audit):
    """An empty list proves nothing: NOT RUN, never a PASSED with no evidence."""
    run = run_audit(project, "--required-paths=", "-k", "required_paths")
    assert run.exit_code == 1
    assert re.search(r"NOT RUN +required paths present", run.output), run.output
    assert "infra_required_paths is empty: nothing shows the project's paths are there" in run.output


def test_a_selection_that_matches_no_check_says_so(project, run_audit):
    run = run_audit(project, "-k", "no_such_check")
    assert run.exit_code == 5
    assert (
        "audit FAILED: no check ran; pytest ended with exit code 5: nothing matched what was selected (-k, a path)"
        in run.output
    ), run.output
