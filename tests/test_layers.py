"""The three rooms stay apart: the library never imports pytest, the plugin builds only on the library,
the command-line tools load no pytest at all, and the audit loads none of the suite's own test plugins."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, clean_env

PACKAGE = REPO / "infra_audit"
TOOLS = ("health_check.py", "cleanup_root.py", "sandbox.py", "benchmark.py")
# Each room and the rooms it may import (itself included); pytest only where it says so.
ROOMS = {
    "core": ({"infra_audit.core"}, False),
    "fixer": ({"infra_audit.core", "infra_audit.fixer"}, False),
    "sandbox": ({"infra_audit.core", "infra_audit.sandbox"}, False),
    "plugin": ({"infra_audit.core", "infra_audit.plugin"}, True),
    "cli": (
        {"infra_audit.core", "infra_audit.fixer", "infra_audit.sandbox", "infra_audit.cli", "infra_audit.checks"},
        False,
    ),
}
MODULES = [(room, path) for room in ROOMS for path in sorted((PACKAGE / room).glob("*.py"))]
CHECKS = sorted((REPO / "infra_tests").glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(("room", "path"), MODULES, ids=lambda value: getattr(value, "name", value))
def test_each_room_knows_only_what_is_below_it(room: str, path: Path) -> None:
    allowed, may_use_pytest = ROOMS[room]
    names = imported(path)
    ours = {name for name in names if name.startswith("infra_audit.")}
    assert all(name.startswith(tuple(allowed)) for name in ours), f"{room}/{path.name} reaches out: {ours}"
    uses_pytest = {name for name in names if name.split(".")[0] in ("pytest", "_pytest")}
    if not may_use_pytest and path.name != "audit.py":  # the audit's command runs pytest, and imports it to
        assert not uses_pytest, f"{room}/{path.name} imports pytest"


@pytest.mark.parametrize("path", CHECKS, ids=lambda path: path.name)
def test_the_checks_build_on_the_plugin_and_the_library(path: Path) -> None:
    ours = {name for name in imported(path) if name.startswith(("infra_audit", "tools", "tests"))}
    assert all(name.startswith(("infra_audit.plugin", "infra_audit.core")) or name == "infra_audit" for name in ours), (
        ours
    )


def modules_loaded(*command: str) -> list[str]:
    """Every module a python command imports, from Python's own import log."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert modules, done.stderr
    return modules


def pytest_modules_loaded(*command: str) -> list[str]:
    """The pytest modules a command imports."""
    return [module for module in modules_loaded(*command) if module.split(".")[0] in ("pytest", "_pytest")]


def test_the_plugins_entry_point_is_cheap_to_load() -> None:
    """pytest loads it in every run of a project that installed the audit: no psycopg, no report."""
    modules = modules_loaded("-c", "import infra_audit.plugin.settings")
    assert "infra_audit.plugin.settings" in modules, modules
    assert not [name for name in modules if name.split(".")[0] in ("psycopg", "dotenv")], modules
    assert "infra_audit.plugin.html" not in modules and "infra_audit.plugin.report" not in modules


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tool_loads_no_pytest(tool: str) -> None:
    assert pytest_modules_loaded(str(REPO / "tools" / tool), "--help") == []


def test_a_health_check_run_loads_no_pytest(tmp_path: Path) -> None:
    """A whole run, not only --help: settings from pytest.ini, .env, the probe and the report."""
    assert pytest_modules_loaded(str(REPO / "tools" / "health_check.py"), "--root", str(tmp_path)) == []


def test_the_audit_loads_none_of_the_suites_test_plugins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "infra_tests", "--help"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--postgresql" not in done.stdout and "hypothesis" not in done.stdout.lower()
    assert "--freshness" in done.stdout and "--project-root" in done.stdout


def _installed_pytest_html(site: Path) -> Path:
    """An installed pytest-html (entry point ``html``) that leaves a mark when imported and claims
    ``--html`` as the real one does; the mark's path."""
    mark = site / "pytest-html-was-imported"
    (site / "pytest_html").mkdir(parents=True)
    (site / "pytest_html" / "__init__.py").write_text("")
    (site / "pytest_html" / "plugin.py").write_text(
        f"import pathlib\npathlib.Path({str(mark)!r}).touch()\n\ndef pytest_addoption(parser):\n    parser.addoption('--html')\n"
    )
    dist = site / "pytest_html-99.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-html\nVersion: 99.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nhtml = pytest_html.plugin\n")
    return mark


def test_the_audit_writes_its_report_without_pytest_html(tmp_path: Path) -> None:
    """The report is the audit's own page: an installed pytest-html is never loaded, its flags work
    without it, and its flags work without it."""
    mark = _installed_pytest_html(tmp_path / "site")
    env = clean_env(PYTHONPATH=str(tmp_path / "site"))
    report = tmp_path / "audit.html"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "infra_tests",
        "--project-root",
        str(tmp_path),
        f"--history={tmp_path / 'h'}",
    ]
    done = subprocess.run(
        [*command, f"--html={report}", "--self-contained-html", "--metadata", "Ticket", "#044"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "audit FAILED" in done.stdout, done.stdout + done.stderr  # no DB_URL here
    assert not mark.exists(), "the installed pytest-html was loaded"
    assert "<td>#044</td>" in report.read_text(encoding="utf-8")
