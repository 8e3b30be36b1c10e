"""A mistyped flag names the nearest known one: ``--tabels`` gets "did you mean --tables?".

Loaded with ``-p`` from the audit's ``pytest.ini`` (so before the command line is checked, and
only for the audit). Once every plugin and conftest has added its options, it looks for flags no
one knows; pytest would reject them with its usage text and no hint, so a close match is named
here instead (exit code 4, as pytest's own usage errors). With no close match pytest's message stands.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Iterator[None]:
    result = yield  # the conftests are loaded: every option is known now
    try:
        unknown = parser.parse_known_and_unknown_args(args)[1]
    except pytest.UsageError:
        return result  # another usage error: pytest reports it as usual
    known = [flag for flag in parser.optparser._option_string_actions if flag.startswith("--")]
    for flag in unknown:
        name = flag.split("=", 1)[0]
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if nearest:
            raise pytest.UsageError(f"unrecognized flag {name}: did you mean {nearest[0]}? (pytest --help lists every flag)")
    return result
