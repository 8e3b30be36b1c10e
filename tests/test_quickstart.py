"""tools/quickstart.py: when it starts the sandbox, how it makes and reuses .venv/, and its one-line errors.

The whole path (fresh clone, ordinary user and root, with and without a system PostgreSQL) is what
.ci/run runs; these pin the decisions, each on a throwaway checkout folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, clean_env
from tools import quickstart
from tools.core.errors import InfraError


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
def test_a_database_in_the_environment_is_audited_instead(checkout: Path, monkeypatch: pytest.MonkeyPatch,
                                                          variable: str) -> None:  # fmt: skip
    monkeypatch.setenv(variable, "db.example")
    assert quickstart.db_url_configured()


@pytest.mark.parametrize("text", ["DB_URL=postgresql://me:pw@db/prod\n", "POSTGRES_HOST=db\n", "this is not KEY=value\n"])
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
    done = subprocess.run([sys.executable, str(REPO / "tools" / "quickstart.py"), "audti"],
                          capture_output=True, text=True, env=clean_env(), timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("quickstart.py: error: argument command: invalid choice: 'audti'")
    assert len(done.stderr.splitlines()) == 1 and not os.path.exists(REPO / "audti")
