"""Keep a command working whatever happens to its output.

Two things turn a ``print`` into a traceback, and for the fixer into an interruption between two
moves: a reader that goes away (``cleanup_root.py | head``: ``BrokenPipeError``), and a name that
the terminal's encoding cannot show (a file name with a byte that is not UTF-8:
``UnicodeEncodeError``). With the guard, output to a closed pipe is dropped, characters that
cannot be encoded are shown as escapes, and the work goes on to its end, so the exit code still
tells the truth.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


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
