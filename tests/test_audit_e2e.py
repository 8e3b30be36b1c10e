"""`pytest infra_tests` end to end, as a user runs it: a subprocess against a real, seeded PostgreSQL.

Each failure the audit knows must exit 1 with its cause in one line, no traceback, and no password
anywhere in what it printed or wrote.
"""

from __future__ import annotations

import re
import shlex
import shutil
import site
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support import REPO, AuditRun, clean_env, write_env
from tests.venv_roots import git, uv_venv

AUDIT_TESTS = (
    "test_env_has_db_url",
    "test_db_reachable_within_3s",
    "test_row_counts_nonzero",
    "test_data_is_fresh",
    "test_row_counts_not_shrinking",
    "test_health_check_passes",
    "test_root_is_clean",
    "test_required_paths_present",
)
DB_TESTS = (
    "test_row_counts_nonzero",
    "test_data_is_fresh",
    "test_row_counts_not_shrinking",
    "test_health_check_passes",
)
NOT_REACHED = 'the database was not reached: see "database reachable within'
NO_DB_URL = 'no usable DB_URL: see ".env has DB_URL"'


def assert_clean(run: AuditRun, *secrets: str) -> None:
    """What a person reads: no Python traceback, and none of the secrets, in the terminal or the JUnit XML."""
    assert "Traceback" not in run.output
    for secret in secrets:
        assert secret not in run.output, "password leaked to the terminal"
        assert secret not in run.junit, "password leaked to the JUnit XML"


def outcomes(run: AuditRun) -> dict[str, str]:
    return {name: run.outcome(name) for name in AUDIT_TESTS}


def test_healthy_project_passes_every_check(project, target, run_audit):
    write_env(project, f"DB_URL={target.url}\n")
    (project / ".env").chmod(0o640)
    run = run_audit(project)
    assert run.exit_code == 0, run.output
    assert outcomes(run) == dict.fromkeys(AUDIT_TESTS, "passed")
    assert "market_data: 120 rows" in run.output
    assert "assets: 4 rows" in run.output
    assert "source: " + str(project / ".env") in run.output
    assert ".env permissions: 0640" in run.output
    assert (
        "warning: .env is readable by other users (mode 0640), and it holds the password: chmod 600 .env" in run.output
    )
    assert_clean(run, target.role.password)


def test_env_permissions_are_no_evidence_when_db_url_comes_from_the_environment(project, target, run_audit):
    write_env(project, "API_KEY=abc\n")
    (project / ".env").chmod(0o640)
    run = run_audit(project, env=clean_env(DB_URL=target.url))
    assert "source: the environment (DB_URL)" in run.output, run.output
    assert ".env permissions" not in run.output, "evidence only where it applies"
    assert ".env is readable" not in run.output


def test_environment_variable_wins_over_env_file(project, target, run_audit):
    write_env(project, "DB_URL=postgresql://nobody:wrong@127.0.0.1:1/nowhere\n")
    run = run_audit(project, env={**clean_env(), "DB_URL": target.url})
    assert run.exit_code == 0, run.output
    assert "source: the environment (DB_URL)" in run.output
    assert_clean(run, target.role.password, "wrong")


def test_missing_env_file_fails_config_and_every_database_check_with_the_same_cause(project, run_audit):
    run = run_audit(project)
    assert run.exit_code == 1
    assert run.outcome("test_env_has_db_url") == "failed"
    assert "DB_URL is not set" in run.message("test_env_has_db_url")
    assert run.outcome("test_db_reachable_within_3s") == "error", "no attempt was made: could not check"
    for name in DB_TESTS:
        assert run.outcome(name) == "error", "a check that could not run must not pass"
        assert NO_DB_URL in run.message(name), "the cause is said once, by the .env check; a pointer here"
    assert run.outcome("test_root_is_clean") == "passed"
    assert_clean(run)


def test_malformed_url_is_explained_without_echoing_the_password(project, target, run_audit):
    write_env(project, f"DB_URL={target.url.replace('://', '//', 1)}\n")
    run = run_audit(project)
    assert run.exit_code == 1
    assert "is invalid: not a URL" in run.message("test_env_has_db_url")
    assert_clean(run, target.role.password)


