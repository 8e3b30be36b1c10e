"""The standalone monitoring probe works end to end, in its own process, with the project's settings."""

from __future__ import annotations

import pytest


@pytest.mark.check("health check passes")
def test_health_check_passes(db, health_check_run, evidence) -> None:
    """The monitoring probe `tools/health_check.py`, run as monitoring runs it, exits 0 and reports the system healthy."""
    code, stdout, stderr = health_check_run.outcome()
    verdict = (stdout.strip().splitlines() or ["(no output)"])[-1]
    evidence.add("command", health_check_run.shown)
    evidence.add("exit code", code)
    evidence.add("verdict", verdict)
    if code != 0:
        detail = [line.strip() for line in stdout.splitlines() if "❌" in line or "Error:" in line]
        detail += stderr.strip().splitlines()[-1:]
        pytest.fail(f"tools/health_check.py exited {code}: " + " | ".join(detail or [verdict]), pytrace=False)
