"""tools/stdout_guard.py: a reader that goes away (`| head -1`) neither crashes a tool nor stops its work."""

from __future__ import annotations

import os
import subprocess
import sys

from infra_audit.core import venv_artifacts
from tests.support import REPO


def test_fixer_piped_into_head_finishes_its_work_without_a_traceback(tmp_path):
    root = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    fixer = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "cleanup_root.py"), "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line = fixer.stdout.readline()
    fixer.stdout.close()  # what `| head -1` does after its line
    _, stderr = fixer.communicate(timeout=60)
    assert first_line.strip()
    assert fixer.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert venv_artifacts.scan_root(root).clean, "the work went on to the end after the reader left"
    assert len(list(root.glob("_archive_venv_cleanup_*/manifest.json"))) == 1


def test_a_file_name_the_terminal_cannot_encode_is_escaped_not_a_crash(tmp_path):
    root = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    odd = root / "bin" / os.fsdecode(b"tool-\xff")
    odd.write_text(f"#!{root}/bin/python\nprint('venv entry point')\n")
    (root / "bin" / "deploy.sh").write_text("#!/bin/sh\n")  # a project script: bin/ stays, its venv files are listed
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "cleanup_root.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "tool-\\udcff" in done.stdout or "tool-\\xff" in done.stdout
    assert venv_artifacts.scan_root(root).clean


def test_psycopgs_own_warnings_never_print_beside_the_one_error_line():
    """On Ctrl-C psycopg logs the rollback it could not do ("error ignored in rollback on
    <psycopg.Connection ...>"); a tool's stderr is its one error line."""
    script = (
        "import logging, sys; sys.path.insert(0, sys.argv[1])\n"
        "from infra_audit.cli import convention\n"
        "def work():\n"
        "    logging.getLogger('psycopg').warning('error ignored in rollback on <psycopg.Connection>')\n"
        "    raise KeyboardInterrupt\n"
        "sys.exit(convention.run('tool.py', work, as_json=False))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, "tool.py: error: interrupted\n")
