"""tools/health_check.py: the spec's report, its exit codes, and --json, against a real database."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra_audit.core import settings
from infra_audit.plugin.health_check import HealthCheckProcess, HealthCheckRun
from tests.support import REPO, accepted_from, clean_env, stage, write_env


def test_healthy_report_matches_the_spec_layout(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["📊 Infrastructure Health Check", "=" * 80, ""]
    redacted = target.url.replace(target.role.password, "***")
    assert f"✅ Database Connection: {redacted}" in lines
    assert lines[lines.index("📈 Table Statistics:") + 1 :] == [
        "   market_data: 120 rows",
        "   assets: 4 rows",
        "",
        "🕒 Freshness:",
        lines[-3],
        "",
        "✅ System Healthy",
    ]
    assert re.fullmatch(
        r"   public\.market_data\.ts: newest row .* UTC, .* old \(limit 3 days\); 12 of 12 "
        r"symbol/timeframe pairs within the limit",
        lines[-3],
    ), lines[-3]
    assert target.role.password not in done.stdout + done.stderr


def test_failed_connection_prints_the_cause_and_exits_1(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url.replace(target.role.password, 'nope-nope')}\n")
    done = run_health_check("--root", str(project))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[3].startswith("❌ Database Connection Failed: postgresql://") and ":***@" in lines[3]
    assert lines[4].startswith("   Error: authentication failed for user")
    assert lines[-1] == "❌ System Unhealthy"
    assert "Traceback" not in done.stderr and "nope-nope" not in done.stdout + done.stderr


def test_refused_on_this_machine_offers_the_local_sandbox(project, run_health_check, closed_port):
    write_env(project, f"DB_URL=postgresql://u:pw@127.0.0.1:{closed_port}/db\n")
    done = run_health_check("--root", str(project))
    lines = done.stdout.splitlines()
    assert (done.returncode, lines[-1]) == (1, "❌ System Unhealthy"), done.stdout + done.stderr
    assert lines[4] == (
        f"   Error: connection refused by 127.0.0.1:{closed_port}: is PostgreSQL running and listening "
        "there? Start it, or fix host/port in DB_URL "
        "(for a local sandbox: python3 tools/sandbox.py start)"
    )


def test_no_db_url_anywhere_offers_the_local_sandbox(project, run_health_check):
    """Nothing configured: the health check cannot start (2), and offers the sandbox as the fix."""
    done = run_health_check("--root", str(project))
    lines = done.stdout.splitlines()
    assert (done.returncode, lines[-1]) == (2, "❌ System Unhealthy"), done.stdout + done.stderr
    assert lines[4].startswith("   Error: DB_URL is not set (") and lines[4].endswith(
        "(for a local sandbox: python3 tools/sandbox.py start)"
    ), lines[4]


def test_table_problem_is_listed_and_unhealthy(project, target, run_health_check):
    target.admin.execute("TRUNCATE market_data")
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project))
    assert done.returncode == 1
    assert "   ❌ market_data: table 'market_data' is empty" in done.stdout
    assert "   assets: 4 rows" in done.stdout


@pytest.mark.parametrize(
    ("trouble", "said"),
    [
        (["TRUNCATE market_data"], "   ❌ market_data: table 'market_data' is empty"),
        (
            [
                "UPDATE market_data SET ts = ts - interval '1000 days'",
                "UPDATE market_data SET ts = ts + interval '990 days'",
            ],
            "   ❌ market_data=3d: public.market_data.ts: the newest row (",
        ),
        (
            ["ALTER TABLE market_data RENAME TO market_data_gone"],
            "   ❌ market_data: table 'market_data' does not exist",
        ),
    ],
    ids=["empty table", "stale feed", "missing table"],
)
def test_each_unhealthy_cause_exits_1_and_ends_unhealthy(project, target, run_health_check, trouble, said):
    """Monitoring reads the exit code and the last line: each cause must turn both, in text and JSON."""
    stage(target, *trouble)
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project))
    lines = done.stdout.splitlines()
    assert (done.returncode, lines[-1]) == (1, "❌ System Unhealthy"), done.stdout + done.stderr
    assert any(line.startswith(said) for line in lines), done.stdout
    assert "Traceback" not in done.stderr
    as_json = run_health_check("--root", str(project), "--json")
    assert (as_json.returncode, json.loads(as_json.stdout)["healthy"]) == (1, False)


def test_json_output_for_monitoring(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--json", "--exact-count-limit", "10")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["healthy"] is True
    assert report["tables"]["market_data"] == {
        "ok": True,
        "rows": 120,
        "exact": False,
        "over": False,
        "row_security": False,
        "shown": "~120 rows (planner estimate)",
    }
    assert report["tables"]["assets"]["exact"] is True
    assert 0 <= report["connect_seconds"] < 3, "measured, so within the 3 s connect deadline"
    assert 0 < report["check_seconds"] >= report["connect_seconds"], "the whole probe, to the millisecond"
    (shown,) = target.admin.execute("SHOW server_version").fetchone()
    assert report["server_version"] == shown.split()[0], "what the server calls itself"
    (fresh,) = report["freshness"].values()
    assert fresh["ok"] is True and "error" not in fresh and "warning" not in fresh, "nothing to say: no key"
    assert target.role.password not in done.stdout


@pytest.mark.parametrize(
    ("env_text", "error"),
    [
        (None, "DB_URL is not set"),
        ("DB_URL=postgresql//trader:hunter2@localhost/mt5_crs\n", "is invalid: not a URL"),
        ("DB_URL=postgresql://trader:hunter2@localhost/mt5_crs?sslmod=disable\n", "did you mean 'sslmode'"),
        ("DB_URL=postgresql://trader:hunter2@127.0.0.1:\u00b2/mt5_crs\n", "a port is not a number from 1 to 65535"),
        ("DB_URL=postgresql://trader@127.0.0.1/mt5_crs?password=hunter2&Pw-Qx4411\n", "not shown: it may be part of"),
    ],
)
def test_configuration_errors_are_one_line_without_traceback(project, run_health_check, env_text, error):
    if env_text:
        write_env(project, env_text)
    done = run_health_check("--root", str(project))
    assert done.returncode == 2, "misconfigured, not down: nothing was dialled"
    assert "❌ Database Not Configured: " in done.stdout and "Connection Failed" not in done.stdout
    error_lines = [line for line in done.stdout.splitlines() if line.startswith("   Error: ")]
    assert len(error_lines) == 1 and error in error_lines[0]
    assert "Traceback" not in done.stderr and "hunter2" not in done.stdout + done.stderr
    assert "Qx4411" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "env_text",
    [
        (REPO / ".env.example").read_text(),
        "POSTGRES_HOST=HOST\nPOSTGRES_PORT=5432\nPOSTGRES_USER=USER\nPOSTGRES_PASSWORD=<password>\nPOSTGRES_DB=DATABASE\n",
    ],
    ids=["env.example", "POSTGRES_parts"],
)
def test_placeholders_are_reported_and_nothing_is_dialled(project, run_health_check, env_text):
    write_env(project, env_text)
    for args in ((), ("--json",)):
        done = run_health_check("--root", str(project), *args)
        assert done.returncode == 2, done.stdout + done.stderr
        said = "still holds the placeholders of .env.example (user USER, the password, host HOST, database DATABASE)"
        assert said in done.stdout
        assert "host not found" not in done.stdout and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["cause"] == "config"


def test_json_exit_code_is_1_when_unhealthy(project, target, run_health_check):
    """Monitoring reads the exit code: --json must not turn an unhealthy probe into 0."""
    target.admin.execute("TRUNCATE market_data")
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--json")
    report = json.loads(done.stdout)
    assert (done.returncode, report["exit_code"], report["ok"], report["healthy"]) == (1, 1, False, False)
    assert report["tables"]["market_data"]["cause"] == "empty"


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM, a monitor's timeout"])
def test_ctrl_c_is_exit_130_and_one_line(project, sent):
    """Interrupted while connecting (to a server that never answers): no traceback, exit 130."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        write_env(project, f"DB_URL=postgresql://trader:hunter2@127.0.0.1:{listener.getsockname()[1]}/mt5_crs\n")
        tool = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tools" / "health_check.py"),
                "--root",
                str(project),
                "--connect-timeout",
                "60",
            ],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with accepted_from(listener, tool) as accepted:
            assert accepted.recv(8), "libpq's first message: it now waits for the server's answer"
            tool.send_signal(sent)
            stdout, stderr = tool.communicate()  # bounded by the tool's own 60 s connect deadline
    assert tool.returncode == 130, stdout + stderr
    assert stderr.splitlines() == ["health_check.py: error: interrupted"]
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    "flag", ["--connect-timeout=-1", "--connect-timeout=nan", "--query-timeout=inf", "--connect-timeout=1e300"]
)
def test_bad_timeout_flags_exit_2(run_health_check, flag):
    done = run_health_check(flag)
    assert done.returncode == 2
    assert "timeout must be a number >= 0.1 and <= 3600" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("password", ["1", "a", "postgres", "true"])
