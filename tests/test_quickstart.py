"""tools/quickstart.py: when it starts the sandbox, how it makes and reuses .venv/, and its one-line errors.

The whole path (fresh clone, ordinary user and root, with and without a system PostgreSQL) is what
.ci/run runs; these pin the decisions, each on a throwaway checkout folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from infra_audit.core.errors import InfraError
from tests.support import REPO, clean_env
from tools import quickstart


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """quickstart pointed at an empty folder, with no database configured in the environment."""
    for name in quickstart.DB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(quickstart, "ROOT", tmp_path)
    monkeypatch.setattr(quickstart, "VENV", tmp_path / ".venv")
    return tmp_path


def test_nothing_configured_means_the_sandbox(checkout: Path) -> None:
    assert not quickstart.db_url_configured()
    (checkout / ".env").write_text("# nothing yet\nOTHER=1\n")
    assert not quickstart.db_url_configured()


@pytest.mark.parametrize("variable", ["DB_URL", "POSTGRES_HOST"])
def test_a_database_in_the_environment_is_audited_instead(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "db.example")
    assert quickstart.db_url_configured()


@pytest.mark.parametrize(
    "text", ["DB_URL=postgresql://me:pw@db/prod\n", "POSTGRES_HOST=db\n", "this is not KEY=value\n"]
)
def test_a_database_in_env_file_is_audited_instead(checkout: Path, text: str) -> None:
    """Also a .env that does not parse: it is the user's, and the audit names what is wrong with it."""
    (checkout / ".env").write_text(text)
    assert quickstart.db_url_configured()


def test_the_virtualenv_is_made_once_then_reused(checkout: Path) -> None:
    python = quickstart.ensure_venv()
    assert python == checkout / ".venv" / "bin" / "python" and quickstart.works(python, "-m", "pip", "--version")
    made = (checkout / ".venv" / "pyvenv.cfg").stat().st_mtime_ns
    assert quickstart.ensure_venv() == python
    assert (checkout / ".venv" / "pyvenv.cfg").stat().st_mtime_ns == made


def test_a_broken_virtualenv_is_named_and_left_alone(checkout: Path) -> None:
    (checkout / ".venv").mkdir()
    (checkout / ".venv" / "mine.txt").write_text("keep")
    with pytest.raises(InfraError, match="has no working python with pip: move it away"):
        quickstart.ensure_venv()
    assert (checkout / ".venv" / "mine.txt").read_text() == "keep"


def test_a_bad_command_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "quickstart.py"), "audti"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("quickstart.py: error: argument command: invalid choice: 'audti'")
    assert len(done.stderr.splitlines()) == 1 and not os.path.exists(REPO / "audti")


def _checkout_copy(root: Path) -> Path:
    """This checkout's tools and package in a folder of their own (no .venv/ yet)."""
    for folder in ("tools", "infra_audit"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _bare_python(where: Path, with_requirements: bool) -> Path:
    """A virtualenv's python without the requirements, or with this suite's packages (through a .pth)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    if with_requirements:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        (where / "lib" / version / "site-packages" / "suite.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return where / "bin" / "python"


@pytest.mark.skipif(os.name == "nt", reason="the virtualenv layout of POSIX")
def test_a_python_without_the_requirements_runs_the_tool_on_the_checkouts_venv(tmp_path: Path) -> None:
    """After `python3 tools/quickstart.py`, `python3 tools/health_check.py` works as the docs say,
    though Debian's python3 holds none of the requirements: the tool runs on .venv/bin/python."""
    checkout = _checkout_copy(tmp_path / "checkout")
    bare = _bare_python(tmp_path / "bare", with_requirements=False)
    command = [str(bare), str(checkout / "tools" / "health_check.py"), "--json", "--root", str(tmp_path)]

    alone = subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean_env())
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert alone.stderr.count("\n") == 1 and "lacks the requirements (psycopg, dotenv)" in alone.stderr
    assert json.loads(alone.stdout)["error"].startswith(f"this python ({bare}) lacks the requirements"), (
        "--json: one object"
    )

    _bare_python(checkout / ".venv", with_requirements=True)
    set_up = subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean_env())
    assert set_up.returncode == 2, set_up.stderr  # it ran, and stopped where it should: no DB_URL there
    assert json.loads(set_up.stdout)["error"].startswith("DB_URL is not set"), set_up.stdout

    broken = checkout / ".venv" / "bin" / "python"
    broken.unlink()
    broken.write_text(f'#!/bin/sh\nexec {bare} "$@"\n')  # a .venv/ python that lacks them too: once, then one line
    broken.chmod(0o755)
    looped = subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean_env())
    assert looped.returncode == 2 and looped.stderr.count("\n") == 1, looped.stderr
    assert "lacks the requirements (psycopg, dotenv)" in looped.stderr
    broken.unlink()
    broken.write_text("not a program")  # a .venv/ whose python cannot start: one line, never a loop
    stuck = subprocess.run(command, capture_output=True, text=True, timeout=60, env=clean_env())
    assert stuck.returncode == 2 and stuck.stderr.count("\n") == 1, stuck.stderr
    assert f"{broken} cannot start (Permission denied): move {checkout / '.venv'} away, then run" in stuck.stderr


@pytest.mark.parametrize(
    "args, run",
    [
        ([], ["tests"]),
        (["-x", "-k", "tests"], ["tests"]),
        (["tests/test_dburl.py"], []),
        (["tests/test_dburl.py::test_parse", "-q"], []),
        (["--deselect", "tests/test_dburl.py::test_parse"], ["tests"]),
        (["--ignore", "tests/test_benchmark.py", "-x", "tests/test_dburl.py"], []),
    ],
)
def test_a_path_inside_the_folder_runs_just_that(args: list[str], run: list[str]) -> None:
    """`quickstart.py tests tests/test_dburl.py`: pytest gets that file, not the whole folder besides."""
    assert quickstart.paths_or("tests", args) == run
