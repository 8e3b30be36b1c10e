"""Text for people: what a terminal line may show, and the telling line of a tool's output."""

from __future__ import annotations

from pathlib import Path

NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str) -> str:
    """text with control characters, non-printables and backslashes escaped.

    File names may hold a newline: printed raw, 'bin/x\\nmoved ...' would fake a report line.
    """
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)


def _escape(char: str) -> str:
    """One character as an escape; an undecodable file name byte (surrogateescape) as the byte it was."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if char in NAMED_ESCAPES:
        return NAMED_ESCAPES[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def counted(number: int, unit: str) -> str:
    """``1 row``, ``340,494 rows``: a count with its unit, singular for one."""
    return f"{number:,} {unit}" + ("" if number == 1 else "s")


def percent(fraction: float) -> str:
    """``10%``, ``0.5%``: whole percents, and a small share still shown as more than none."""
    if fraction >= 0.01 or fraction == 0:
        return f"{fraction:.0%}"
    return f"{fraction * 100:.2g}%"


def last_line(text: str) -> str:
    """The last non-blank line (where a failing program says why), or 'no output'."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def first_line(text: str) -> str:
    """The first non-blank line, or 'no output'."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def typed_path(path: Path, base: Path) -> str:
    """``path`` as a person types it from ``base``: relative when it lies below it, else whole."""
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
