"""The row-count history end to end: one history per database however DB_URL spells it, and a history
file that is the audit's own (never a link, a FIFO, a device or a file of someone else's)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import audit, clean_env, write_env
from tests.test_feed_checks import reseed

SHRINK = re.compile(r"market_data holds 1,000 rows \(exact\) now, 90% fewer than the 10,000 rows \(exact\)")


def url_as(target, servers: str, query: str = "") -> str:
    """The target's DB_URL with its servers spelled ``servers`` (``host:port,host:port``)."""
    auth = f"{quote(target.role.name, safe='')}:{quote(target.role.password, safe='')}"
    return f"postgresql://{auth}@{servers}/{quote(target.dbname, safe='')}{query}"


def test_one_history_per_database_however_db_url_spells_it(project, target, run_audit, tmp_path, closed_port):
    """The baseline taken through 127.0.0.1, 90% of the rows deleted: through localhost, a service, or
    the second host of a multi-host URL it is the same database, so the loss fails (it used to be a
    first audit of another target, and the loss its baseline)."""
    reseed(target, rows=10_000)
    history = tmp_path / "history.jsonl"
    write_env(project, f"DB_URL={target.url}\n")
    assert run_audit(project, f"--history={history}").exit_code == 0
    target.admin.execute("DELETE FROM market_data WHERE id % 10 <> 0")
    (tmp_path / "pg_service.conf").write_text(f"[box]\nport={target.admin.info.port}\n")
    port = target.admin.info.port
    spellings = {
        "localhost": url_as(target, f"localhost:{port}"),
        "a service": url_as(target, "127.0.0.1", "?service=box"),  # its port is the service file's
        "a second host": url_as(target, f"127.0.0.1:{closed_port},127.0.0.1:{port}"),
    }
    env = clean_env(PGSERVICEFILE=str(tmp_path / "pg_service.conf"))
    for spelling, url in spellings.items():
        write_env(project, f"DB_URL={url}\n")
        run = run_audit(project, f"--history={history}", env=env)
        assert run.outcome("test_row_counts_not_shrinking") == "failed", (spelling, run.output)
        assert SHRINK.search(run.message("test_row_counts_not_shrinking")), (spelling, run.output)
    assert [json.loads(line)["passed"] for line in history.read_text().splitlines()] == [True, False, False, False]


def test_a_record_of_an_earlier_version_is_still_the_baseline(project, target, run_audit, tmp_path):
    """Earlier versions knew a database by DB_URL's host:port/database only: their last passing record
    is still what this audit compares with."""
    reseed(target, rows=10_000)
    target.admin.execute("DELETE FROM market_data WHERE id % 10 <> 0")
    history = tmp_path / "history.jsonl"
    tables = {"assets": {"exact": True, "rows": 50}, "market_data": {"exact": True, "rows": 10_000}}
    key = f"127.0.0.1:{target.admin.info.port}/{target.dbname}"
    old = {"passed": True, "target": key, "tables": tables, "time": "2026-11-28T10:00:00Z"}
    history.write_text(json.dumps(old, sort_keys=True, separators=(",", ":")) + "\n")
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project, f"--history={history}")
    assert run.outcome("test_row_counts_not_shrinking") == "failed", run.output
    assert SHRINK.search(run.message("test_row_counts_not_shrinking")), run.output


def _plant(kind: str, tmp_path: Path, project: Path) -> tuple[Path, Path]:
    """What the history path names instead of the audit's own history: (the path, what must not change)."""
    if kind == "a link to a history":  # even one the audit wrote: it never goes through a link
        real = tmp_path / "real-history.jsonl"
        real.write_text('{"passed":true,"tables":{},"target":"elsewhere:5432/db","time":"2026-11-28T10:00:00Z"}\n')
        (tmp_path / "link.jsonl").symlink_to(real)
        return tmp_path / "link.jsonl", real
    if kind == "the project's pytest.ini":
        (project / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
        return project / "pytest.ini", project / "pytest.ini"
    if kind == "an empty file":
        (project / "__init__.py").touch()
        return project / "__init__.py", project / "__init__.py"
    if kind == "a FIFO":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo", tmp_path / "fifo"
    return Path("/dev/zero"), Path("/dev/zero")


PLANTED = ["a link to a history", "the project's pytest.ini", "an empty file", "a FIFO", "a device"]


@pytest.mark.parametrize("kind", PLANTED)
def test_a_history_that_is_not_the_audits_own_is_refused_untouched(kind, project, target, tmp_path):
    """--history naming a symbolic link, a file of the project's, a FIFO or /dev/zero: "not shrinking"
    fails at once with one line naming the setting, and nothing there is read or written (a FIFO
    would block the audit forever, /dev/zero fill its memory, a link or a file take a JSON line)."""
    path, kept = _plant(kind, tmp_path, project)
    before = _state(path, kept)
    write_env(project, f"DB_URL={target.url}\n")
    run = audit(project, f"--history={path}", junit=tmp_path / "junit.xml", timeout=60)
    assert run.outcome("test_row_counts_not_shrinking") == "failed", run.output
    line = run.message("test_row_counts_not_shrinking").splitlines()[0].removeprefix("Failed: ")
    assert line.startswith(f"the audit history {path} is refused and left untouched: it is "), line
    assert line.endswith("(fix infra_history in the project's settings, or --history)"), line
    assert run.outcome("test_row_counts_nonzero") == "passed" and "Traceback" not in run.output
    assert _state(path, kept) == before


def _state(path: Path, kept: Path) -> tuple:
    """What the path is (its kind, a link's target) and what the file it names holds, and when it changed."""
    link = os.readlink(path) if path.is_symlink() else None
    return os.lstat(path).st_mode, link, kept.read_bytes() if kept.is_file() else None, os.stat(kept).st_mtime_ns
