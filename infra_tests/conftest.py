"""The audit's own hook: `pytest infra_tests` (or plain `pytest`) writes the HTML report by default.

This conftest is loaded early only when the audit is what runs, so the suite's own tests
(`python -m pytest tests`) never write the report. `tryfirst` puts the default in place before
pytest-html reads its options; `--html PATH` given on the command line wins.
"""

from __future__ import annotations

import pytest

from tools.audit_html import check_report_paths, default_html_report


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    default_html_report(config)
    check_report_paths(config)
    # The audit has no property-based tests, but hypothesis's plugin (installed for the suite's own
    # tests) imports all of hypothesis in its end-of-run summary: 1.5 s of a 3.5 s audit.
    config.pluginmanager.set_blocked("hypothesispytest")
