"""``health check passes``: the real health-check command, in a process of its own, as monitoring runs it.

It starts as the audit is turned on (``start``, before the checks are collected: its Python start-up
and its connection overlap the audit's own imports, collection and checks; its own waits, a locked
table, overlap the audit's), and is stopped at once if the run turns out not to select its check. The command is the project's script (``infra_health_check``, run with the audit's python)
or the installed ``infra-health-check``; it gets the audit's settings as flags and ``--json``, and
its verdict is read from that one JSON object, not from its text.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra_audit.core.settings import AuditSettings
from infra_audit.core.text import typed_path
from infra_audit.plugin import settings as settings_plugin

CHECK_NAME = "test_health_check_passes"
START_UP_ALLOWANCE_S = 30  # Python's start-up on a loaded machine, beyond the command's own deadlines
_RUNNING = pytest.StashKey["HealthCheckProcess"]()


@dataclass(frozen=True)
class HealthCheckRun:
    """One finished run: the command as a person would type it, its exit code (None: it did not end
    in time) and its output."""

    shown: str
    code: int | None
    stdout: str
    stderr: str

    @property
    def outcome(self) -> dict:
        """Its JSON object (empty when it printed none)."""
        try:
            found = json.loads(self.stdout)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    @property
    def verdict(self) -> str:
        if self.code is None:
            return "(it did not finish)"
        return "healthy" if self.outcome.get("healthy") is True else "unhealthy"

    @property
    def problem(self) -> str | None:
        """Why this run does not prove the system healthy, in the command's own words; None when it does."""
        if self.code == 0 and self.outcome.get("healthy") is True:
            return None
        command = self.shown.split(" --")[0]  # the command without its flags
        if self.code == 0:
            return f"{command} exited 0 without a healthy verdict in its JSON: run it by hand and fix it"
        said = self.outcome.get("error") or _failed_parts(self.outcome) or self.stderr.strip().splitlines()[-1:]
        detail = said if isinstance(said, str) else " | ".join(said) or "(no output)"
        ended = "did not finish" if self.code is None else f"exited {self.code}"
        return f"{command} {ended}: {detail}"


def _failed_parts(outcome: dict) -> list[str]:
    parts = [*outcome.get("tables", {}).items(), *outcome.get("freshness", {}).items()]
    return [
        f"{name}: {result.get('error')}" for name, result in parts if isinstance(result, dict) and not result.get("ok")
    ]


class HealthCheckProcess:
    """The command, running; ``result()`` waits for it within a deadline its own deadlines fit in."""

    def __init__(self, settings: AuditSettings) -> None:
        project_root, timeouts = settings.project_root, settings.timeouts
        flags = [
            "--root",
            str(project_root),
            "--tables",
            " ".join(settings.tables),
            "--connect-timeout",
            str(timeouts.connect),
            "--query-timeout",
            str(timeouts.query),
            "--exact-count-limit",
            str(settings.exact_count_limit),
            "--freshness",
            " ".join(rule.text for rule in settings.freshness),
            "--freshness-group",
            settings.freshness_group or "",
            "--json",
        ]
        if settings.health_check is not None:
            command, typed = (
                [sys.executable, str(settings.health_check)],
                ["python3", typed_path(settings.health_check, project_root)],
            )
        else:
            installed = Path(sys.executable).with_name("infra-health-check")
            command = (
                [str(installed)] if installed.is_file() else [sys.executable, "-m", "infra_audit.cli.health_check"]
            )
            typed = ["infra-health-check"]
        self.shown = shlex.join([*typed, *flags])
        # a rule with a warning age walks its groups twice
        queries = len(settings.tables) * 3 + sum(3 + (rule.warn is not None) for rule in settings.freshness) + 2
        self.deadline = time.monotonic() + timeouts.connect + queries * timeouts.answer + START_UP_ALLOWANCE_S
        self._missing = (
            None if settings.health_check is None or settings.health_check.is_file() else settings.health_check
        )
        self._process = None
        if self._missing is None:
            self._process = subprocess.Popen(
                [*command, *flags],
                cwd=project_root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def result(self) -> HealthCheckRun:
        if self._process is None:
            return HealthCheckRun(self.shown, None, "", f"{self._missing} does not exist (infra_health_check)")
        try:
            stdout, stderr = self._process.communicate(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            return HealthCheckRun(self.shown, None, "", "it did not finish within its deadline")
        if self._process.returncode == 130:
            raise KeyboardInterrupt
        return HealthCheckRun(self.shown, self._process.returncode, stdout, stderr)

    def stop(self) -> None:
        """End it (the audit was interrupted, or it overran): nothing of the audit outlives the audit."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def start(config: pytest.Config) -> None:
    """Start the command now, unless this run will run no check (``--collect-only``, ``--help``)."""
    option = config.option
    if not (option.collectonly or getattr(option, "help", False) or getattr(option, "version", False)):
        running(config)


def running(config: pytest.Config) -> HealthCheckProcess:
    """The audit's one health-check process, started now if ``start`` did not start it."""
    if _RUNNING not in config.stash:
        found = settings_plugin.settings(config)
        config.stash[_RUNNING] = process = HealthCheckProcess(found)
        config.add_cleanup(process.stop)
    return config.stash[_RUNNING]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A run that does not select the check (``-k``, a file path) does not keep its command running."""
    if _RUNNING in session.config.stash and not any(item.name == CHECK_NAME for item in session.items):
        session.config.stash[_RUNNING].stop()
        del session.config.stash[_RUNNING]
