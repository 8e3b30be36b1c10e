"""tools/health_check.py: the spec's report, its exit codes, and --json, against a real database."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO, clean_env, write_env
from tools.core import settings


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
    assert re.fullmatch(r"   market_data\.ts: newest row .* UTC, .* old \(limit 3 days\); 12 of 12 symbol/timeframe "
                        r"pairs within the limit", lines[-3]), lines[-3]  # fmt: skip
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


def test_table_problem_is_listed_and_unhealthy(project, target, run_health_check):
    target.admin.execute("TRUNCATE market_data")
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project))
    assert done.returncode == 1
    assert "   ❌ market_data: table 'market_data' is empty" in done.stdout
    assert "   assets: 4 rows" in done.stdout


def test_json_output_for_monitoring(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--json", "--exact-count-limit", "10")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["healthy"] is True
    assert report["tables"]["market_data"] == {
        "ok": True, "rows": 120, "exact": False, "over": False, "row_security": False, "shown": "~120 rows (planner estimate)"
    }  # fmt: skip
    assert report["tables"]["assets"]["exact"] is True
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


def test_ctrl_c_is_exit_130_and_one_line(project):
    """Interrupted while connecting (to a server that never answers): no traceback, exit 130."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(30)
        write_env(project, f"DB_URL=postgresql://trader:hunter2@127.0.0.1:{listener.getsockname()[1]}/mt5_crs\n")
        tool = subprocess.Popen([sys.executable, str(REPO / "tools" / "health_check.py"), "--root", str(project),
                                 "--connect-timeout", "60"], env=clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        accepted, _ = listener.accept()  # it is inside its work now, waiting for the server
        with accepted:
            time.sleep(0.2)
            tool.send_signal(signal.SIGINT)
            stdout, stderr = tool.communicate(timeout=30)
    assert tool.returncode == 130, stdout + stderr
    assert stderr.splitlines() == ["health_check.py: error: interrupted"]
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize("flag", ["--connect-timeout=-1", "--connect-timeout=nan", "--query-timeout=inf", "--connect-timeout=1e300"])
def test_bad_timeout_flags_exit_2(run_health_check, flag):
    done = run_health_check(flag)
    assert done.returncode == 2
    assert "timeout must be a number >= 0.1 and <= 3600" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("password", ["1", "a", "postgres", "true"])
def test_short_or_common_password_is_masked_without_mangling_the_report(project, target, make_role, run_health_check, password):
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
        ("--exact-count-limit=1e13", "the exact count limit must be a number >= 0 and <= 1e+12, got '1e13' (--exact-count-limit)"),
        ("--tables=", "the table list is empty: name the tables to check (--tables)"),
        ("--root=~nosuchuser/x", "cannot expand '~nosuchuser/x': no such user's home folder (--root)"),
    ],
)
def test_out_of_range_settings_are_one_usage_line(run_health_check, flag, said):
    done = run_health_check(flag)
    assert (done.returncode, done.stderr) == (2, f"health_check.py: error: {said}\n")


# --- the audit's check runs the script in its own interpreter: what it reads of the run ---------


