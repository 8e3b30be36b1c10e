"""The audit's row-count history: the check compares, the end of the run appends.

``test_row_counts_not_shrinking`` compares this run's counts with the last passing audit of the
same database and leaves its record here; only when the whole run is over is it known whether
this audit passed (a failed audit never becomes the baseline), so the record is appended then.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra_audit.core import history
from infra_audit.core.errors import HistoryError
from infra_audit.plugin import settings as settings_plugin

_PENDING = pytest.StashKey[tuple[Path, history.Record]]()


def remember(config: pytest.Config, path: Path, record: history.Record) -> None:
    """Keep this run's record until the run's verdict is known."""
    config.stash[_PENDING] = (path, record)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    pending = session.config.stash.get(_PENDING, None)
    if pending is None:
        return
    path, record = pending
    try:
        history.append(path, replace(record, passed=session.exitstatus == pytest.ExitCode.OK))
    except HistoryError as exc:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"warning: row counts not recorded: {settings_plugin.advice(exc)}", yellow=True)
