"""Plain helpers for the suite's own tests: throwaway configuration and the audit run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Variables that would leak the developer's own configuration into a test's subprocess.
CONFIG_VARIABLES = ("DB_URL", "PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS")


def write_env(root: Path, text: str) -> None:
    (root / ".env").write_text(text)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: ours, minus anything that configures a database, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES and not k.startswith("POSTGRES_")}
    env.pop("INFRA_SELFTEST_PG_URL", None)
    return {**env, **extra}


@dataclass(frozen=True)
class AuditRun:
    """One `pytest infra_tests` run as the user would start it, with everything it wrote."""

    exit_code: int
    output: str
    junit: str
    outcomes: dict[str, tuple[str, str]]
    seconds: float

    def outcome(self, test: str) -> str:
        return self.outcomes[test][0]

    def message(self, test: str) -> str:
        return self.outcomes[test][1]


def _junit_outcomes(text: str) -> dict[str, tuple[str, str]]:
    """test name -> (passed|failed|error|skipped, message) from a JUnit XML report."""
    outcomes = {}
    for case in ET.fromstring(text).iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome, message = {"failure": "failed"}.get(child.tag, child.tag), child.get("message", "")
                message = message + "\n" + (child.text or "")
                break
        outcomes[case.get("name")] = (outcome, message)
    return outcomes




def audit(root: Path, *args: str, junit: Path, env: dict[str, str] | None = None, timeout: float = 120) -> AuditRun:
    """Run `python -m pytest infra_tests --project-root ROOT ARGS...` from this repository, as a user would."""
    command = [sys.executable, "-m", "pytest", str(REPO / "infra_tests"), "--project-root", str(root),
               f"--junitxml={junit}", *args]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO, env=env if env is not None else clean_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    text = junit.read_text() if junit.exists() else ""
    return AuditRun(done.returncode, done.stdout + done.stderr, text, _junit_outcomes(text) if text else {}, seconds)
