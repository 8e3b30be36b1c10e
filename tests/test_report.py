"""The audit's reports as their readers get them: the HTML file attached to a ticket, the JUnit XML a
CI gate reads, and the terminal. Real runs (a subprocess against a real, seeded PostgreSQL); the
tests open the files the run wrote and read them back."""

from __future__ import annotations

import html
import json
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import tools
from tests.support import AuditRun, clean_env, write_env

HUMAN_NAMES = {
    "test_root_is_clean": "root is clean",
    "test_env_has_db_url": ".env has DB_URL",
    "test_db_reachable_within_3s": "database reachable within 3 s",
    "test_row_counts_nonzero": "row counts non-zero",
    "test_required_paths_present": "required paths present",
    "test_health_check_passes": "health check passes",
}
DB_DEPENDENT = ("test_row_counts_nonzero", "test_health_check_passes")


def _text(fragment: str) -> str:
    """HTML as a reader sees it: blocks on their own lines, table cells apart, no tags."""
    fragment = re.sub(r"</?(p|li|ul|div|tr|table|br)\b[^>]*>", "\n", fragment)
    fragment = re.sub(r"</?t[dh]\b[^>]*>", " ", fragment)
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


@dataclass(frozen=True)
class HtmlReport:
    """pytest-html's page: the raw file, and the data its script renders (title, environment, rows)."""

    text: str
    data: dict

    @classmethod
    def read(cls, path: Path) -> HtmlReport:
        text = path.read_text(encoding="utf-8")
        blob = re.search(r'data-jsonblob="([^"]*)"', text)
        assert blob, "no data blob: not a pytest-html 4 report"
        return cls(text, json.loads(html.unescape(blob.group(1))))

    @property
    def environment(self) -> dict[str, str]:
        return {key: html.unescape(value) for key, value in self.data["environment"].items()}

    def row(self, test: str) -> dict:
        """The results-table entry of one check (its cells, log and extras)."""
        (entry,) = [rows[-1] for node, rows in self.data["tests"].items() if node.endswith("::" + test)]
        return entry

    def cells(self, test: str) -> list[str]:
        return [_text(cell).strip() for cell in self.row(test)["resultsTableRow"]]

    def details(self, test: str) -> str:
        """The expanded row as a reader sees it: the evidence block and the log, as text."""
        entry = self.row(test)
        shown = "".join(extra["content"] for extra in entry["extras"]) + entry.get("log", "")
        return _text(shown)

    @property
    def overview(self) -> str:
        """The summary above the results, as text: the verdict and one line per check."""
        start = self.text.index('class="infra-verdict')
        end = self.text.index("</table>", start)
        return _text(self.text[start:end])


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


def audit_with_html(run_audit, project: Path, tmp_path: Path, *args: str, env=None) -> tuple[AuditRun, HtmlReport]:
    path = tmp_path / "report" / "audit.html"
    run = run_audit(project, "--html", str(path), "--self-contained-html", *args, env=env)
    assert path.is_file(), run.output
    return run, HtmlReport.read(path)


def test_healthy_report_is_the_proof_for_the_ticket(project, target, run_audit, tmp_path):
    write_env(project, f"DB_URL={target.url}\n")
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 0, run.output

    assert report.data["title"] == "Infrastructure audit: project"
    env = report.environment
    assert env["Project root"] == str(project)
    assert env["Database"] == target.url.replace(target.role.password, "***")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", env["PostgreSQL server"]), env
    assert env["Audit suite"].startswith(f"infra-audit {tools.__version__} ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", env["Started"]), env
    assert re.fullmatch(r"\d+\.\d s", env["Duration"]), env
    assert not {"Packages", "Plugins", "Platform"} & set(env), "pytest-metadata's table must be replaced"

    for test, name in HUMAN_NAMES.items():
        result, check = report.cells(test)[:2]
        assert (result, check) == ("Passed", name)
        assert f"{name}: PASSED" in report.details(test)
    assert "Audit PASSED: 6 passed" in " ".join(report.overview.split())
    evidence = {
        "test_env_has_db_url": f"source: {project / '.env'} (DB_URL)",
        "test_db_reachable_within_3s": "connect time (connect + SELECT 1): ",
        "test_row_counts_nonzero": "market_data: 120 rows (exact count)",
        "test_root_is_clean": "artifacts: none",
        "test_required_paths_present": "tools/cleanup_root.py: present",
        "test_health_check_passes": "exit code: 0",
    }
    for test, line in evidence.items():
        assert line in report.details(test), report.details(test)
        assert line in report.overview
    assert "assets: 4 rows (exact count)" in report.overview
    assert "Traceback" not in report.text

    properties = junit_properties(run)
    for test, name in HUMAN_NAMES.items():
        assert properties[test]["check"] == name
        assert properties[test]["check result"] == "passed"
    assert properties["test_row_counts_nonzero"]["evidence: market_data"] == "120 rows (exact count)"
    assert re.search(r"PASSED +row counts non-zero\n +market_data: 120 rows \(exact count\)", run.output)
    assert f"HTML report (attach it to the ticket): {tmp_path / 'report' / 'audit.html'}" in run.output
    assert not (tmp_path / "report" / "assets").exists(), "self-contained: nothing beside the file"
    assert_no_secret(run, report, target.role.password)


