"""The audit in a user's own repository, as the README's "In your own project" says, with real parts:
a virtualenv of the user's own (pytest 8 pinned, pytest-xdist and pytest-html installed), a project of
the spec's shape (its pyproject.toml with pytest settings, src/, tests/, scripts/, a tracked bin/ of its
own scripts, a venv/ folder, docs/) and this checkout installed from a copy, not in place."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, clean_env
from tests.venv_roots import git

USER_PYTEST = "pytest==8.3.5"  # the user's own pin, older than this checkout's
PROJECT_PYPROJECT = """[project]
name = "mt5-crs"
version = "1.0.0"
dependencies = ["psycopg[binary]"]

[tool.pytest.ini_options]
pythonpath = ["src"]
testpaths = ["tests"]
addopts = "-q"
"""


def readme_block() -> str:
    """The one bash block of the README's "In your own project" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## In your own project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "one bash block"
    return blocks[0]


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's virtualenv: their pytest pin and the plugins of their habits, not yet the audit."""
    venv = tmp_path_factory.mktemp("user-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, USER_PYTEST, "pytest-xdist", "pytest-html"], check=True, timeout=600, env=clean_env())
    return venv


@pytest.fixture(scope="session")
def checkout_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's tracked files (and changes), where pip may build: the checkout itself stays as it is."""
    copy = tmp_path_factory.mktemp("infra-audit") / "infra-audit"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    return copy


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A repository of the spec's shape, committed: its tests pass with its own pytest settings."""
    root = tmp_path / "mt5-crs"
    for folder in ("src/mt5crs", "tests", "scripts", "bin", "docs", "venv"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text(PROJECT_PYPROJECT)
    (root / "src" / "mt5crs" / "__init__.py").write_text("def answer() -> int:\n    return 42\n")
    (root / "tests" / "test_core.py").write_text(
        "from mt5crs import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    )
    (root / "bin" / "feed.sh").write_text("#!/bin/sh\necho feed\n")
    (root / "bin" / "feed.sh").chmod(0o755)
    (root / "scripts" / "job.py").write_text("print('job')\n")
    (root / "docs" / "README.md").write_text("# mt5-crs\n")
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # the project's own venv/, kept
    (root / ".gitignore").write_text("venv/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def in_venv(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell with ``venv`` active."""
    env = clean_env(**extra)
    for name in ("PYTHONPATH", "PYTEST_CURRENT_TEST"):  # a shell of the user's, not this suite's test
        env.pop(name, None)
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def run(command: list[str] | str, root: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        shell=isinstance(command, str),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def installed(user_venv: Path, checkout_copy: Path, user_project: Path, target) -> Iterator[dict[str, str]]:
    """The README's block run as written in the user's project; the environment it ran in."""
    env = in_venv(user_venv, INFRA_AUDIT=str(checkout_copy), DB_URL=target.url)
    done = run(["bash", "-euo", "pipefail", "-c", readme_block()], user_project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit PASSED: 8 passed" in done.stdout, done.stdout
    yield env


def test_the_readme_block_audits_the_project_and_its_own_tests_run_as_before(
    installed, user_project, user_venv, target
):
    before = (user_project / "pyproject.toml").read_bytes()
    assert before.startswith(PROJECT_PYPROJECT.encode()), "the project's own config is kept byte for byte"
    assert b"[tool.infra-audit]" in before
    assert target.role.password not in (user_project / "reports").joinpath("infra-history.jsonl").read_text()
    written = sorted(p.name for p in (user_project / "reports").iterdir())
    assert len(written) == 2 and written[0].startswith("infra-audit-") and written[1] == "infra-history.jsonl"
    status = run(["git", "status", "--porcelain"], user_project, installed).stdout.splitlines()
    assert sorted(status) == [" M pyproject.toml", "?? reports/"], "nothing else was written into the project"

    shutil.rmtree(user_project / "reports")
    own = run([str(user_venv / "bin" / "pytest")], user_project, installed)
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout + own.stderr
    assert "infrastructure audit" not in own.stdout and not (user_project / "reports").exists()
    version = run([str(user_venv / "bin" / "pytest"), "--version"], user_project, installed)
    assert "pytest 8.3.5" in version.stdout + version.stderr, "the project's pin stands"


@pytest.mark.parametrize("where", ["addopts", "PYTEST_ADDOPTS"])
def test_pytest_xdist_in_the_users_habits_gives_the_same_verdict(installed, user_project, where):
    config = user_project / "pyproject.toml"
    env = dict(installed)
    if where == "addopts":
        config.write_text(config.read_text().replace('addopts = "-q"', 'addopts = "-q -n 2"'))
    else:
        env["PYTEST_ADDOPTS"] = "-n auto"
    done = run(["infra-audit"], user_project / "src", env)  # from a folder of the project: the project is audited
    assert done.returncode == 0 and "audit PASSED: 8 passed" in done.stdout, done.stdout + done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr and f"root: {user_project}\n" in done.stdout


def test_pytest_html_loaded_by_the_project_writes_its_report_and_no_secret(installed, user_project, target):
    """The project's config loads pytest-html: the audit still writes its own report, and pytest-html's
    (its Environment table from CI variables included) holds no password, even for a failing check."""
    config = user_project / "pyproject.toml"
    config.write_text(config.read_text().replace('addopts = "-q"', 'addopts = "-q -p pytest_html --html=theirs.html"'))
    env = {**installed, "GIT_URL": f"https://ci:{target.role.password}@git.example/mt5-crs.git", "BUILD_ID": "7"}
    done = run(["infra-audit", "--tables=market_data no_such_table"], user_project, env)
    assert done.returncode == 1 and "audit FAILED" in done.stdout, done.stdout + done.stderr
    theirs = (user_project / "theirs.html").read_text(encoding="utf-8")
    ours = next((user_project / "reports").glob("infra-audit-*.html")).read_text(encoding="utf-8")
    assert "no_such_table" in theirs and "BUILD_ID" in theirs, "pytest-html wrote its report of this run"
    assert "https://ci:***@git.example" in theirs
    for text in (theirs, ours, done.stdout + done.stderr):
        assert target.role.password not in text


def test_the_pre_commit_hooks_entry_runs_the_root_check_in_the_project(installed, user_project, user_venv):
    """The hook's entry, as pre-commit runs it in the repository being committed: green on a clean root,
    red with the installed fixer named once a venv is made in the root by accident."""
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    entry = re.search(r"^  entry: (.*)$", hooks, re.MULTILINE).group(1)
    assert run(entry, user_project, installed).returncode == 0
    subprocess.run([str(user_venv / "bin" / "python"), "-m", "venv", "--without-pip", str(user_project)], check=True)
    done = run(entry, user_project, installed)
    assert done.returncode == 1 and f"fix: infra-cleanup-root --root {user_project}" in done.stdout, done.stdout


@pytest.mark.parametrize("config", ["pyproject.toml", "pytest.ini"])
def test_a_pyproject_that_cannot_be_read_is_one_usage_line(installed, user_project, config):
    """Read by pytest (its config) or only by the audit (pytest.ini is pytest's): one line naming the
    file, pytest's usage exit code 4 as for any bad setting, no traceback."""
    pyproject = user_project / "pyproject.toml"
    if config == "pytest.ini":
        (user_project / "pytest.ini").write_text("[pytest]\n")
    pyproject.write_text(pyproject.read_text() + "\n[tool.infra-audit\n")
    done = run(["infra-audit"], user_project, installed)
    assert done.returncode == 4, done.stdout + done.stderr
    assert str(pyproject) in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr
