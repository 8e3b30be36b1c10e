"""infra_audit/core/history.py: the audit history file, and the comparison with the last passing audit."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import time
from pathlib import Path

import pytest

from infra_audit.core import history, settings
from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import parse
from infra_audit.core.errors import HistoryError
from infra_audit.core.history import Record, TableCount
from infra_audit.core.probe import TableStats, Timeouts

TARGET = history.Target("db.example:5432/mt5_crs")
OTHER = history.Target("db.example:5432/staging")
# the advice for a loss no max_shrink under 100% accepts
MOVE_ASIDE = (
    "move the history file (infra_history) aside: no share under 100% accepts this loss, and a new history starts"
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "reports" / "infra-history.jsonl"  # the folder does not exist yet


def counts(market_data: int, exact: bool = True, assets: int = 975) -> dict[str, TableCount]:
    return {"market_data": TableCount(market_data, exact), "assets": TableCount(assets, True)}


def record(
    market_data: int,
    *,
    exact: bool = True,
    passed: bool = True,
    target: history.Target = TARGET,
    time: str = "2026-11-28T10:00:00Z",
) -> Record:
    return Record(time, target, counts(market_data, exact), passed)


def failed(findings: list[history.Finding]) -> list[history.Finding]:
    return [finding for finding in findings if finding.failed]


def test_the_first_audit_is_the_baseline_and_passes(path):
    assert history.last_passing(path, TARGET) is None  # no file yet: nothing to compare
    assert history.read(path) == history.History((), 0)
    (finding,) = history.compare(None, record(340_494))
    assert finding.kind == "baseline" and not finding.failed
    assert finding.message == f"first audit of {TARGET.url}: these row counts are the baseline"


def test_a_record_round_trips_through_the_file_and_the_folder_is_created(path):
    written = record(340_494, exact=False)
    history.append(path, written)
    history.append(path, record(340_500, time="2026-11-29T10:00:00Z"))
    assert history.read(path).records[0] == written
    assert history.last_passing(path, TARGET).time == "2026-11-29T10:00:00Z"
    assert path.read_text().count("\n") == 2


def test_every_missing_folder_is_made_and_a_table_name_beyond_ascii_round_trips(tmp_path):
    """``reports/2026/infra-history.jsonl`` in a fresh checkout; a quoted table may be named in any script."""
    path = tmp_path / "reports" / "2026" / "infra-history.jsonl"
    written = Record("2026-11-28T10:00:00Z", TARGET, {'"Märkte"': TableCount(7, True)}, True)
    history.append(path, written)
    assert history.read(path).records == (written,)
    assert path.read_bytes().isascii(), "one byte per character, whatever the reader's locale"


def test_twenty_percent_fewer_rows_fails_naming_both_counts_and_when(path):
    history.append(path, record(340_494))
    current = record(272_395, time="2026-11-29T10:00:00Z")
    (finding,) = failed(history.compare(history.last_passing(path, TARGET), current))
    assert finding.table == "market_data"
    assert finding.message.startswith(
        "market_data holds 272,395 rows (exact) now, 20% fewer than the 340,494 rows (exact) of the last passing "
        "audit (2026-11-28 10:00 UTC), more than the 10% allowed (infra_max_shrink)"
    )
    assert "\n" not in finding.message


@pytest.mark.parametrize(
    ("before", "now", "advice"),
    [
        (340_494, 272_395, "pass one audit with a higher infra_max_shrink (--max-shrink=22%)"),  # 20.0001% fewer
        (100, 2, "pass one audit with a higher infra_max_shrink (--max-shrink=99%)"),
        (340_494, 3_000, MOVE_ASIDE),
        (100, 1, MOVE_ASIDE),
    ],
)
def test_the_advice_names_a_share_that_accepts_the_loss_or_says_none_does(path, before, now, advice):
    history.append(path, record(before))
    (finding,) = failed(history.compare(history.last_passing(path, TARGET), record(now)))
    assert finding.message.endswith(f"if they were removed on purpose, {advice}")
    share = re.search(r"--max-shrink=(\d+)%", finding.message)
    if share:  # the setting takes it, and it lets this count pass next time
        assert not failed(
            history.compare(
                history.last_passing(path, TARGET), record(now), settings.parse_max_shrink(share.group(1) + "%")
            )
        )


def test_an_estimate_compared_with_an_exact_count_says_which_is_which(path):
    history.append(path, record(340_000, exact=False))
    findings = history.compare(history.last_passing(path, TARGET), record(272_395, exact=True))
    (finding,) = failed(findings)
    assert "272,395 rows (exact) now" in finding.message and "~340,000 rows (estimate)" in finding.message


def test_shrinking_within_the_limit_passes_and_the_limit_is_the_callers(path):
    previous = record(340_000)
    assert not failed(history.compare(previous, record(310_000)))  # 8.8% fewer
    assert failed(history.compare(previous, record(330_000), max_shrink=0.01))
    assert not failed(history.compare(previous, record(400_000)))  # growth is fine


@pytest.mark.parametrize(
    ("share", "fewest", "shown"), [("10%", 306_000, "10%"), ("0.5", 170_000, "50%"), ("0%", 340_000, "0%")]
)
def test_losing_exactly_the_share_passes_and_one_row_more_fails(share, fewest, shown):
    """The share allowed is inclusive: 340,000 rows may drop to 90% of them (306,000) under 10%, not below."""
    allowed = settings.parse_max_shrink(share)
    assert not failed(history.compare(record(340_000), record(fewest), max_shrink=allowed))
    (finding,) = failed(history.compare(record(340_000), record(fewest - 1), max_shrink=allowed))
    assert finding.kind == "shrunk" and f"more than the {shown} allowed" in finding.message


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("postgresql://u:p@DB.Example/mt5", "db.example:5432/mt5"),
        ("postgresql://u:p@DB.Example/mt5?port=6432", "db.example:6432/mt5"),
        ("postgresql://u:p@[::FFFF:7F00:1]:5433/mt5", "[::ffff:7f00:1]:5433/mt5"),
        ("postgresql://u:p@a:5433,B/mt5", "a:5433,b:5432/mt5"),
        ("postgresql://u@/mt5?host=/var/run/postgresql", "/var/run/postgresql:5432/mt5"),
    ],
)
def test_the_target_key_names_each_server_and_port_as_libpq_reaches_them(url, key):
    """The key decides whose history a run is compared with: the same server spelt differently is one key."""
    assert history.target_key(parse(url)) == key


def test_a_floor_and_the_live_rows_reach_the_record():
    found = history.record(
        TARGET,
        [TableStats("market_data", 10, exact=False, over=True), TableStats("assets", 975, exact=False, live=900)],
        passed=True,
    )
    assert found.tables == {"market_data": TableCount(10, False, True), "assets": TableCount(975, False, False)}
    assert found.tables["assets"].live == 900, "live rows take no part in ==: checked on their own"


def test_only_this_targets_passing_audits_give_last_counts_and_a_floor_is_one(path):
    history.append(path, record(340_000, target=OTHER))
    history.append(path, record(300_000, passed=False))
    assert history.read(path).last_counts(TARGET) == {}
    floor = Record("2026-11-28T11:00:00Z", TARGET, {"market_data": TableCount(10, False, True)}, True)
    history.append(path, floor)
    assert history.read(path).last_counts(TARGET) == {"market_data": (floor.time, TableCount(10, False, True))}
    assert history.read(path).last_counts(TARGET, numbers_only=True) == {}


def test_a_new_table_is_its_own_baseline():
    previous = Record("2026-11-28T10:00:00Z", TARGET, {"assets": TableCount(975, True)}, True)
    findings = {finding.table: finding for finding in history.compare(previous, record(340_000))}
    assert findings["market_data"].kind == "baseline" and not findings["market_data"].failed
    assert findings["market_data"].message == "market_data: 340,000 rows (exact), the first count on record (baseline)"
    assert findings["assets"].kind == "ok"
    assert findings["assets"].message == "assets: 975 rows (exact), was 975 rows (exact) on 2026-11-28 10:00 UTC"


def test_another_targets_records_are_ignored(path):
    history.append(path, record(340_000))
    history.append(path, record(1_000, target=OTHER, time="2026-11-29T09:00:00Z"))
    assert history.last_passing(path, TARGET).tables["market_data"].rows == 340_000
    assert history.last_passing(path, history.Target("elsewhere:5432/mt5_crs")) is None


def test_a_failing_audit_never_becomes_the_baseline(path):
    history.append(path, record(340_000, time="2026-11-27T10:00:00Z"))
    history.append(path, record(100_000, passed=False, time="2026-11-28T10:00:00Z"))
    previous = history.last_passing(path, TARGET)
    assert previous.time == "2026-11-27T10:00:00Z"
    assert failed(history.compare(previous, record(100_000)))  # still 70% short of the last good audit


def test_torn_and_invalid_lines_are_skipped_and_counted(path):
    history.append(path, record(340_000, time="2026-11-27T10:00:00Z"))
    with open(path, "ab") as file:
        file.write(b"not json\n")
        file.write(b'{"time": "2026-11-28T10:00:00Z", "target": "x"}\n')  # fields missing
        file.write(
            b'{"tables": {"a": {"rows": -5, "exact": true}}, "time": "2026-11-28T10:00:00Z", "target": "t", "passed": true}\n'
        )
        file.write(b"\xff\xfe\n")
        file.write(record(3).to_line().replace('"passed"', '"cluster":5,"passed"').encode())  # a name not a string
        file.write(record(4).to_line().replace('"target":"db.example:5432/mt5_crs"', '"target":null').encode())
        file.write(record(2, time="2026-11-28T10:00:00").to_line().encode())  # a time without its zone
        file.write(record(1, time="2026-11-28T11:00:00Z").to_line().encode()[:40])  # a run killed mid-line
    assert history.read(path) == history.History((record(340_000, time="2026-11-27T10:00:00Z"),), 8)
    # The next append starts on a new line: the torn tail stays apart and this record stays whole.
    history.append(path, record(339_000, time="2026-11-29T10:00:00Z"))
    read = history.read(path)
    assert [r.time for r in read.records] == ["2026-11-27T10:00:00Z", "2026-11-29T10:00:00Z"]
    assert read.skipped == 8


def test_a_blank_line_between_records_is_passed_over(path):
    """A history edited by hand may hold an empty line: the records after it still count."""
    path.parent.mkdir(parents=True)
    path.write_text(record(340_000).to_line() + "\n  \n" + record(339_000, time="2026-11-29T10:00:00Z").to_line())
    assert history.read(path) == history.History((record(340_000), record(339_000, time="2026-11-29T10:00:00Z")), 0)


def test_an_empty_table_and_every_name_of_the_target_round_trip(path):
    """A count of 0 is a count (the next audit compares with it), and the cluster and address names are what
    let a record match the same database reached another way."""
    target = history.Target("db.example:5432/mt5_crs", "7443071468531281723/mt5_crs", "10.0.0.5:5432/mt5_crs")
    written = Record("2026-11-28T10:00:00Z", target, {"assets": TableCount(0, True)}, True)
    history.append(path, written)
    (read,) = history.read(path).records
    assert read == written and read.target == target


def test_each_record_is_written_by_one_write_of_a_whole_line(path, monkeypatch):
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(history.os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    history.append(path, record(340_000))
    assert writes == [path.read_bytes()] and writes[0].endswith(b"\n") and writes[0].count(b"\n") == 1
    assert path.stat().st_size == len(writes[0])


def test_a_folder_where_the_history_should_be_is_one_clear_line(path):
    path.mkdir(parents=True)
    refused = r"^the audit history .*infra-history\.jsonl is refused .*: it is a folder"
    with pytest.raises(HistoryError, match=refused) as read:
        history.last_passing(path, TARGET)
    with pytest.raises(HistoryError, match=r"is refused and left untouched: it is a folder") as written:
        history.append(path, record(1))
    assert "\n" not in str(read.value) + str(written.value)
    assert read.value.setting == written.value.setting == "history"


def test_the_target_key_and_the_file_hold_no_secrets(path, target):
    url = parse(target.url)
    with db_probe.connect(url, Timeouts()) as conn:
        key, note = history.identify(conn, url, Timeouts())
        stats = [db_probe.table_stats(conn, table, 100_000, Timeouts()) for table in ("market_data", "assets")]
    assert note is None and key.url == history.target_key(url)
    assert key.address == f"127.0.0.1:{target.admin.info.port}/{target.dbname}"
    assert all(name.endswith(f"/{target.dbname}") for name in (key.url, key.cluster, key.address))
    history.append(path, history.record(key, stats, passed=True))
    text = path.read_text()
    assert target.role.password not in text and target.role.name not in text
    (line,) = text.splitlines()
    assert json.loads(line)["tables"]["market_data"] == {"rows": 120, "exact": True}
    assert history.target_key(parse("postgresql://u:pw@h1:5433,h2/db")) == "h1:5433,h2:5432/db"
    assert history.target_key(parse("postgresql:///db?host=/run/postgresql")) == "/run/postgresql:5432/db"
    assert history.target_key(parse("postgresql://DB.Example/db?port=5433")) == "db.example:5433/db"
    assert history.target_key(parse("postgresql://u@[::1]:5433,[FE80::1]/db")) == "[::1]:5433,[fe80::1]:5432/db"


def test_the_servers_address_brackets_ipv6_and_is_none_over_a_local_socket():
    assert history.server_address("mt5_crs", "10.0.0.5", 5432) == "10.0.0.5:5432/mt5_crs"
    assert history.server_address("mt5_crs", "::1", 5433) == "[::1]:5433/mt5_crs"
    assert history.server_address("mt5_crs", None, None) is None


def test_an_estimate_from_the_probe_is_recorded_as_one(path):
    stats = [TableStats("market_data", 340_000, exact=False)]
    history.append(path, history.record(TARGET, stats, passed=True))
    assert history.last_passing(path, TARGET).tables["market_data"] == TableCount(340_000, False)


@pytest.mark.parametrize(
    ("text", "share"), [("10%", 0.10), ("0.1", 0.10), (" 5 % ", 0.05), ("0", 0.0), ("99.5%", 0.995)]
)
def test_max_shrink_reads_percentages_and_fractions(text, share):
    assert settings.parse_max_shrink(text) == pytest.approx(share)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("100%", "out of range"),
        ("1", "out of range"),
        ("-1", "not a share"),
        ("ten", "not a share"),
        ("", "not a share"),
    ],
)
def test_a_bad_max_shrink_is_one_clear_line(text, says):
    with pytest.raises(ValueError, match=f"^infra_max_shrink: .*{says}") as raised:
        settings.parse_max_shrink(text)
    assert "\n" not in str(raised.value)


def test_a_whole_last_line_without_its_newline_is_kept(path):
    """A file edited by hand may lack the final newline; its last record is whole and still counts."""
    path.parent.mkdir(parents=True)
    path.write_text(record(340_000).to_line().rstrip("\n"))
    assert history.read(path) == history.History((record(340_000),), 0)
    history.append(path, record(339_000, time="2026-11-29T10:00:00Z"))
    assert len(history.read(path).records) == 2


def _floor(rows: int) -> Record:
    """market_data as a table whose bounded count passed the limit while the planner's estimate is stale."""
    return Record("2026-11-29T10:00:00Z", TARGET, {"market_data": TableCount(rows, False, over=True)}, False)


