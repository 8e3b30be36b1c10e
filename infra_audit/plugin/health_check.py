"""``health check passes``: the real health-check command, in a process of its own, as monitoring runs it.

It starts as the audit is turned on (``start``, before the audit loads psycopg and collects the checks:
its Python start-up and its connection overlap the audit's own imports, collection and checks; its own
waits, a locked table, overlap the audit's), and is stopped at once if the run turns out not to select
its check. The command is the project's script (``infra_health_check``, run with the audit's python)
or the installed ``infra-health-check``; it gets the audit's settings as flags and ``--json``, and
its verdict is read from that one JSON object, not from its text.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra_audit.core import settings as core_settings
from infra_audit.core.errors import SettingsError
from infra_audit.core.settings import AuditSettings
from infra_audit.core.text import typed_path
from infra_audit.plugin import settings as settings_plugin

CHECK_NAME = "test_health_check_passes"
# the audit's settings the command takes, as flags of the same names
COMMAND_SETTINGS = ("tables", "connect_timeout", "query_timeout", "exact_count_limit", "freshness", "freshness_group")
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
    """The command, running; ``result()`` waits for it within a deadline its own deadlines fit in.

    It starts from the settings' texts (``texts``, by ini key): validating them loads the probe and
    psycopg, which this process's own start-up is meant to overlap. The command validates the same
    texts itself, and the audit stops on any it refuses before a check reads this run."""

    def __init__(self, texts: Mapping[str, str], rootdir: Path) -> None:
        root = core_settings.project_root(texts, rootdir)
        script = core_settings.path_setting(texts["infra_health_check"], root, "health_check")
        passed_on = [core_settings.BY_KEY[key] for key in COMMAND_SETTINGS]
        flags = ["--root", str(root), *(part for s in passed_on for part in (s.flag, texts[s.ini])), "--json"]
        if script is not None:
            command, typed = [sys.executable, str(script)], ["python3", typed_path(script, root)]
        else:
            installed = Path(sys.executable).with_name("infra-health-check")
            command = (
                [str(installed)] if installed.is_file() else [sys.executable, "-m", "infra_audit.cli.health_check"]
            )
            typed = ["infra-health-check"]
        self.shown = shlex.join([*typed, *flags])
        self.started = time.monotonic()
        self._missing = None if script is None or script.is_file() else script
        self._process = None
        if self._missing is None:
            self._process = subprocess.Popen(
                [*command, *flags],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def result(self, settings: AuditSettings) -> HealthCheckRun:
        """Its run, waited for until its own deadlines under ``settings`` (the validated texts) have
        passed, with an allowance for Python's start-up."""
        if self._process is None:
            return HealthCheckRun(self.shown, None, "", f"{self._missing} does not exist (infra_health_check)")
        timeouts = settings.timeouts
        # a rule with a warning age walks its groups twice
        queries = len(settings.tables) * 3 + sum(3 + (rule.warn is not None) for rule in settings.freshness) + 2
        deadline = self.started + timeouts.connect + queries * timeouts.answer + START_UP_ALLOWANCE_S
        try:
            stdout, stderr = self._process.communicate(timeout=max(0.0, deadline - time.monotonic()))
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
    """Start the command now, unless this run will run no check (``--collect-only``, ``--help``); the
    command line as parsed for the first conftests, so that it can start before they load."""
    option = config.known_args_namespace
    if not (option.collectonly or getattr(option, "help", False) or getattr(option, "version", False)):
        running(config)


def running(config: pytest.Config) -> HealthCheckProcess:
    """The audit's one health-check process, started now if ``start`` did not start it."""
    if _RUNNING not in config.stash:
        try:
            process = HealthCheckProcess(settings_plugin.setting_texts(config), config.rootpath)
        except SettingsError as exc:
            raise pytest.UsageError(settings_plugin.advice(exc)) from None
        config.stash[_RUNNING] = process
        config.add_cleanup(process.stop)
    return config.stash[_RUNNING]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A run that does not select the check (``-k``, a file path) does not keep its command running."""
    if _RUNNING in session.config.stash and not any(item.name == CHECK_NAME for item in session.items):
        session.config.stash[_RUNNING].stop()
        del session.config.stash[_RUNNING]
