"""The command-line tools' one convention, so every tool behaves the same at its edge.

- Exit codes: 0 fine, 1 a problem found, 2 usage error or cannot start, 130 interrupted (Ctrl-C).
- A failure is one line on stderr, ``<tool>: error: <what is wrong and what to do>``, never a
  traceback, and never a password (it is scrubbed with the secrets the tool knows).
- ``--json`` prints one JSON object: ``{"tool", "ok", "exit_code", "error", ...the tool's data}``.
- Output survives a closed pipe (``tool | head``) and names the terminal cannot encode: the
  work goes on to its end, so the exit code still tells the truth.

Each tool is run as ``python3 tools/<tool>.py``, so Python puts ``tools/`` on ``sys.path``; the
tool's one bootstrap line puts the checkout first so that ``tools`` is importable.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TextIO

from tools.core.dburl import scrub, scrub_data
from tools.core.errors import InfraError
from tools.core.text import printable

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
REQUIREMENTS = ("psycopg", "dotenv")  # what every tool but quickstart needs installed
CHECKOUT_VENV = Path(__file__).resolve().parents[1] / ".venv"  # where quickstart sets the requirements up
REEXEC_MARK = "INFRA_AUDIT_REEXEC"  # set for the tool run again on .venv's python


def venv_python(venv: Path = CHECKOUT_VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def this_python() -> str:
    """The running python as a person should type it: ``.venv/bin/python`` inside the checkout, else its path."""
    python, checkout = Path(sys.executable), CHECKOUT_VENV.parent
    return str(python.relative_to(checkout)) if python.is_relative_to(checkout) else str(python)


def require_installed(tool: str) -> None:
    """Run on the checkout's ``.venv/`` python when this one lacks the requirements (Debian's own
    python3, say, after ``python3 tools/quickstart.py`` set up ``.venv/``), so ``python3 tools/<tool>``
    works as the docs say; without that virtualenv, exit with one line (and the JSON envelope for
    ``--json``), not an ImportError traceback."""
    missing = [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]
    if not missing:
        return
    python = venv_python()
    fix = f"run `python3 tools/quickstart.py` once; it sets up {CHECKOUT_VENV}, which `python3 tools/{tool}` then uses"
    error = f"this python ({sys.executable}) lacks the requirements ({', '.join(missing)}): {fix}"
    if python.exists() and REEXEC_MARK not in os.environ:  # once: a .venv/ python that lacks them too stops here
        sys.stdout.flush()
        try:
            os.execve(python, [str(python), *sys.argv], {**os.environ, REEXEC_MARK: str(python)})
        except OSError as exc:  # a .venv/ whose python cannot start (its base python removed, say)
            error = f"{python} cannot start ({exc.strerror or exc}): move {CHECKOUT_VENV} away, then {fix}"
    if "--json" in sys.argv[1:]:
        print(json.dumps({"tool": tool, "ok": False, "exit_code": EXIT_USAGE, "error": error}))
    sys.stderr.write(f"{tool}: error: {error}\n")
    raise SystemExit(EXIT_USAGE)


class _DropWhenClosed:
    """A stdout that swaps itself for /dev/null the first time the pipe turns out to be closed."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        # Point the file descriptor itself at /dev/null too, so the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def tolerate_closed_stdout() -> None:
    """Install the guard on ``sys.stdout`` (once), and escape what stdout and stderr cannot encode."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, _DropWhenClosed):
        sys.stdout = _DropWhenClosed(sys.stdout)


class Parser(argparse.ArgumentParser):
    """argparse with the convention's error line: no usage dump, and the nearest flag for a typo."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            flags = [flag for action in self._actions for flag in action.option_strings]
            typo = message.split(":", 1)[1].split()[0].split("=")[0]
            near = difflib.get_close_matches(typo, flags, n=1)
            message += f" (did you mean {near[0]}?)" if near else ""
        if "--json" in sys.argv[1:]:  # the one JSON object, usage errors included
            print(json.dumps({"tool": self.prog, "ok": False, "exit_code": EXIT_USAGE, "error": message}))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@dataclass
class Result:
    """What a tool's run found: its exit code and the data for ``--json``."""

    exit_code: int = EXIT_OK
    data: dict[str, object] = field(default_factory=dict)


def run(
    tool: str,
    work: Callable[[], Result],
    *,
    as_json: bool,
    secrets: Callable[[], tuple[str, ...]] = tuple,
    setting_names: Mapping[str, str] | None = None,
    fail_code: int = EXIT_USAGE,
) -> int:
    """Run a tool's work under the convention; return its exit code.

    ``InfraError`` and ``OSError`` become the error line with ``fail_code`` (2: it could not start
    or carry on); their fix names settings as ``setting_names`` spells them (the tool's flags).
    """
    tolerate_closed_stdout()
    # psycopg logs what it could not do while giving up (a rollback refused on Ctrl-C): one line is ours.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    error, code, data = None, EXIT_OK, {}
    try:
        result = work()
        code, data = result.exit_code, result.data
    except KeyboardInterrupt:
        error, code = "interrupted", EXIT_INTERRUPTED
    except InfraError as exc:
        error, code = exc.advice(dict(setting_names or {})), exc.exit_code or fail_code
        data = exc.data  # what a stopped run had done (the fixer's archive)
    except OSError as exc:
        error, code = f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}", fail_code
    except Exception as exc:  # a bug: still one line for the user; INFRA_DEBUG=1 shows the traceback
        if os.environ.get("INFRA_DEBUG"):
            raise
        error = f"unexpected {exc.__class__.__name__}: {exc} (a bug in {tool}: please report it; INFRA_DEBUG=1 shows where)"
        code = fail_code
    known = secrets()
    if error is not None:
        error = scrub(error, known)
        print(f"{tool}: error: {printable(error)}", file=sys.stderr, flush=True)
    if as_json:
        envelope = {"tool": tool, "ok": code == EXIT_OK, "exit_code": code, "error": error, **data}
        print(json.dumps(scrub_data(envelope, known), indent=2))
    return code