def test_a_count_that_is_only_a_floor_fails_when_it_cannot_tell(path):
    """340,494 at the last passing audit; now "more than 100,000" (the planner's estimate is stale): a
    pass would hide a loss of up to 70% and make this run the baseline."""
    previous = record(340_494, exact=False)
    (finding,) = failed(history.compare(previous, _floor(100_000)))
    assert finding.table == "market_data"
    assert finding.kind == "unknown" and finding.message.startswith(
        "market_data: could not compare: it holds more than 100,000 rows now, too few to tell whether it is "
        "within 10% of the ~340,494 rows (estimate) of the last passing audit"
    )
    assert finding.message.endswith(
        "run ANALYZE market_data (a view has none: list the table it reads), then audit again"
    )
    assert not failed(history.compare(record(95_000), _floor(100_000))), "more than 100,000 is no loss from 95,000"


@pytest.mark.parametrize(
    ("rows", "live", "kind"),
    [(1_000, 899, "unknown"), (900, 899, "unknown"), (1_000, 900, "ok"), (899, 800, "shrunk")],
    ids=["live rows past the share", "estimate at the fewest allowed", "live rows at the fewest allowed", "estimate"],
)
def test_an_estimate_whose_live_rows_show_a_loss_cannot_compare(rows, live, kind):
    """1,000 exact rows before, 10% allowed: 900 is the fewest. An estimate at or above it whose statistics
    count fewer live rows may hide a loss; an estimate below it is a loss whatever the statistics say."""
    now = Record("2026-11-29T10:00:00Z", TARGET, {"assets": TableCount(rows, False, live=live)}, True)
    previous = Record("2026-11-28T10:00:00Z", TARGET, {"assets": TableCount(1_000, True)}, True)
    (finding,) = history.compare(previous, now)
    assert (finding.table, finding.kind) == ("assets", kind)
    if (rows, live) == (1_000, 899):
        assert finding.message == (
            "assets: could not compare: the planner's estimate (~1,000 rows) and PostgreSQL's statistics (~899 live "
            "rows, 10% fewer than the 1,000 rows (exact) of the last passing audit, 2026-11-28 10:00 UTC) disagree: rows "
            "were deleted since the last ANALYZE, or just before it in the same session (then counted twice): run "
            "ANALYZE assets, then audit again"
        )


def test_a_floor_and_a_single_row_at_the_edges():
    """A floor now at exactly the fewest rows allowed is no loss; a number now at exactly the fewest after a
    floor is a new baseline; a table of one row that lost it shrank."""
    previous = record(1_000)
    floor_now = Record("2026-11-29T10:00:00Z", TARGET, {"market_data": TableCount(900, False, over=True)}, True)
    assert [f.kind for f in history.compare(previous, floor_now)] == ["ok"]
    floor_before = Record("2026-11-28T10:00:00Z", TARGET, {"market_data": TableCount(1_000, False, over=True)}, True)
    assert [f.kind for f in history.compare(floor_before, record(900))][0] == "reset"
    one = Record("2026-11-28T10:00:00Z", TARGET, {"market_data": TableCount(1, True)}, True)
    assert [f.kind for f in history.compare(one, record(0))][0] == "shrunk"


def test_a_floor_round_trips_and_old_records_read_as_counts(path):
    history.append(path, _floor(100_000))
    assert history.read(path).records[0].tables["market_data"] == TableCount(100_000, False, over=True)
    assert '"over":true' in path.read_text() and '"over"' not in record(5).to_line(), "absent unless a floor"


def test_a_floor_before_proves_nothing_and_says_so():
    """The last passing audit knew only "more than 100,000": a count now of 150,000 may hide a loss
    from 1,000,000, so it passes only with a warning and becomes the baseline; under the floor's
    allowance it has certainly shrunk; a floor now again cannot tell."""
    previous = Record("2026-11-28T10:00:00Z", TARGET, {"market_data": TableCount(100_000, False, over=True)}, True)
    reset = {finding.table: finding for finding in history.compare(previous, record(150_000, exact=False))}[
        "market_data"
    ]
    assert reset.kind == "reset" and not reset.failed
    assert "knew only that it held more than 100,000 rows, which proves nothing" in reset.message
    (shrunk,) = failed(history.compare(previous, record(50_000)))
    assert shrunk.kind == "shrunk"
    (unknown,) = failed(history.compare(previous, _floor(100_000)))
    assert unknown.kind == "unknown"


def test_floors_in_between_never_let_losses_add_up(path):
    """111,111 rows, then "more than 100,000" (within 10% of it: passes), then 90,000: 19% fewer than
    the last number on record, though within 10% of the floor."""
    history.append(path, record(111_111, time="2026-11-27T10:00:00Z"))
    history.append(
        path, Record("2026-11-28T10:00:00Z", TARGET, {"market_data": TableCount(100_000, False, over=True)}, True)
    )
    past = history.read(path)
    assert past.last_counts(TARGET, numbers_only=True)["market_data"] == (
        "2026-11-27T10:00:00Z",
        TableCount(111_111, True),
    )
    (finding,) = failed(history.compare(past.last_passing(TARGET), record(90_000), past=past))
    assert (
        finding.kind == "shrunk"
        and "19% fewer than the 111,111 rows (exact) of the last passing audit (2026-11-27" in finding.message
    )


def test_an_audit_with_a_shorter_table_list_never_resets_a_tables_baseline(path):
    """340,494 rows; then an audit of assets alone passes; then 34,049 rows: 90% fewer than its own last
    count, not "the first count on record"."""
    history.append(path, record(340_494, time="2026-11-27T10:00:00Z"))
    history.append(path, Record("2026-11-28T10:00:00Z", TARGET, {"assets": TableCount(975, True)}, True))
    past = history.read(path)
    (finding,) = failed(history.compare(past.last_passing(TARGET), record(34_049), past=past))
    assert (
        finding.kind == "shrunk"
        and "90% fewer than the 340,494 rows (exact) of the last passing audit (2026-11-27" in finding.message
    )


def test_a_small_allowance_and_a_small_loss_are_shown_as_they_are():
    (finding,) = failed(history.compare(record(100_000), record(99_000), max_shrink=0.005))
    assert "1% fewer than" in finding.message and "more than the 0.5% allowed" in finding.message
    (finding,) = failed(history.compare(record(100_000), record(99_900), max_shrink=0.0005))
    assert "0.1% fewer than" in finding.message and "more than the 0.05% allowed" in finding.message


@pytest.mark.parametrize("kind", ["a link to a history", "a foreign file", "an empty file", "a FIFO"])
def test_the_record_is_never_appended_to_what_is_not_the_audits_own_history(kind, path, tmp_path):
    """The end of the run appends to the path the check read: if a link, a foreign file or a FIFO
    was put there meanwhile, it is refused in one line and left as it was (the FIFO never blocks)."""
    path.parent.mkdir(parents=True)
    real = tmp_path / "real.jsonl"
    real.write_bytes(record(1).to_line().encode())
    if kind == "a link to a history":
        path.symlink_to(real)
    elif kind == "a FIFO":
        os.mkfifo(path)
    else:
        path.write_text("" if kind == "an empty file" else "[pytest]\naddopts = -q\n")
    before = (os.lstat(path).st_mode, None if kind == "a FIFO" else path.read_bytes(), real.read_bytes())
    with pytest.raises(HistoryError, match=r"^the audit history .* is refused and left untouched: it is ") as refused:
        history.append(path, record(2))
    assert refused.value.setting == "history" and "\n" not in str(refused.value)
    assert (os.lstat(path).st_mode, None if kind == "a FIFO" else path.read_bytes(), real.read_bytes()) == before


