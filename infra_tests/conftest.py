"""Loaded only when the audit runs (`pytest infra_tests`, or plain `pytest`): turn its reports on,
and start the health check's process with the audit.

`tryfirst` puts the default HTML report in place before pytest-html reads its options; `--html
PATH` given on the command line wins.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import plugin
from tools.core.settings import AuditSettings

HEALTH_CHECK = Path(__file__).resolve().parents[1] / "tools" / "health_check.py"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    plugin.activate(config, Path(__file__).parent)


class HealthCheckRun:
    """`tools/health_check.py` in its own process with the audit's settings.

    Started when the audit starts (the ``health_check_run`` fixture), so the probe's own start-up and
    queries run beside the other checks instead of after them; its check reads the outcome.
    """

    def __init__(self, project_root: Path, settings: AuditSettings) -> None:
        timeouts = settings.timeouts
        self.command = [
            sys.executable, str(HEALTH_CHECK), "--root", str(project_root),
            "--tables", " ".join(settings.tables),
            "--connect-timeout", str(timeouts.connect), "--query-timeout", str(timeouts.query),
            "--exact-count-limit", str(settings.exact_count_limit),
            "--freshness", " ".join(rule.text for rule in settings.freshness),
            "--freshness-group", settings.freshness_group or "",
        ]  # fmt: skip
        queries = 2 * len(settings.tables) + 3 * len(settings.freshness) + 1
        self.budget = timeouts.connect + timeouts.answer * queries + 15
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=os.environ.copy())  # fmt: skip

    @property
    def shown(self) -> str:
        return shlex.join(["python3", "tools/health_check.py", *self.command[2:]])

    def outcome(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr), waiting at most what is left of the budget."""
        remaining = max(0.0, self.budget - (time.monotonic() - self.started))
        try:
            stdout, stderr = self.process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"tools/health_check.py did not finish within {self.budget:g} s: run it by hand to see "
                        "where it stops", pytrace=False)  # fmt: skip
        return self.process.returncode, stdout, stderr

    def stop(self) -> None:
        """End the process if it still runs (the check was not needed: the database was unreachable)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture(scope="session", autouse=True)
def health_check_run(
    request: pytest.FixtureRequest, project_root: Path, audit_settings: AuditSettings
) -> Iterator[HealthCheckRun | None]:
    """The health check's process, started once the audit's own connection is proven, so it runs beside
    the other checks; never when the database could not be reached (one attempt per run, not two)."""
    wanted = any(item.name == "test_health_check_passes" for item in request.session.items)
    if not wanted or request.getfixturevalue("db_attempt").error is not None:
        yield None
        return
    run = HealthCheckRun(project_root, audit_settings)
    try:
        yield run
    finally:
        run.stop()
