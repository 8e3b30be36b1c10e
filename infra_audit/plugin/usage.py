"""A mistyped flag names the nearest known one: ``--tabels`` gets "did you mean --tables?".

Registered by the plugin's entry point (so before the command line is checked). Once every plugin
and conftest has added its options, it looks for flags no one knows; pytest would reject them with
its usage text and no hint, so a close match among the audit's own flags is named here instead
(exit code 4, as pytest's own usage errors). Otherwise pytest's message stands, as in any run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Iterator[None]:
    result = yield  # the conftests are loaded: every option is known now
    try:
        unknown = parser.parse_known_and_unknown_args(args)[1]
    except pytest.UsageError:
        return result  # another usage error: pytest reports it as usual
    known = [flag for option in parser.getgroup("infra").options for flag in option.names() if flag.startswith("--")]
    for flag in unknown:
        name = flag.split("=", 1)[0]
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if nearest:
            raise pytest.UsageError(
                f"unrecognized flag {name}: did you mean {nearest[0]}? (pytest --help lists every flag)"
            )
    return result