def test_a_history_over_the_size_limit_is_refused_not_read_in_part(path, monkeypatch):
    """Reads are bounded: a history grown past the limit is refused (its newest lines are at its end, so
    a part would miss the last passing audit and make a loss the baseline); one of exactly the limit is read whole."""
    history.append(path, record(1))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # its last byte is the record's own: none may be cut off
    size = path.stat().st_size
    monkeypatch.setattr(history, "MAX_BYTES", size)
    assert history.read(path) == history.History((record(1),), 0)
    monkeypatch.setattr(history, "MAX_BYTES", size - 1)
    with pytest.raises(HistoryError) as refused:
        history.read(path)
    assert str(refused.value) == (
        f"the audit history {path} is refused and left untouched: it is over 0 MiB ({size:,} bytes), more than the "
        "audit reads: move it aside (a new history starts) or keep only its newest lines"
    )
    with open(path, "ab") as file:  # past a limit of whole MiB, the figure in MiB is the limit's
        file.write(b"\n" * (3 * 2**20 + 1 - size))
    monkeypatch.setattr(history, "MAX_BYTES", 3 * 2**20)
    with pytest.raises(HistoryError, match=r": it is over 3 MiB \(3,145,729 bytes\), more than the audit reads: "):
        history.read(path)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (
            "a link",
            "it is a symbolic link, not a history file: the audit never writes through one: name the file itself",
        ),
        ("a FIFO", "it is a FIFO, not a history file: name a regular file"),
        ("a socket", "it is a device or socket, not a history file: name a regular file"),
        ("a folder", "it is a folder, not a history file: name a file in it"),
        ("an empty file", "it is not a history the audit wrote (it is empty): name another file"),
        ("a foreign file", "it is not a history the audit wrote (its first line is not a record of the audit): name "),
    ],
)
def test_each_refusal_says_what_is_there_and_what_to_do(kind, said, path, tmp_path):
    path.parent.mkdir(parents=True)
    if kind == "a link":
        path.symlink_to(tmp_path / "elsewhere.jsonl")
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a socket":
        socket.socket(socket.AF_UNIX).bind(str(path))
    elif kind == "a folder":
        path.mkdir()
    else:
        path.write_text("" if kind == "an empty file" else "[pytest]\n")
    with pytest.raises(HistoryError) as refused:
        history.read(path)
    assert str(refused.value).startswith(f"the audit history {path} is refused and left untouched: {said}")
    fix = (
        "(a missing one is created)"
        if kind.startswith(("a link", "a FIFO", "a socket", "a folder"))
        else ("another file (a missing one is created), or move this one aside")
    )
    assert str(refused.value).endswith(fix)