@pytest.mark.parametrize(
    ("breakage", "cause"),
    [
        ("wrong_password", "authentication failed for user"),
        ("missing_database", "database 'no_such_db' does not exist"),
        ("refused", "connection refused by 127.0.0.1"),
        ("unknown_host", "host not found"),
    ],
)
def test_unreachable_database_names_the_cause(project, target, run_audit, closed_port, breakage, cause):
    base, dbname = target.url.rsplit("/", 1)
    url = {
        "wrong_password": target.url.replace(target.role.password, "wrong-password-123"),
        "missing_database": f"{base}/no_such_db",
        "refused": f"postgresql://{target.role.name}:{target.role.password}@127.0.0.1:{closed_port}/{dbname}",
        "unknown_host": f"postgresql://{target.role.name}:{target.role.password}@no-such-host.invalid/{dbname}",
    }[breakage]
    write_env(project, f"DB_URL={url}\n")
    run = run_audit(project, "--tb=long", "--showlocals")
    assert run.exit_code == 1
    assert run.outcome("test_env_has_db_url") == "passed"
    assert run.outcome("test_db_reachable_within_3s") == "failed"
    assert cause in run.message("test_db_reachable_within_3s")
    for name in DB_TESTS:
        assert (run.outcome(name), NOT_REACHED in run.message(name)) == ("error", True)
    assert_clean(run, target.role.password, "wrong-password-123")


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A server that accepts connections and never answers; it records every connection it gets."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1], accepted
        stop.set()
        thread.join()
    for conn in accepted:
        conn.close()


def test_silent_server_is_tried_once_and_every_database_check_points_at_the_timeout(project, run_audit, silent_server):
    port, accepted = silent_server
    write_env(project, f"DB_URL=postgresql://trader:hunter2-secret@127.0.0.1:{port}/mt5_crs\n")
    run = run_audit(project, "--connect-timeout", "1")
    assert run.exit_code == 1
    message = f"no answer from 'mt5_crs' at 127.0.0.1:{port} within 1 s"
    assert message in run.message("test_db_reachable_within_3s")
    for name in DB_TESTS:
        assert NOT_REACHED in run.message(name)
    # once by the audit for all its checks, not once per check; once by the health-check command, which
    # runs beside the checks as monitoring runs it (its wait overlaps the audit's)
    assert len(accepted) == 2, "the connection must be attempted once per run, not once per check"
    assert_clean(run, "hunter2-secret")


@pytest.mark.parametrize(
    ("stage", "tables", "cause"),
    [
        ("", "market_data assets no_such_table", "table 'no_such_table' does not exist"),
        ("TRUNCATE market_data", "market_data assets", "table 'market_data' is empty"),
        ("REVOKE SELECT ON assets FROM PUBLIC", "market_data assets", "permission denied on table 'assets'"),
    ],
)
def test_table_problems_are_named(project, target, run_audit, stage, tables, cause):
    if stage:
        target.admin.execute(stage)
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project, "--tables", tables)
    assert run.exit_code == 1
    assert run.outcome("test_db_reachable_within_3s") == "passed"
    assert run.outcome("test_row_counts_nonzero") == "failed"
    assert cause in run.message("test_row_counts_nonzero")
    assert run.outcome("test_health_check_passes") == "failed"
    assert cause in run.message("test_health_check_passes")
    assert_clean(run, target.role.password)


def test_locked_table_is_reported_as_locked(project, target, run_audit):
    write_env(project, f"DB_URL={target.url}\n")
    with target.admin.transaction():
        target.admin.execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        run = run_audit(project, "--query-timeout", "1")
    assert run.exit_code == 1
    assert "table 'market_data' is locked by another session" in run.message("test_row_counts_nonzero")
    for check in ("row counts non-zero", "data is fresh", "row counts not shrinking"):  # it could not look: no finding
        assert re.search(rf"^COULD NOT CHECK +{check}$", run.output, re.MULTILINE), run.output
    assert "market_data: could not check (locked)" in run.output
    # one lock, one wait: the checks after the first say so at once, the health check (its own process) waited beside
    assert "was locked by another session when this run read it before" in run.message("test_data_is_fresh")
    assert_clean(run, target.role.password)


def test_venv_leftovers_fail_the_root_check_with_the_fix(project, target, run_audit):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project)], check=True)
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project)
    assert run.exit_code == 1
    assert "python3 tools/cleanup_root.py" in run.message("test_root_is_clean")
    artifacts = next(line for line in run.output.splitlines() if line.strip().startswith("artifacts: "))
    assert "pyvenv.cfg" in artifacts and "lib" in artifacts
    assert run.output.count("lib (dir)") == 1, "each artifact listed once: in the evidence, not again in the cause"
    assert run.outcome("test_db_reachable_within_3s") == "passed"