def _the_checks_conftest(monkeypatch: pytest.MonkeyPatch):
    """infra_tests/conftest.py as a module (the suite does not load it as a conftest)."""
    spec = importlib.util.spec_from_file_location("infra_checks_conftest", REPO / "infra_tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


PLANTED = {
    "healthy": ('print("report")\nprint("✅ System Healthy")\nraise SystemExit(0)\n', 0, None),
    "no verdict": ('print("ok")\nraise SystemExit(0)\n', 0, 'exited 0 without its verdict "✅ System Healthy"'),
    "no exit code": ('print("✅ System Healthy")\n', None, "ended without an exit code"),
    "unhealthy": (
        'import sys\nprint("❌ market_data: table is empty")\nprint("❌ System Unhealthy")\nsys.exit(1)\n',
        1, "exited 1: ❌ market_data: table is empty",
    ),
    "error line": (
        'import sys\nprint("health_check.py: error: no DB_URL", file=sys.stderr)\nsys.exit(2)\n',
        2, "exited 2: health_check.py: error: no DB_URL",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", PLANTED)
def test_the_audits_run_reads_exit_code_and_verdict(case, tmp_path, monkeypatch):
    """Only exit 0 with the spec's verdict line proves the system healthy: a script that lost its
    ``sys.exit(main())`` or its report must not pass; sys.argv and sys.path come back as they were."""
    script, code, problem = PLANTED[case]
    planted = tmp_path / "tools" / "health_check.py"
    planted.parent.mkdir()
    planted.write_text(f"import sys\nsys.path.insert(0, '/nowhere')\nprint(sys.argv[1:], file=sys.stderr)\n{script}")
    module = _the_checks_conftest(monkeypatch)
    monkeypatch.setattr(module, "HEALTH_CHECK", planted)
    argv, path = sys.argv[:], sys.path[:]
    run = module.run_health_check(tmp_path, settings.build({}, tmp_path))
    assert (sys.argv, sys.path) == (argv, path)
    assert run.code == code
    assert (run.problem is None) if problem is None else (problem in run.problem), run.problem
    assert f"'--root', '{tmp_path}', '--tables', 'market_data assets'" in run.stderr, "the audit's settings as flags"


@pytest.mark.parametrize("whose", ["this checkout's, in the audit's process", "another project's, in its own"])
def test_the_audits_run_passes_ctrl_c_on(tmp_path, monkeypatch, whose):
    """The script turns Ctrl-C into exit 130; in the audit, it stops the audit instead of failing a check."""
    planted = tmp_path / "tools" / "health_check.py"
    planted.parent.mkdir()
    planted.write_text("raise SystemExit(130)\n")
    module = _the_checks_conftest(monkeypatch)
    if whose.startswith("this"):
        monkeypatch.setattr(module, "HEALTH_CHECK", planted)
    with pytest.raises(KeyboardInterrupt):
        module.run_health_check(tmp_path, settings.build({}, tmp_path))


def test_the_audits_run_of_the_real_script_proves_a_healthy_database(project, target, monkeypatch):
    """The real script, through its own flags, probe, report and _cli.run, against a real database;
    the audit's own modules are the same objects afterwards."""
    module = _the_checks_conftest(monkeypatch)
    write_env(project, f"DB_URL={target.url}\n")
    monkeypatch.delenv("DB_URL", raising=False)
    probe_module = sys.modules["tools.core.probe"]
    run = module.run_health_check(project, settings.build({}, project))
    assert (run.code, run.verdict, run.problem) == (0, "✅ System Healthy", None), run.stdout + run.stderr
    assert "market_data: 120 rows" in run.stdout and target.role.password not in run.stdout
    assert sys.modules["tools.core.probe"] is probe_module


@pytest.mark.parametrize("bootstrap", ["kept", "removed"])
def test_the_audits_run_starts_the_script_as_a_fresh_python_would(bootstrap, project, tmp_path, monkeypatch):
    """A script that cannot find its own modules when monitoring starts it must fail in the audit
    too, even though the audit has them loaded."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "tools", checkout / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    script = checkout / "tools" / "health_check.py"
    text = script.read_text()
    line = next(line for line in text.splitlines() if line.startswith("sys.path.insert(0"))
    if bootstrap == "removed":
        script.write_text(text.replace(line, "pass"))
    module = _the_checks_conftest(monkeypatch)
    monkeypatch.setattr(module, "HEALTH_CHECK", script)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if Path(entry or ".").resolve() != REPO])
    monkeypatch.delenv("DB_URL", raising=False)
    run = module.run_health_check(checkout, settings.build({}, checkout))
    if bootstrap == "removed":
        assert run.code == 1 and "exited 1: ModuleNotFoundError: No module named 'tools'" in run.problem
    else:  # it finds its modules, and stops where it should: no DB_URL in this project
        assert run.code == 2 and "DB_URL" in run.problem, run.problem