def test_wrong_password_report_separates_failed_from_could_not_check(project, target, run_audit, tmp_path):
    wrong = "pw-wrong-" + secrets.token_urlsafe(12)
    write_env(project, f"DB_URL={target.url.replace(target.role.password, wrong)}\n")
    (project / "tools" / "cleanup_root.py").unlink()
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output

    verdicts = {test: report.cells(test)[0] for test in HUMAN_NAMES}
    assert verdicts == {
        "test_root_is_clean": "Passed",
        "test_env_has_db_url": "Passed",
        "test_db_reachable_within_3s": "Failed",
        "test_row_counts_nonzero": "Error",
        "test_required_paths_present": "Failed",
        "test_health_check_passes": "Error",
    }
    auth = f"authentication failed for user '{target.role.name}'"
    finding = report.cells("test_db_reachable_within_3s")[2]
    assert finding.startswith(auth) and "check the user name and credentials in DB_URL" in finding
    for test in DB_DEPENDENT:
        assert report.cells(test)[2].startswith(f"could not check: {auth}")
        assert f"{HUMAN_NAMES[test]}: COULD NOT CHECK" in report.details(test)
        assert "Passed" not in report.cells(test)
    assert report.cells("test_required_paths_present")[2].startswith("missing from ")
    assert "tools/cleanup_root.py: MISSING" in report.details("test_required_paths_present")
    overview = " ".join(report.overview.split())
    assert "Audit FAILED: 2 failed, 2 could not check, 2 passed" in overview
    assert "row counts non-zero COULD NOT CHECK could not check: authentication failed" in overview
    assert report.environment["PostgreSQL server"] == "unknown: the database was not reached"
    assert "Could not check (errors)" in report.text  # the filter's label, not "Errors"
    for test in HUMAN_NAMES:
        assert "Traceback" not in report.details(test) and not re.search(r"\.py:\d+", report.details(test))

    assert {test: run.outcome(test) for test in DB_DEPENDENT} == dict.fromkeys(DB_DEPENDENT, "error")
    properties = junit_properties(run)
    for test in DB_DEPENDENT:
        assert properties[test]["check result"] == "could not check"
        assert properties[test]["cause and fix"].startswith(f"could not check: {auth}")
        assert "could not check: " in run.message(test)
    assert properties["test_db_reachable_within_3s"]["check result"] == "failed"
    assert re.search(rf"COULD NOT CHECK +health check passes\n +could not check: {auth}", run.output)
    assert "audit FAILED: 2 failed, 2 could not check, 2 passed" in run.output
    assert_no_secret(run, report, target.role.password, wrong)


def test_missing_table_report_names_the_table_and_the_fix(project, target, run_audit, tmp_path):
    target.admin.execute("DROP TABLE assets CASCADE")
    write_env(project, f"DB_URL={target.url}\n")
    run, report = audit_with_html(run_audit, project, tmp_path)
    assert run.exit_code == 1, run.output
    assert report.cells("test_row_counts_nonzero")[:2] == ["Failed", "row counts non-zero"]
    details = report.details("test_row_counts_nonzero")
    assert "market_data: 120 rows (exact count)" in details
    assert "assets: FAILED (missing)" in details
    assert f"table 'assets' does not exist in database '{target.dbname}'" in details and "create it" in details
    assert report.cells("test_db_reachable_within_3s")[0] == "Passed"
    assert junit_properties(run)["test_row_counts_nonzero"]["evidence: assets"] == "FAILED (missing)"
    assert_no_secret(run, report, target.role.password)


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
    assert f"HTML report (attach it to the ticket): {written}" in run.output
    report = HtmlReport.read(written)
    assert "<style" in report.text and "<link " not in report.text, "the default report is self-contained"
    assert report.cells("test_db_reachable_within_3s")[1] == "database reachable within 5 s"
    written.unlink()

    for off in ([f"--report-dir={folder}", "--no-default-report"], ["-o", "infra_report_dir="]):
        run = run_audit(project, *off, env=standalone)
        assert run.exit_code == 1 and "HTML report" not in run.output
    run = run_audit(project, f"--report-dir={folder}")  # from inside a pytest test, as here: never
    assert run.exit_code == 1 and "HTML report" not in run.output
    assert _reports_in(folder) == []


def test_environment_table_holds_no_ci_variables(project, run_audit, tmp_path):
    """pytest-html once leaked tokens through pytest-metadata's CI variables (pytest-html #233)."""
    token = "tok-" + secrets.token_urlsafe(12)
    env = clean_env(BUILD_URL=f"https://bot:{token}@ci.example/job/1", GITLAB_USER_EMAIL="dev@example.com", CI="true")
    write_env(project, f"DB_URL=postgresql://app:{token}@127.0.0.1:1/app\n")
    run, report = audit_with_html(run_audit, project, tmp_path, "--metadata", "Ticket", "#044", env=env)
    assert report.environment["Ticket"] == "#044"
    assert report.environment["Database"] == "postgresql://app:***@127.0.0.1:1/app"
    assert not {"BUILD_URL", "GITLAB_USER_EMAIL", "CI"} & set(report.environment)
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