def test_missing_required_path_is_named(project, target, run_audit):
    (project / "tools" / "cleanup_root.py").unlink()
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project)
    assert run.exit_code == 1
    assert "tools/cleanup_root.py (file)" in run.message("test_required_paths_present")


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--connect-timeout", "soon", "the connect timeout must be a number"),
        ("--connect-timeout", "nan", "the connect timeout must be a number"),
        ("--query-timeout", "1e300", "the query timeout must be a number >= 0.1 and <= 3600"),
        ("--exact-count-limit", "-5", "the exact count limit must be a number >= 0"),
        ("--exact-count-limit", "1e13", "the exact count limit must be a number >= 0 and <= 1e+12, got '1e13'"),
        ("--connect-timeout", "0.01", "the connect timeout must be a number >= 0.1 and <= 3600, got '0.01'"),
        ("--tables", "", "the table list is empty: name the tables to check"),
        ("--project-root", "/no/such/dir", "is not a directory"),
        ("--html", "/proc/no/report.html", "cannot write the HTML report to /proc/no/report.html"),
        ("--junitxml", "/proc/no.xml", "cannot write the JUnit XML to /proc/no.xml"),
        ("--html", "~nosuchuser/x.html", "cannot write the HTML report to ~nosuchuser/x.html: no such user's home"),
        ("--project-root", "~nosuchuser/x", "cannot expand '~nosuchuser/x': no such user's home folder"),
        ("--report-dir", "~nosuchuser/x", "cannot expand '~nosuchuser/x': no such user's home folder"),
    ],
)
def test_bad_settings_are_usage_errors(project, run_audit, flag, value, complaint):
    run = run_audit(project, flag, value)
    assert run.exit_code == 4
    assert complaint in run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output


def test_fixer_turns_the_root_check_green_and_restore_turns_it_red_again(project, run_audit):
    """The loop a user follows: audit fails naming artifacts, run the fix it names, audit passes; undo."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project)], check=True)
    (project / "bin" / "deploy.sh").write_text("#!/bin/sh\necho deploying\n")  # the project's own script
    fixer = [sys.executable, str(REPO / "tools" / "cleanup_root.py"), "--root", str(project)]

    before = run_audit(project, "-k", "test_root_is_clean")
    assert before.outcome("test_root_is_clean") == "failed"
    assert "bin/activate" in before.output
    assert "bin/deploy.sh" not in before.output

    subprocess.run(fixer, check=True, capture_output=True)
    after = run_audit(project, "-k", "test_root_is_clean")
    assert (after.exit_code, after.outcome("test_root_is_clean")) == (0, "passed"), after.output
    assert (project / "bin" / "deploy.sh").read_text() == "#!/bin/sh\necho deploying\n"

    (archive,) = project.glob("_archive_venv_cleanup_*")
    subprocess.run([*fixer, "--restore", str(archive)], check=True, capture_output=True)
    again = run_audit(project, "-k", "test_root_is_clean")
    assert again.outcome("test_root_is_clean") == "failed"


def test_root_venv_in_use_is_not_sent_to_a_fixer_that_would_refuse(project, run_audit):
    """`python3 -m venv .` and activated: the advice is to move to .venv/ first, not to run the fixer now."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project)], check=True)
    run = run_audit(project, "-k", "test_root_is_clean", env={**clean_env(), "VIRTUAL_ENV": str(project)})
    assert (run.exit_code, run.outcome("test_root_is_clean")) == (1, "failed")
    message = run.message("test_root_is_clean")
    assert f"the venv made in {project} is in use (it is the active venv: VIRTUAL_ENV)" in message
    assert f"python3 -m venv {project}/.venv" in message
    assert f"then run {project}/.venv/bin/python tools/cleanup_root.py --root {project}" in message
    assert "fix: python3 tools/cleanup_root.py" not in message