def test_short_or_common_password_is_masked_without_mangling_the_report(
    project, target, make_role, run_health_check, password
):
    """Masking is by whole token: a password '1' must not turn '120 rows' into '***20 rows' or break the JSON."""
    role = make_role(password)
    host_part = target.url.split("@", 1)[1]
    write_env(project, f"DB_URL=postgresql://{role.name}:{password}@{host_part}\n")
    done = run_health_check("--root", str(project), "--json")
    report = json.loads(done.stdout)
    assert report["healthy"] is True and report["tables"]["market_data"]["rows"] == 120
    assert report["database"] == f"postgresql://{role.name}:***@{host_part}"
    text = run_health_check("--root", str(project)).stdout
    assert "   market_data: 120 rows" in text and "📊 Infrastructure Health Check" in text


def test_awkward_short_password_works_and_never_shows(project, target, make_role, run_health_check, run_audit):
    """A 3-character password with a quote and a '?' (libpq takes it raw): too short for free-text
    masking, so only the rebuilt URL keeps it out of every output."""
    password = "x'?"
    role = make_role(password)
    host_part = target.url.split("@", 1)[1]
    write_env(project, f"DB_URL=postgresql://{role.name}:{password}@{host_part}\n")
    shown = f"postgresql://{role.name}:***@{host_part}"
    text, as_json = run_health_check("--root", str(project)), run_health_check("--root", str(project), "--json")
    assert text.returncode == 0 and f"✅ Database Connection: {shown}" in text.stdout
    assert json.loads(as_json.stdout)["database"] == shown
    audit = run_audit(project, "-v")
    assert audit.exit_code == 0, audit.output
    for output in (text.stdout, as_json.stdout, audit.output, audit.junit):
        assert f":{password}@" not in output and f"{role.name}:x'" not in output


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        (
            "--exact-count-limit=1e13",
            "the exact count limit must be a number >= 0 and <= 1e+12, got '1e13' (--exact-count-limit)",
        ),
        ("--tables=", "the table list is empty: name the tables to check (--tables)"),
        ("--root=~nosuchuser/x", "cannot expand '~nosuchuser/x': no such user's home folder (--root)"),
    ],
)
def test_out_of_range_settings_are_one_usage_line(run_health_check, flag, said):
    done = run_health_check(flag)
    assert (done.returncode, done.stderr) == (2, f"health_check.py: error: {said}\n")


