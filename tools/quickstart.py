#!/usr/bin/env python3
"""Set this checkout up and run the audit, or the suite's own tests, with nothing but python3 on PATH.

    python3 tools/quickstart.py          # set up, start the sandbox when no DB_URL is configured, audit
    python3 tools/quickstart.py tests    # set up, then the suite's own tests (`python -m pytest tests`)

Set-up: the virtualenv that is active, else ``.venv/`` in the checkout (made when missing: Debian
and Ubuntu refuse pip installs outside one, PEP 668), and the pinned requirements installed into
it. Then the script runs again inside that virtualenv to do the rest. Safe to run twice: the
virtualenv is reused, pip skips what is installed, and a running sandbox is kept. Arguments after
the command go to pytest (a path inside tests/ or infra_tests/ runs just that). Exit codes: pytest's; 2 when the set-up fails; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

try:  # run as a script, tools/ is first on sys.path; imported (by the tests), the checkout is
    import _checkout
except ImportError:
    from tools import _checkout

from infra_audit.cli import convention  # stdlib only: the set-up runs before the requirements are installed
from infra_audit.core.errors import ConfigError, InfraError
from infra_audit.core.text import typed_path

TOOL = "quickstart.py"
ROOT = Path(__file__).resolve().parents[1]
VENV = _checkout.VENV
REQUIREMENTS = ROOT / "requirements.txt"
SANDBOX_STATE = ROOT / ".sandbox" / "state.json"
IN_VENV_FLAG = "--in-venv"  # set when the script runs itself again inside the set-up virtualenv
DB_VARIABLES = ("DB_URL", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = convention.Parser(
        prog=TOOL, description="Set up this checkout, then run the audit or the suite's own tests."
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="audit",
        choices=("audit", "tests"),
        help="audit (default): `pytest infra_tests`; tests: `python -m pytest tests`",
    )
    parser.add_argument(IN_VENV_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(f"== {line}", flush=True)


def in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def ensure_venv() -> Path:
    """The python of .venv/, made with this interpreter when missing; a .venv/ it made but could not finish goes."""
    python = _checkout.venv_python(VENV)
    if VENV.exists() or VENV.is_symlink():
        if not works(python, "-m", "pip", "--version"):
            raise InfraError(f"{VENV} exists but has no working python with pip: move it away, then run again")
        say(f"using the virtualenv {VENV}")
        return python
    say(f"creating the virtualenv {VENV} ({sys.executable} -m venv)")
    done = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not works(python, "-m", "pip", "--version"):
        shutil.rmtree(VENV, ignore_errors=True)  # it did not exist before: this run made it
        reason = (done.stdout + done.stderr).strip().splitlines()
        hint = "apt-get install python3-venv" if any("ensurepip" in line for line in reason) else "see above"
        raise InfraError(
            f"{sys.executable} -m venv failed ({reason[-1] if reason else 'no pip in it'}): "
            f"install the venv module (Debian/Ubuntu: {hint}), then run again"
        )
    return python


def works(python: Path, *args: str) -> bool:
    try:
        return subprocess.run([str(python), *args], capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def set_up() -> Path:
    """The interpreter to run in, with the requirements installed into it."""
    if in_virtualenv():
        python = Path(sys.executable)
        say(f"using the active virtualenv {sys.prefix}")
    else:
        python = ensure_venv()
    say(f"installing {REQUIREMENTS.name} (pip)")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)]
    if subprocess.run(pip, cwd=ROOT, check=False).returncode != 0:
        raise InfraError(f"pip could not install {REQUIREMENTS} into {python}: see pip's message above")
    return python


def db_url_configured() -> bool:
    """Whether the user configured a database (environment or .env), as opposed to nothing at all."""
    from infra_audit.core import db_config

    if any(name in os.environ for name in DB_VARIABLES):
        return True
    try:
        return any(name in db_config.read_dotenv(ROOT / ".env") for name in DB_VARIABLES)
    except ConfigError:
        return True  # a .env that cannot be read is the user's: the audit names what is wrong with it


def run_in_venv(args: argparse.Namespace) -> int:
    """The part that needs the requirements: the sandbox when needed, then pytest."""
    python = Path(sys.executable)
    shown = typed_path(python, ROOT)
    if args.command == "tests":
        say(f"the suite's own tests: {shown} -m pytest tests")
        return foreground([python, "-m", "pytest", *paths_or("tests", args.pytest_args), *args.pytest_args])
    if SANDBOX_STATE.exists() or not db_url_configured():
        say(f"the sandbox: a local PostgreSQL seeded like production ({shown} tools/sandbox.py stop removes it)")
        started = foreground([python, str(ROOT / "tools" / "sandbox.py"), "start"])
        if started != 0:
            return started
    else:
        say("DB_URL is configured (environment or .env): auditing that database, no sandbox")
    say(
        f"the audit: {shown} -m pytest infra_tests (the same command audits again; or activate the virtualenv "
        "and run `pytest infra_tests`)"
    )
    return foreground([python, "-m", "pytest", *paths_or("infra_tests", args.pytest_args), *args.pytest_args])


# pytest's options whose value, written as the next argument, may be a path that is not a test path.
VALUE_OPTIONS = frozenset(
    {
        "--deselect",
        "--ignore",
        "--ignore-glob",
        "-k",
        "-m",
        "-p",
        "-c",
        "-o",
        "--junitxml",
        "--junit-xml",
        "--rootdir",
        "--basetemp",
        "--confcutdir",
        "--html",
        "--log-file",
    }
)


def paths_or(folder: str, pytest_args: list[str]) -> list[str]:
    """``[folder]``, unless the arguments name paths inside it (``tests/test_dburl.py``, ``tests/x.py::test``):
    then they alone are run, not the whole folder besides. An option's value (``--deselect tests/x.py``) is
    no test path."""
    paths = [arg for before, arg in zip(["", *pytest_args], pytest_args) if before not in VALUE_OPTIONS]
    inside = [arg for arg in paths if Path(arg.split("::")[0]).parts[:1] == (folder,) and arg != folder]
    return [] if inside else [folder]


def foreground(command: list[str]) -> int:
    """Run command and wait for it; on Ctrl-C (which the child gets too) keep waiting while it cleans up.

    subprocess.run would kill the child a quarter of a second after Ctrl-C: pytest would not get
    to stop the servers it started.
    """
    child = subprocess.Popen(command, cwd=ROOT)
    interrupted = False
    while True:
        try:
            code = child.wait()
        except KeyboardInterrupt:
            interrupted = True
            continue
        if interrupted:
            raise KeyboardInterrupt  # exit 130, after the child has cleaned up
        return code


def set_up_and_run_again(argv: list[str]) -> convention.Result:
    """Set up, then replace this process by the script run inside the virtualenv (never returns)."""
    python = str(set_up())
    sys.stdout.flush()
    os.execv(python, [python, str(Path(__file__).resolve()), IN_VENV_FLAG, *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.in_venv:
        return convention.run(TOOL, lambda: convention.Result(run_in_venv(args)), as_json=False)
    return convention.run(TOOL, lambda: set_up_and_run_again(argv), as_json=False)


if __name__ == "__main__":
    sys.exit(main())
