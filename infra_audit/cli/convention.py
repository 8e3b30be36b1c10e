"""The command-line tools' one convention, so every tool behaves the same at its edge.

- Exit codes: 0 fine, 1 a problem found, 2 usage error or cannot start, 130 interrupted (Ctrl-C).
- A failure is one line on stderr, ``<tool>: error: <what is wrong and what to do>``, never a
  traceback, and never a password (it is scrubbed with the secrets the tool knows).
- ``--json`` prints one JSON object: ``{"tool", "ok", "exit_code", "error", ...the tool's data}``.
- Output survives a closed pipe (``tool | head``) and names the terminal cannot encode: the
  work goes on to its end, so the exit code still tells the truth.

Each command is installed as a console script (``infra-health-check``...) and, in this checkout,
also runs as ``python3 tools/<tool>.py`` (``tools/_checkout.py`` finds the package and its
requirements for those).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn, TextIO

from infra_audit.core.dburl import scrub, scrub_data
from infra_audit.core.errors import InfraError
from infra_audit.core.text import printable

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
            import difflib  # a typo's hint only: not at every start

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


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a monitor's timeout, a stopped service, ``kill``) ends the work as Ctrl-C does: the one
    ``interrupted`` line and exit 130, what a stopped fixer moved named, instead of dying without a word.
    A second one while the first is handled is ignored."""

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(
    tool: str,
    work: Callable[[], Result],
    *,
    as_json: bool,
    secrets: Callable[[], tuple[str, ...]] = tuple,
    setting_names: Mapping[str, str] | None = None,
    fail_code: int = EXIT_USAGE,
    failure: Callable[[str, int], int] | None = None,
) -> int:
    """Run a tool's work under the convention; return its exit code.

    ``InfraError`` and ``OSError`` become the error line with ``fail_code`` (2: it could not start
    or carry on); their fix names settings as ``setting_names`` spells them (the tool's flags).
    ``failure``, given, says the (scrubbed) error in the tool's own output format instead of the
    error line, and returns the exit code that format uses for it (Nagios: a status line, UNKNOWN).
    """
    tolerate_closed_stdout()
    # psycopg logs what it could not do while giving up (a rollback refused on Ctrl-C): one line is ours.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    error, code, data = None, EXIT_OK, {}
    try:
        with _sigterm_as_ctrl_c():
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
        error = (
            f"unexpected {exc.__class__.__name__}: {exc} (a bug in {tool}: please report it; INFRA_DEBUG=1 shows where)"
        )
        code = fail_code
    known = secrets()
    if error is not None:
        error = scrub(error, known)
        if failure is not None:
            return failure(error, code)
        print(f"{tool}: error: {printable(error)}", file=sys.stderr, flush=True)
    if as_json:
        envelope = {"tool": tool, "ok": code == EXIT_OK, "exit_code": code, "error": error, **data}
        print(json.dumps(scrub_data(envelope, known), indent=2))
    return code