# --- the audit's check runs the script in its own interpreter: what it reads of the run ---------


PLANTED = {
    "healthy": ('print(json.dumps({"healthy": True, "error": None}))\nraise SystemExit(0)\n', 0, None),
    "no verdict": ('print("ok")\nraise SystemExit(0)\n', 0, "exited 0 without a healthy verdict"),
    "exit 0, unhealthy": (
        'print(json.dumps({"healthy": False, "error": None}))\n',
        0,
        "exited 0 without a healthy verdict",
    ),
    "unhealthy": (
        'print(json.dumps({"healthy": False, "error": None, "tables": {"market_data": {"ok": False, '
        '"error": "table is empty"}}}))\nsys.exit(1)\n',
        1,
        "exited 1: market_data: table is empty",
    ),
    "error line": (
        'print("health_check.py: error: no DB_URL", file=sys.stderr)\nsys.exit(2)\n',
        2,
        "exited 2: health_check.py: error: no DB_URL",
    ),
}


def _planted(root: Path, body: str) -> dict[str, str]:
    """A project whose health-check script is ``body``; the audit's settings for it."""
    script = root / "tools" / "health_check.py"
    script.parent.mkdir(parents=True)
    script.write_text(f"import json, sys\nprint(sys.argv[1:], file=sys.stderr)\n{body}")
    return {"infra_health_check": "tools/health_check.py"}


