"""infra_audit/core/text.py: what a terminal line shows, counts and shares in words, a tool's telling line.

The commands and the report use these in their own processes (where mutation testing cannot see them);
here each edge is read exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra_audit.core.text import counted, first_line, last_line, percent, printable, typed_path


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("bin/x\nmoved 3 files", "bin/x\\nmoved 3 files"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("C:\\temp", "C:\\\\temp"),
        ("\x1b[2Kerased", "\\x1b[2Kerased"),
        ("\x7f\x85\xad", "\\x7f\\x85\\xad"),
        ("\u200b\uffff", "\\u200b\\uffff"),
        ("\U000e0001", "\\U000e0001"),
        ("café 日本 ÿ", "café 日本 ÿ"),
    ],
    ids=["newline", "return-and-tab", "backslash", "escape", "latin-1", "bmp", "astral", "printable"],
)
def test_what_a_terminal_must_not_show_raw_is_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_an_undecodable_file_name_byte_is_shown_as_the_byte_it_was() -> None:
    """os.fsdecode turns bytes 0x80-0xff that are no UTF-8 into the surrogates U+DC80-U+DCFF; just outside
    that range a surrogate is no byte, and is shown as the code point it is."""
    assert printable(os.fsdecode(b"a\x80b\xff")) == "a\\x80b\\xff"
    assert printable("\udc7f\udd00") == "\\udc7f\\udd00"


@pytest.mark.parametrize(("number", "shown"), [(0, "0 rows"), (1, "1 row"), (2, "2 rows"), (340494, "340,494 rows")])
def test_a_count_is_singular_for_one_only(number: int, shown: str) -> None:
    assert counted(number, "row") == shown


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [(0, "0%"), (0.005, "0.5%"), (0.0099, "0.99%"), (0.01, "1%"), (0.1, "10%"), (1, "100%")],
)
def test_a_share_is_whole_percents_and_a_small_one_is_not_none(fraction: float, shown: str) -> None:
    assert percent(fraction) == shown


def test_the_telling_line_of_a_tools_output_is_stripped_and_never_blank() -> None:
    output = "\n  initdb: starting  \n\n  initdb: creating folders\ninitdb: error: directory exists  \n \n"
    assert first_line(output) == "initdb: starting"
    assert last_line(output) == "initdb: error: directory exists"
    assert first_line(" \n\t\n") == last_line(" \n\t\n") == "no output"
    assert first_line("") == last_line("") == "no output"


def test_a_path_is_relative_below_its_base_and_whole_elsewhere(tmp_path: Path) -> None:
    assert typed_path(tmp_path / "tools" / "health_check.py", tmp_path) == "tools/health_check.py"
    assert typed_path(Path("/usr/bin/python3"), tmp_path) == "/usr/bin/python3"