def test_a_new_history_is_readable_by_all_and_writable_by_its_owner_only(path):
    umask = os.umask(0o022)
    os.umask(umask)
    history.append(path, record(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask


def test_the_time_shown_is_utc_whatever_the_machines_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        (finding,) = failed(history.compare(record(340_000, time="2026-11-28T23:30:00Z"), record(1_000)))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "of the last passing audit (2026-11-28 23:30 UTC)" in finding.message


@pytest.mark.parametrize(
    ("earlier", "same"),
    [
        (history.Target("localhost:5432/mt5_crs", "7443/mt5_crs", "10.0.0.2:5432/mt5_crs"), True),  # another spelling
        (history.Target("standby:5432/mt5_crs", "7443/mt5_crs", "10.0.0.3:5432/mt5_crs"), True),  # a standby
        (history.Target("127.0.0.1:5432/mt5_crs", "9999/mt5_crs", "10.0.0.9:5432/mt5_crs"), True),  # remade, same URL
        (history.Target("db:5433/mt5_crs", "9999/mt5_crs", "10.0.0.2:5432/mt5_crs"), True),  # remade, same address
        (history.Target("127.0.0.1:5432/mt5_crs"), True),  # written by an earlier version
        (history.Target("127.0.0.1:5432/staging", "7443/staging", "10.0.0.2:5432/staging"), False),
        (history.Target("db:5433/mt5_crs", "9999/mt5_crs", "10.0.0.9:5432/mt5_crs"), False),
    ],
)
def test_a_record_is_of_this_database_when_any_of_its_names_is(earlier, same):
    now = history.Target("127.0.0.1:5432/mt5_crs", "7443/mt5_crs", "10.0.0.2:5432/mt5_crs")
    assert now.same(earlier) is same and earlier.same(now) is same
    assert history.Target("127.0.0.1:5432/mt5_crs", None, None).same(history.Target("other:5432/db")) is False


def test_a_history_that_cannot_be_reached_is_one_line_to_read_and_to_write(tmp_path):
    """Not only absence: a history under a file (as under a folder it may not enter) cannot be opened at all;
    the user's file in the way is left as it was."""
    in_the_way = tmp_path / "reports"
    in_the_way.write_text("a user's notes\n")
    path = in_the_way / "infra-history.jsonl"
    with pytest.raises(HistoryError) as read:
        history.read(path)
    assert (str(read.value), read.value.setting) == (
        f"cannot read the audit history {path}: Not a directory; fix its permissions or move it aside",
        "history",
    )
    with pytest.raises(HistoryError) as written:
        history.append(path, record(1))
    assert (str(written.value), written.value.setting) == (
        f"cannot write the audit history {path}: File exists; fix its folder's permissions",
        "history",
    )
    assert in_the_way.read_text() == "a user's notes\n"


def test_a_role_that_may_not_read_the_servers_identity_keeps_the_url_as_the_name(target):
    """A hardened server may revoke pg_control_system() from PUBLIC (here in this test's own database only):
    the history then knows the database by DB_URL's spelling alone, and says so."""
    target.admin.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() FROM PUBLIC")
    url = parse(target.url)
    with db_probe.connect(url, Timeouts()) as conn:
        key, note = history.identify(conn, url, Timeouts())
    assert key == history.Target(history.target_key(url))
    assert note.startswith("the server's identity could not be read (") and "permission denied" in note
    assert note.endswith(
        f"): this database's history knows it only as DB_URL spells it ({key.url}), so another spelling of it "
        "starts another history"
    )
