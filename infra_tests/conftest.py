"""Loaded only when the audit runs (`pytest infra_tests`, or plain `pytest`): turn its reports on,
and run the monitoring probe for its check.

`tryfirst` puts the default HTML report in place before the report plugins read their options;
`--html PATH` given on the command line wins.
"""

from __future__ import annotations

import io
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import plugin
from tools.core.health import HEALTHY
from tools.core.settings import AuditSettings

HEALTH_CHECK = Path(__file__).resolve().parents[1] / "tools" / "health_check.py"
EXIT_INTERRUPTED = 130


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    plugin.activate(config, Path(__file__).parent)


@dataclass(frozen=True)
class HealthCheckRun:
    """One run of `tools/health_check.py` with the audit's settings: the script as the command shows it
    (relative to the audited root when it is that project's own, else its full path), its flags, exit
    code and output (``code`` is None when the script ended without an exit code)."""

    script: str
    flags: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        return shlex.join(["python3", self.script, *self.flags])

    @property
    def verdict(self) -> str:
        """The report's last line (the spec's verdict)."""
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else "(no output)"

    @property
    def problem(self) -> str | None:
        """Why this run does not prove the system healthy, in the probe's own words; None when it does."""
        if self.code != 0:
            detail = [line.strip() for line in self.stdout.splitlines() if "❌" in line or "Error:" in line]
            detail += self.stderr.strip().splitlines()[-1:]
            ended = "ended without an exit code" if self.code is None else f"exited {self.code}"
            return f"tools/health_check.py {ended}: " + " | ".join(detail or [self.verdict])
        if self.verdict != HEALTHY:
            return (f'tools/health_check.py exited 0 without its verdict "{HEALTHY}" (its last line: '
                    f"{self.verdict}): run it by hand and fix its report")  # fmt: skip
        return None


def run_health_check(project_root: Path, settings: AuditSettings) -> HealthCheckRun:
    """Run the project's ``tools/health_check.py`` with the audit's settings as its flags: its
    bootstrap, argument parsing, probe, report and exit code, as monitoring runs them.

    This checkout's own script runs as its own ``__main__`` in the audit's interpreter (a second
    Python start-up would double the audit's time). It starts as a fresh ``python3
    tools/health_check.py`` would (``_as_a_fresh_run``), so a script that could not find its own
    modules fails here too. Its connection and deadlines are its own; an uncaught error is exit 1,
    as Python's; only Ctrl-C passes through, to stop the audit. Another project's script (the audit
    run with ``--project-root``) runs in a process of its own: its modules are not ours.
    """
    timeouts = settings.timeouts
    flags = (
        "--root", str(project_root), "--tables", " ".join(settings.tables),
        "--connect-timeout", str(timeouts.connect), "--query-timeout", str(timeouts.query),
        "--exact-count-limit", str(settings.exact_count_limit),
        "--freshness", " ".join(rule.text for rule in settings.freshness),
        "--freshness-group", settings.freshness_group or "",
    )  # fmt: skip
    script = project_root / "tools" / "health_check.py"
    if _resolved(str(script)) != HEALTH_CHECK:
        return _run_elsewhere(project_root, script, flags, settings)
    stdout, stderr = io.StringIO(), io.StringIO()
    code: object = None
    try:
        with _as_a_fresh_run(HEALTH_CHECK, flags), redirect_stdout(stdout), redirect_stderr(stderr):
            runpy.run_path(str(HEALTH_CHECK), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - what Python would print before exiting 1
        code = 1
        stderr.write(f"Traceback (most recent call last): ...\n{type(exc).__name__}: {exc}\n")
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    shown = HEALTH_CHECK.relative_to(project_root) if HEALTH_CHECK.is_relative_to(project_root) else HEALTH_CHECK
    return HealthCheckRun(str(shown), flags, code if isinstance(code, int) else None, stdout.getvalue(), stderr.getvalue())


def _run_elsewhere(project_root: Path, script: Path, flags: tuple[str, ...], settings: AuditSettings) -> HealthCheckRun:
    """Another project's script, in its own process, within a deadline its own deadlines fit in."""
    shown = "tools/health_check.py"
    if not script.is_file():
        return HealthCheckRun(shown, flags, None, "", f"{script} does not exist")
    queries = len(settings.tables) + len(settings.freshness) + 2  # the connection's own, and the clock's
    deadline = settings.timeouts.connect + queries * (settings.timeouts.answer) + 30  # + Python's start-up
    try:
        done = subprocess.run([sys.executable, str(script), *flags], cwd=project_root, capture_output=True,
                              text=True, timeout=deadline, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return HealthCheckRun(shown, flags, None, "", f"it did not finish within {deadline:g} s")
    if done.returncode == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    return HealthCheckRun(shown, flags, done.returncode, done.stdout, done.stderr)


@contextmanager
def _as_a_fresh_run(script: Path, flags: tuple[str, ...]) -> Iterator[None]:
    """``sys.argv`` and ``sys.path`` as ``python3 script FLAGS`` starts with them (the script's folder
    first, the checkout not on the path), and no ``tools`` package loaded: the script's own first line
    must find it, as in a fresh process. Its modules stay loaded (a fresh process would load the same
    files; loading them again would cost the audit more than its other checks). All put back after."""
    checkout = script.resolve().parents[1]
    saved_argv, saved_path, saved_package = sys.argv, sys.path[:], sys.modules.pop("tools", None)
    sys.argv = [str(script), *flags]
    sys.path[:] = [str(script.parent), *(entry for entry in saved_path if _resolved(entry) != checkout)]
    try:
        yield
    finally:
        sys.modules.pop("tools", None)
        if saved_package is not None:
            sys.modules["tools"] = saved_package
        sys.argv, sys.path[:] = saved_argv, saved_path


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry or ".").resolve()
    except (OSError, RuntimeError, ValueError):
        return None


@pytest.fixture(scope="session")
def health_check_run(project_root: Path, audit_settings: AuditSettings) -> HealthCheckRun:
    """The monitoring probe's run for this audit."""
    return run_health_check(project_root, audit_settings)