def _audit_run(values: dict[str, str], root: Path) -> HealthCheckRun:
    """The run "health check passes" reads, started from the settings' texts as the audit starts it."""
    return HealthCheckProcess(settings.texts(values), root).result(settings.build(values, root))


@pytest.mark.parametrize("case", PLANTED)
def test_the_audits_run_reads_exit_code_and_verdict(case, tmp_path):
    """Only exit 0 with a healthy JSON verdict proves the system healthy: a script that lost its
    ``sys.exit(main())`` or its report must not pass; it gets the audit's settings as flags."""
    body, code, problem = PLANTED[case]
    run = _audit_run(_planted(tmp_path, body), tmp_path)
    assert run.code == code
    assert (run.problem is None) if problem is None else (problem in run.problem), run.problem
    assert f"'--root', '{tmp_path}', '--tables', 'market_data assets'" in run.stderr, "the audit's settings as flags"
    assert run.shown.startswith("python3 tools/health_check.py --root ")


def test_the_audits_run_passes_ctrl_c_on(tmp_path):
    """The command turns Ctrl-C into exit 130; in the audit, it stops the audit instead of failing a check."""
    with pytest.raises(KeyboardInterrupt):
        _audit_run(_planted(tmp_path, "raise SystemExit(130)\n"), tmp_path)


def test_a_missing_script_is_named(tmp_path):
    run = _audit_run({"infra_health_check": "tools/nowhere.py"}, tmp_path)
    assert run.code is None and f"{tmp_path}/tools/nowhere.py does not exist" in run.problem


def test_the_installed_command_runs_by_default_in_a_process_of_its_own(project, target, monkeypatch):
    """The real command (no script configured: the installed infra-health-check), with its own flags,
    probe, report and exit code, against a real database, proves a healthy one."""
    write_env(project, f"DB_URL={target.url}\n")
    monkeypatch.delenv("DB_URL", raising=False)
    process = HealthCheckProcess(settings.texts({}), project)
    assert process.shown.startswith("infra-health-check --root ")
    run = process.result(settings.build({}, project))
    assert (run.code, run.verdict, run.problem) == (0, "healthy", None), run.stdout + run.stderr
    assert run.outcome["tables"]["market_data"]["rows"] == 120 and target.role.password not in run.stdout


# Loaded by every python of the audit run below (PYTHONPATH): the audit's process notes when it starts the
# health check and when it first asks for psycopg, in that order.
_ORDER_LOG = """
import os, subprocess, sys

def _note(what):
    if str(os.getpid()) == os.environ.get("AUDIT_PID"):
        with open(os.environ["ORDER_LOG"], "a") as log:
            log.write(what + "\\n")


class _FirstPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg":
            _note("psycopg imported")
            sys.meta_path.remove(self)
        return None


_popen = subprocess.Popen.__init__


def _noting_popen(self, args, *rest, **options):
    if any("health_check" in str(arg) for arg in args):
        _note("health check started")
    _popen(self, args, *rest, **options)


sys.meta_path.insert(0, _FirstPsycopg())
subprocess.Popen.__init__ = _noting_popen
"""


@pytest.mark.parametrize("paths", [["infra_tests"], []], ids=["pytest infra_tests", "pytest (testpaths)"])
def test_the_health_check_starts_before_the_audit_loads_psycopg(paths, project, target, tmp_path):
    """Its start-up (Python, psycopg, a connection) runs beside the audit's own loading of psycopg
    (about 100 ms): started when the run's paths are the checks, before any conftest loads psycopg."""
    write_env(project, f"DB_URL={target.url}\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_ORDER_LOG)
    log = tmp_path / "order.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, pytest; os.environ['AUDIT_PID'] = str(os.getpid()); sys.exit(pytest.main(sys.argv[1:]))",
            *paths,
            f"--project-root={project}",  # one word: pytest finds its rootdir before the flag is known
            f"--history={tmp_path / 'history.jsonl'}",
            "--no-default-report",
            "-q",
        ],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(tmp_path / "site"), ORDER_LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert log.read_text().splitlines() == ["health check started", "psycopg imported"], output


def test_a_script_that_cannot_find_its_modules_fails(tmp_path):
    """A script that cannot start as monitoring would start it fails the check: it runs in a fresh process."""
    run = _audit_run(_planted(tmp_path, "import tools.nowhere\n"), tmp_path)
    assert run.code == 1 and "ModuleNotFoundError: No module named 'tools" in run.problem
