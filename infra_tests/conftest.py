"""Loaded only when the audit runs (`pytest infra_tests` here, `infra-audit` in any project): it
turns the audit's reports, fixtures and health-check run on. Nothing of the audit happens in a
pytest run that does not collect these checks.

`tryfirst` puts the default HTML report in place before the report plugins read their options;
`--html PATH` given on the command line wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_audit.plugin.activate import activate


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    activate(config, Path(__file__).parent)
