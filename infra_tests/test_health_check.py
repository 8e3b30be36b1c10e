"""The standalone monitoring probe works end to end, with the project's settings."""

from __future__ import annotations

import pytest


@pytest.mark.check("health check passes")
def test_health_check_passes(db, health_check_run, evidence) -> None:
    """The monitoring probe `tools/health_check.py`, run as monitoring runs it, exits 0 and reports the system healthy."""
    run = health_check_run
    evidence.add("command", run.shown)
    evidence.add("exit code", "none" if run.code is None else run.code)
    evidence.add("verdict", run.verdict)
    if run.problem:
        pytest.fail(run.problem, pytrace=False)
