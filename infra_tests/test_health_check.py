"""The standalone monitoring probe works end to end, in its own process, with the project's settings."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tools.core.settings import AuditSettings

HEALTH_CHECK = Path(__file__).resolve().parents[1] / "tools" / "health_check.py"


@pytest.mark.check("health check passes")
def test_health_check_passes(db, project_root: Path, audit_settings: AuditSettings, evidence) -> None:
    """The monitoring probe `tools/health_check.py`, run as monitoring runs it, exits 0 and reports the system healthy."""
    timeouts = audit_settings.timeouts
    command = [
        sys.executable, str(HEALTH_CHECK), "--root", str(project_root),
        "--tables", " ".join(audit_settings.tables),
        "--connect-timeout", str(timeouts.connect), "--query-timeout", str(timeouts.query),
        "--exact-count-limit", str(audit_settings.exact_count_limit),
    ]  # fmt: skip
    budget = timeouts.connect + timeouts.answer * (2 * len(audit_settings.tables) + 1) + 15
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        pytest.fail(f"tools/health_check.py did not finish within {budget:g} s: run it by hand to see where it stops", pytrace=False)
    verdict = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    evidence.add("command", shlex.join(["python", "tools/health_check.py", *command[2:]]))
    evidence.add("exit code", done.returncode)
    evidence.add("verdict", verdict)
    if done.returncode != 0:
        detail = [line.strip() for line in done.stdout.splitlines() if "❌" in line or "Error:" in line]
        detail += done.stderr.strip().splitlines()[-1:]
        pytest.fail(f"tools/health_check.py exited {done.returncode}: " + " | ".join(detail or [verdict]), pytrace=False)