def test_env_example_copied_unedited_fails_and_nothing_is_dialled(project, run_audit):
    """`cp .env.example .env` is not configuration: no PASSED, and no attempt to reach a host named HOST."""
    (project / ".env").write_text((REPO / ".env.example").read_text())
    run = run_audit(project)
    assert run.exit_code == 1
    said = "still holds the placeholders of .env.example (user USER, the password, host HOST, database DATABASE)"
    assert run.outcome("test_env_has_db_url") == "failed"
    assert said in run.message("test_env_has_db_url")
    assert "put your database's user, password, host and name there" in run.message("test_env_has_db_url")
    assert run.outcome("test_db_reachable_within_3s") == "error", "no attempt was made: could not check"
    for name in ("test_db_reachable_within_3s", *DB_TESTS):
        assert NO_DB_URL in run.message(name), "the placeholders are said once, by the .env check"
        assert "host not found" not in run.message(name)
    assert run.output.count(said) == 1
    assert_clean(run)


@pytest.mark.parametrize("password", ["assets", "market", "PORT"])
def test_a_password_equal_to_a_shown_word_is_not_revealed_by_the_mask(project, target, run_audit, make_role, password):
    """The mask must not leave a gap where a table, part of a table or the port belongs (``***: 4 rows``)."""
    host, port = target.admin.info.host, target.admin.info.port
    password = str(port) if password == "PORT" else password
    role = make_role(password)
    write_env(project, f"DB_URL=postgresql://{role.name}:{password}@{host}:{port}/{target.dbname}\n")
    run = run_audit(project)
    assert run.exit_code == 0, run.output
    assert "assets: 4 rows" in run.output and "market_data: 120 rows" in run.output
    assert f"postgresql://{role.name}:***@{host}:{port}/{target.dbname}" in run.output
    assert "***:" not in run.output and "***_data" not in run.output and f"{host}:***" not in run.output
    assert "warning: the password is weak (under 12 characters or easy to guess)" in run.output
    assert f"{role.name}:{password}" not in run.output + run.junit


@pytest.mark.parametrize("password", ["Zebra&Pw-Qx4411", "Zebra&Pw=Qx4411", "Zebra&sslmod=Qx4411"])
def test_a_raw_ampersand_in_a_password_parameter_leaks_nothing(project, run_audit, tmp_path, password):
    write_env(project, f"DB_URL=postgresql://trader@127.0.0.1:1/mt5_crs?password={password}\n")
    html = tmp_path / "report.html"
    run = run_audit(project, "--html", str(html), "--self-contained-html")
    assert run.outcome("test_env_has_db_url") == "failed"
    assert "not shown: it may be part of a password" in run.message("test_env_has_db_url")
    written = run.output + run.junit + html.read_text()
    for piece in ("Zebra", "Qx4411", "Pw-Q", "sslmod="):  # none is a run's random digits
        assert piece not in written
    assert "Traceback" not in run.output


