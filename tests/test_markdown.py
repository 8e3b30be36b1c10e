"""The audit's Markdown summary, end to end: a real audit against a real database, the summary
rendered by GitHub's own Markdown library (cmark-gfm) as GitHub renders a ticket or a job summary."""

from __future__ import annotations

import html
import re
from pathlib import Path

import cmarkgfm

from tests.support import clean_env, write_env

CHECKS = 8  # the audit's checks, each one row
NAME = "mt5_crs *prod* | <b>~ops~</b> @trader"  # what Markdown would take for emphasis, HTML, strikethrough, a mention


def rendered(markdown: str) -> str:
    """The HTML GitHub makes of it (it lets raw HTML such as <br> through, and sanitizes it after)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=cmarkgfm.Options.CMARK_OPT_UNSAFE)


def check_rows(page: str) -> list[list[str]]:
    """The cells of each body row of the first table, as text."""
    body = re.search(r"<table>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    return [
        [html.unescape(re.sub(r"<[^>]+>", " ", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def audit_with_summaries(project: Path, run_audit, tmp_path: Path):
    """An audit with --markdown, on a CI job whose summary file already holds an earlier step's."""
    summary, step = tmp_path / "summary.md", tmp_path / "step_summary.md"
    step.write_text("## an earlier step\n")
    env = clean_env(GITHUB_STEP_SUMMARY=str(step))
    flags = (f"--markdown={summary}", f"--html={tmp_path / 'report.html'}", f"--project-name={NAME}")
    run = run_audit(project, *flags, env=env)
    return run, summary.read_text(), step.read_text()


def test_a_passing_audit_is_one_table_row_per_check(project, target, run_audit, tmp_path):
    write_env(project, f"DB_URL={target.url}\n")
    run, summary, step = audit_with_summaries(project, run_audit, tmp_path)
    assert run.exit_code == 0, run.output
    assert step == "## an earlier step\n\n" + summary, "appended after what the job's earlier steps wrote"
    page = rendered(summary)
    heading = re.search(r"<h2>(.*)</h2>", page).group(1)
    assert html.unescape(heading) == f"Infrastructure audit: {NAME}: PASSED", "every character shown as itself"
    rows = check_rows(page)
    assert len(rows) == CHECKS and all(len(row) == 3 for row in rows)
    assert all(row[1].startswith("✅ PASSED") for row in rows), rows
    assert rows[0][0] == ".env has DB_URL" and "postgresql://" in rows[0][2] and ":***@" in rows[0][2]
    assert "<em>" not in page and page.count("<strong>") == 1, "a masked URL's *** is text, not emphasis"
    assert "<code>report.html</code>" in page and "<td>Database</td>" in page
    assert run.output.count("Markdown summary: ") == 2, "the terminal says where both went"
    assert target.role.password not in summary


def test_a_failing_audit_gives_each_checks_cause_without_the_password(project, target, run_audit, tmp_path):
    write_env(project, f"DB_URL={target.url.replace(target.role.password, 'wrong-pw-hunter2')}\n")
    run, summary, step = audit_with_summaries(project, run_audit, tmp_path)
    assert run.exit_code == 1
    rows = {row[0]: row for row in check_rows(rendered(summary))}
    assert len(rows) == CHECKS and summary.splitlines()[0].endswith(": FAILED")
    assert rows["database reachable within 3 s"][1] == "❌ FAILED"
    assert "authentication failed for user" in rows["database reachable within 3 s"][2]
    assert rows["row counts non-zero"][1] == "⚠️ COULD NOT CHECK"
    assert "hunter2" not in summary + step and target.role.password not in summary


def test_a_summary_that_cannot_be_written_fails_the_run(project, target, run_audit, tmp_path):
    """--markdown to where no file can go is refused before any check runs; a GITHUB_STEP_SUMMARY that
    cannot be appended to fails the run and says so."""
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project, f"--markdown={tmp_path}")
    assert run.exit_code == 4 and "cannot write the Markdown summary to" in run.output
    run = run_audit(project, env=clean_env(GITHUB_STEP_SUMMARY=str(tmp_path)))
    assert run.exit_code == 1 and f"the Markdown summary was not written to {tmp_path}" in run.output
