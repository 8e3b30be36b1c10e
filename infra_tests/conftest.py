"""Loaded only when the audit runs (`pytest infra_tests`, or plain `pytest`): turn its reports on.

`tryfirst` puts the default HTML report in place before pytest-html reads its options; `--html
PATH` given on the command line wins.
"""

from __future__ import annotations

import pytest

from tools import plugin


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    plugin.activate(config)