def test_another_projects_own_health_check_is_the_one_that_runs(project, target, run_audit):
    """--project-root audits that checkout: its own tools/health_check.py, broken there, fails the check
    (this checkout's working copy proves nothing about it); a working one passes, run in its own process."""
    write_env(project, f"DB_URL={target.url}\n")
    script = project / "tools" / "health_check.py"
    script.unlink()
    script.write_text("def broken(:\n")
    run = run_audit(project)
    assert run.outcome("test_health_check_passes") == "failed", run.output
    assert "tools/health_check.py exited 1: " in run.message("test_health_check_passes")
    assert "SyntaxError" in run.message("test_health_check_passes")
    script.unlink()
    shutil.copytree(REPO / "tools", project / "tools", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    again = run_audit(project)
    assert again.outcome("test_health_check_passes") == "passed", again.output
    assert f"command: python3 tools/health_check.py --root {project} " in again.output


def test_an_oauth_client_secret_in_db_url_leaks_nowhere(project, run_audit, tmp_path, closed_port):
    write_env(
        project,
        f"DB_URL=postgresql://trader:hunter2-secret@127.0.0.1:{closed_port}/mt5_crs"
        "?oauth_client_id=app&oauth_client_secret=Qv9-OauthSecret\n",
    )
    html = tmp_path / "report.html"
    run = run_audit(project, "--html", str(html))
    assert run.outcome("test_db_reachable_within_3s") == "failed"
    assert "oauth_client_secret=***" in run.output
    assert "Qv9-OauthSecret" not in run.output + run.junit + html.read_text()


def test_a_unicode_digit_in_the_port_is_one_clear_line(project, run_audit):
    write_env(project, "DB_URL=postgresql://trader:hunter2-secret@127.0.0.1:\u00b2/mt5_crs\n")
    run = run_audit(project)
    assert run.exit_code == 1, run.output
    assert "INTERNALERROR" not in run.output
    assert "a port is not a number from 1 to 65535" in run.message("test_env_has_db_url")
    assert_clean(run, "hunter2-secret")


def test_audit_run_by_the_root_venvs_own_python_says_in_use(project, tmp_path):
    """The audit itself runs inside that venv (its sys.prefix is the root): same advice, no fixer to run now."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project)], check=True)
    # The audit's requirements, from the environment running this suite (a venv's base python, such
    # as Debian's, may hold none of them: --system-site-packages would not find pytest there).
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (project / "lib" / version / "site-packages" / "suite.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    command = [
        str(project / "bin" / "python"),
        "-m",
        "pytest",
        str(REPO / "infra_tests"),
        "--project-root",
        str(project),
        "--no-default-report",
        "-k",
        "test_root_is_clean",
    ]
    environ = {k: v for k, v in clean_env().items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(command, cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the venv made in {project} is in use (the python running this comes from it)" in done.stdout
    assert f"then run {project}/.venv/bin/python tools/cleanup_root.py --root {project}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_partial_run_never_reads_as_the_audit(project, run_audit, tmp_path):
    """`-k` or a file path runs some checks: those can pass, but the verdict says the rest did not run."""
    html = tmp_path / "partial.html"
    run = run_audit(project, "-k", "root_is_clean or required_paths", f"--html={html}", "--self-contained-html")
    assert run.exit_code == 0, run.output
    assert "audit PARTIAL: 2 passed; 6 of the audit's checks not run (not selected): .env has DB_URL," in run.output
    assert "audit PASSED" not in run.output
    page = html.read_text()
    assert "Audit PARTIAL</strong>" in page and "Audit PASSED" not in page


def test_the_ci_command_of_docs_ci_md_works_as_written(project, target, tmp_path):
    """docs/ci.md's one-line CI command uses only flags that work: exit 0, JUnit and the HTML report written."""
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    command = shlex.split(re.search(r"```bash\n(pytest infra_tests .*?)\n```", text).group(1))
    assert command[:2] == ["pytest", "infra_tests"]
    reports = tmp_path / "reports"
    args = [arg.replace("reports/", f"{reports}/") for arg in command[2:]]
    write_env(project, f"DB_URL={target.url}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "infra_tests",
            *args,
            f"--project-root={project}",
            f"--history={tmp_path / 'history.jsonl'}",
        ],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (reports / "infra-audit.xml").is_file() and (reports / "infra-audit.html").is_file()


def test_a_tracked_gitignore_a_venv_overwrote_fails_the_root_check_until_git_gives_it_back(
    project, run_audit, tmp_path
):
    """`uv venv --allow-existing .` writes '*' over the project's .gitignore: git hides every new file. After the
    fixer the check still fails, naming git's fix (the fixer never rewrites a tracked file); once run, it passes."""
    (project / ".gitignore").write_text("build/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "project")
    uv_venv(project, tmp_path)
    fix = f"git -C {project} checkout HEAD -- .gitignore"

    before = run_audit(project, "-k", "test_root_is_clean")
    assert before.outcome("test_root_is_clean") == "failed"
    message = before.message("test_root_is_clean")
    assert "CACHEDIR.TAG (file): cache directory tag" in before.output and "tools/cleanup_root.py --root" in message
    assert (
        f".gitignore (file): git-tracked, overwritten with what uv writes: '*' makes git ignore every new file "
        f"in the root; fix: {fix} " in before.output
    )

    fixer = subprocess.run(
        [sys.executable, str(REPO / "tools" / "cleanup_root.py"), "--root", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fixer.returncode == 1, fixer.stdout + fixer.stderr
    after = run_audit(project, "-k", "test_root_is_clean")
    assert (after.exit_code, after.outcome("test_root_is_clean")) == (1, "failed")
    assert (
        f"1 git-tracked file(s) in {project} overwritten by a venv (each with its evidence under artifacts)"
        in after.message("test_root_is_clean")
        and ".gitignore (file): git-tracked, overwritten" in after.output
    )

    subprocess.run(fix.split(), check=True)
    done = run_audit(project, "-k", "test_root_is_clean")
    assert (done.exit_code, done.outcome("test_root_is_clean")) == (0, "passed"), done.output
