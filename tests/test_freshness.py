"""infra_audit/core/freshness.py: the settings' parsing, and the checks against a real PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from infra_audit.core import freshness, settings
from infra_audit.core import probe as db_probe
from infra_audit.core.dburl import parse
from infra_audit.core.errors import ProbeError
from infra_audit.core.freshness import FreshnessRule, parse_group, parse_rules
from infra_audit.core.probe import Timeouts
from infra_audit.sandbox import seed
from tests.support import partitioned_bars, stage

TIMEOUTS = Timeouts(connect=3.0, query=3.0)
EXACT_LIMIT = 100_000
STOPPED = ("FX0005", "EQ0011", "CM0048")  # three of the 50 symbols with bars


@pytest.fixture
def conn(target) -> Iterator[psycopg.Connection]:
    """The audit's own session: the read-only role, read-only transactions, deadlines set."""
    with db_probe.connect(parse(target.url), TIMEOUTS) as connection:
        yield connection


@pytest.fixture
def fifty(target) -> None:
    """The target reseeded with 50 symbols x 3 timeframes, 100 bars each, the newest at the server's now()."""
    seed.seed(target.admin, market_data_rows=15_000, assets_rows=50)


def rule(text: str) -> FreshnessRule:
    (only,) = parse_rules(text)
    return only


def check(conn, text: str = "market_data=3d", group: str | None = "symbol", exact_limit: int = EXACT_LIMIT):
    return freshness.check(conn, rule(text), group, exact_limit, TIMEOUTS)


def probe_error(conn, text: str, group: str | None = None, exact_limit: int = EXACT_LIMIT) -> ProbeError:
    with pytest.raises(ProbeError) as raised:
        check(conn, text, group, exact_limit)
    assert "\n" not in str(raised.value)
    return raised.value


def stop(target, symbols: tuple[str, ...], days: int) -> None:
    """Move these symbols' bars ``days`` back, as if their feed stopped then (in two steps: the unique
    (symbol, timeframe, ts) key is checked row by row, and a direct shift would collide with older bars)."""
    where = f"WHERE symbol IN ({', '.join(repr(s) for s in symbols)})"
    stage(
        target,
        f"UPDATE market_data SET ts = ts - interval '1000 days' {where}",
        f"UPDATE market_data SET ts = ts + interval '{1000 - days} days' {where}",
    )


def test_a_never_analyzed_partitioned_table_is_judged_by_its_partitions_size(target, conn):
    """No estimate anywhere (never analyzed): its partitions' size on disk says it is big, so it needs
    an index; the parent's own size (none) would have let the audit scan it all."""
    stage(
        target,
        "CREATE TABLE parted_events (id int, ts timestamptz) PARTITION BY RANGE (id)",
        "CREATE TABLE parted_events_all PARTITION OF parted_events FOR VALUES FROM (0) TO (1000)",
        "INSERT INTO parted_events SELECT i, now() FROM generate_series(1, 50) AS i",
        "GRANT SELECT ON parted_events TO PUBLIC",
    )
    error = probe_error(conn, "parted_events=3d", exact_limit=10)
    assert error.cause == "needs_index" and "never analyzed, 8 kB on disk" in str(error), str(error)


def test_a_partitioned_table_reads_each_partition_once_never_each_per_group(target, conn):
    """300 daily partitions: a walk across the tree would probe every partition's index for every group
    (it timed out at 523 partitions and 6,000 pairs). Each small partition is read once instead, with the
    same verdict as a flat table; a big one is walked over its own index."""
    partitioned_bars(target, "bars", days=300)
    stage(target, "GRANT SELECT ON bars TO PUBLIC")
    result = check(conn, "bars=3d")
    assert (result.groups, result.stale_group_count) == (12, 6), result.evidence
    assert {group.key[0] for group in result.stale_groups} == {"S1", "S2", "S3"}
    assert all(" (5 days" in group.shown for group in result.stale_groups), result.problems
    explained = conn.execute(
        sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {}").format(result.plan.group_query), (1.0, 1.0)
    ).fetchall()
    scans = [line for (line,) in explained if " on bars_" in line]  # each partition read once, in one pass
    assert len(scans) >= 300 and all(line.endswith(" loops=1)") for line in scans), "\n".join(scans)
    assert "300 partitions with rows: 0 walked over their index, 300 small ones read whole" in result.evidence

    denied = probe_error(conn, "bars=3d", group="symbol", exact_limit=10)  # read as itself: its own GRANT
    assert denied.cause == "permission" and "GRANT SELECT ON public.bars_0 TO " in str(denied), str(denied)
    stage(target, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC")
    walked = check(conn, "bars=3d", exact_limit=10)  # every partition "big": each walked over its own index
    assert (walked.groups, walked.stale_group_count) == (12, 6), walked.evidence
    assert [group.shown for group in walked.stale_groups] == [group.shown for group in result.stale_groups]
    assert re.search(
        r"300 partitions with rows: 29\d walked over their index, \d small ones read whole", walked.evidence
    )


def test_an_operator_of_another_schema_never_stands_in_for_pg_catalogs(target, conn):
    """pg_catalog has no "=" for (varchar, varchar): one in public, always true, would let every symbol
    share the newest row and a stopped one look fresh. The walk names pg_catalog's operators."""
    stage(
        target,
        "CREATE TABLE feed (sym varchar(8), ts timestamptz)",
        "CREATE INDEX ON feed (sym, ts)",
        "INSERT INTO feed VALUES ('A', now()), ('B', now() - interval '10 days')",
        "GRANT SELECT ON feed TO PUBLIC",
        "CREATE FUNCTION public.always(varchar, varchar) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
        "CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.always)",
        "CREATE OPERATOR public.> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.always)",
    )
    result = check(conn, "feed=3d", group="sym")
    assert (result.groups, result.stale_group_count) == (2, 1), result.evidence
    assert [group.shown for group in result.stale_groups][0].startswith("B ")


def test_a_citext_symbol_is_walked_with_its_own_operators(target, conn):
    """pg_catalog's operators would compare citext as case-sensitive text while its index orders it
    case-insensitively: the walk would skip every upper-case symbol, a stale one with them."""
    try:
        stage(target, "CREATE EXTENSION citext")
    except psycopg.Error:
        pytest.skip("citext is not installed with these PostgreSQL binaries")
    stage(
        target,
        "CREATE TABLE g (symbol citext, ts timestamptz)",
        "CREATE INDEX ON g (symbol, ts)",
        "INSERT INTO g SELECT CASE WHEN n % 2 = 0 THEN 'sym' ELSE 'SYM' END || n, now() FROM generate_series(0, 59) n",
        "UPDATE g SET ts = now() - interval '10 days' WHERE symbol = 'SYM7'",
        "GRANT SELECT ON g TO PUBLIC",
    )
    result = check(conn, "g=3d", group="symbol")
    assert (result.groups, [group.shown.split()[0] for group in result.stale_groups]) == (60, ["SYM7"])


def test_a_foreign_table_is_refused_rather_than_fetched(target, conn):
    try:
        stage(target, "CREATE EXTENSION file_fdw")
    except psycopg.Error:
        pytest.skip("file_fdw is not installed with these PostgreSQL binaries")
    stage(
        target,
        "CREATE SERVER files FOREIGN DATA WRAPPER file_fdw",
        "CREATE FOREIGN TABLE remote_bars (ts timestamptz) SERVER files OPTIONS (filename '/dev/null')",
        "GRANT SELECT ON remote_bars TO PUBLIC",
    )
    error = probe_error(conn, "remote_bars=3d")
    assert error.cause == "foreign" and "names a foreign table, public.remote_bars" in str(error)


def test_a_view_is_refused_rather_than_read_whole(target, conn):
    stage(target, "CREATE VIEW md_view AS SELECT * FROM market_data", "GRANT SELECT ON md_view TO PUBLIC")
    error = probe_error(conn, "md_view=3d")
    assert error.cause == "view" and str(error).endswith("name the table it reads")


# --- parsing ---------------------------------------------------------------------------------------


def test_the_default_setting_parses():
    assert parse_rules(settings.BY_KEY["freshness"].default) == (
        FreshnessRule(("market_data",), timedelta(days=3), "3d"),
    )
    assert parse_group(settings.BY_KEY["freshness_group"].default) == "symbol"


@pytest.mark.parametrize(
    ("text", "names", "limit"),
    [
        ("market_data.ts=90s", ("market_data", "ts"), timedelta(seconds=90)),
        ("public.market_data.ts=15m", ("public", "market_data", "ts"), timedelta(minutes=15)),
        ('"Market Data"=6h', ("Market Data",), timedelta(hours=6)),
        ('"odd.name=x"."a ""b"""=2w', ("odd.name=x", 'a "b"'), timedelta(weeks=2)),
        ("Market_Data=1d", ("market_data",), timedelta(days=1)),  # bare names fold to lower case, as in SQL
    ],
)
def test_names_may_be_qualified_and_quoted(text, names, limit):
    assert rule(text).names == names
    assert rule(text).limit == limit
    assert parse_rules(rule(text).text) == (rule(text),)  # what messages print parses back to the same rule


def test_several_rules_and_an_empty_setting():
    assert [r.names for r in parse_rules("  market_data=3d\t assets.created_at=30d ")] == [
        ("market_data",),
        ("assets", "created_at"),
    ]
    assert parse_rules("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("market_data", "'market_data' has no '=AGE'"),
        ("market_data=3", "'3' is not an age"),
        ("market_data=3 d", "'3' is not an age"),
        ("market_data=3y", "'3y' is not an age"),
        ("market_data=0s", "'0s' is out of range"),
        ("market_data=99999999d", "out of range"),
        ("market_data=999999999w", "out of range"),  # past what timedelta() holds: checked before it is made
        ('"market_data=3d', "unclosed quote"),
        ("a.b.c.d=1d", "'a.b.c.d' has too many parts"),
        ("market_data=1d market_data=2d", "listed twice"),
        ("public.market_data.ts=1d public.market_data.time=2d", "'public.market_data.time' is listed twice"),
        ("=3d", "expected a name at '=3d'"),
        ("=3d is a twenty-character excerpt", "expected a name at '=3d is a twenty-char'; the form"),
        ('""=3d', "empty name"),
        ("market_data=warn:6h", "'warn:6h' has no error age"),
        ("market_data=warn:3d,error:1d", "the warning age must be below the error age"),
        ("market_data=warn:6h,warn:7h,error:3d", "each level once, named warn or error"),
        ("market_data=alert:1h,error:3d", "each level once, named warn or error"),
        ("market_data=warn:6x,error:3d", "'6x' is not an age"),
        ("market_data=warn:6h,,error:3d", "each level once"),
    ],
)
def test_a_bad_spec_is_one_line_with_the_expected_form(text, says):
    with pytest.raises(ValueError) as raised:
        parse_rules(text)
    message = str(raised.value)
    assert says in message and message.startswith("infra_freshness: ")
    assert "TABLE[.COLUMN]=AGE" in message and "\n" not in message


def test_a_rule_may_name_a_warning_and_an_error_age():
    """dbt's warn_after and error_after: the plain form keeps its meaning, an error age with no warning."""
    two = rule("market_data=warn:6h,error:3d")
    assert (two.limit, two.warn) == (timedelta(days=3), timedelta(hours=6))
    assert parse_rules(two.text) == (two,), "what messages print parses back to the same rule"
    assert rule("market_data.ts=error:3d,warn:6h").warn == timedelta(hours=6)
    assert (rule("market_data=3d").warn, rule("market_data=error:3d").warn) == (None, None)
    assert rule("market_data=error:3d").limit == rule("market_data=3d").limit


def test_the_group_setting_is_one_column_or_empty():
    assert parse_group("") is None and parse_group("   ") is None
    assert parse_group('"Sym Bol"') == "Sym Bol"
    for bad in ("symbol timeframe", "a.symbol", '"open', "symbol."):  # "symbol.": the text ends after the dot
        with pytest.raises(ValueError, match="^infra_freshness_group: .* is not one column name"):
            parse_group(bad)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (45, "45 seconds"),
        (720, "12 minutes"),
        (125, "2 minutes 5 seconds"),
        (3660, "1 hour 1 minute"),
        (5 * 86400 + 3 * 3600 + 59, "5 days 3 hours"),
        (10 * 86400 + 5, "10 days"),
        (-7200, "2 hours in the future"),
        (float("inf"), "infinitely old"),
        (float("-inf"), "in the future (infinity)"),
    ],
)
def test_ages_read_as_words(seconds, words):
    assert freshness.age_words(seconds) == words


# --- against the database ------------------------------------------------------------------------


def test_a_seeded_copy_is_fresh(conn):
    result = check(conn)
    assert result.ok, result.problems
    assert (result.plan.column, result.plan.indexed) == ("ts", True)
    assert result.plan.group == ("symbol", "timeframe")  # the unique (symbol, timeframe, ts) index leads so
    assert result.evidence.startswith("public.market_data.ts: newest row ")
    assert "limit 3 days" in result.evidence and "12 of 12 symbol/timeframe pairs within the limit" in result.evidence


def test_three_stopped_symbols_are_named_with_their_ages(target, fifty, conn):
    stop(target, STOPPED, 5)
    result = check(conn)
    assert not result.ok
    assert (result.groups, result.stale_group_count) == (150, 9)
    assert {group.key[0] for group in result.stale_groups} == set(STOPPED)
    assert all(group.shown.endswith("(5 days)") for group in result.stale_groups)
    (problem,) = result.problems  # the table as a whole is fresh: only the groups are named
    assert problem.startswith("public.market_data: 9 of 150 symbol/timeframe pairs have no row newer than 3 days: ")
    assert "FX0005 M15 (5 days)" in problem


def age_all(target, interval: str) -> None:
    """Move every row ``interval`` further back (in two steps: see stop())."""
    stage(target, "UPDATE market_data SET ts = ts - interval '1000 days'")
    stage(target, f"UPDATE market_data SET ts = ts + interval '1000 days' - interval '{interval}'")


def test_between_the_two_ages_it_passes_with_warnings_and_past_the_error_age_it_fails(target, conn):
    age_all(target, "8 hours")
    result = check(conn, "market_data=warn:6h,error:3d")
    assert result.ok and result.problems == ()
    newest, groups = result.warnings  # the seeded copy's newest row is as old as the session's template
    assert re.fullmatch(
        r"public\.market_data\.ts: the newest row \(.*\) is 8 hours( \d+ minutes?)? old, past the warning age "
        r"of 6 hours \(it fails at 3 days; infra_freshness = market_data=warn:6h,error:3d\)",
        newest,
    )
    assert groups.startswith("public.market_data: 12 of 12 symbol/timeframe pairs have no row newer than 6 hours: ")
    assert (result.stale_group_count, result.late_group_count) == (0, 12)
    assert "(warning at 6 hours, error at 3 days); 0 of 12 symbol/timeframe pairs within the warning age" in (
        result.evidence
    )
    assert check(conn, "market_data=3d").warnings == (), "one level: nothing to warn of before the limit"

    age_all(target, "4 days")
    result = check(conn, "market_data=warn:6h,error:3d")
    assert not result.ok and result.warnings == (), "past the error age is a failure, not a warning"
    assert re.search(r"is 4 days 8 hours old, older than the limit of 3 days", result.problems[0])
    assert (result.stale_group_count, result.late_group_count) == (12, 0)


def test_groups_past_each_age_are_counted_and_named_by_level(target, fifty, conn):
    """One symbol stopped 5 days ago (past the error age), one 2 days ago (past the warning age only)."""
    stop(target, STOPPED[:1], 5)
    stop(target, STOPPED[1:2], 2)
    result = check(conn, "market_data=warn:1d,error:3d")
    assert (result.groups, result.stale_group_count, result.late_group_count) == (150, 3, 3)
    assert {group.key[0] for group in result.stale_groups} == {STOPPED[0]}
    assert {group.key[0] for group in result.late_groups} == {STOPPED[1]}
    (problem,) = result.problems
    (warning,) = result.warnings
    assert problem.startswith("public.market_data: 3 of 150 symbol/timeframe pairs have no row newer than 3 days: ")
    assert warning.startswith("public.market_data: 3 of 150 symbol/timeframe pairs have no row newer than 1 day: ")
    assert STOPPED[1] in warning and STOPPED[0] not in warning


def test_late_groups_behind_twenty_failing_ones_are_counted_not_named(target, fifty, conn):
    """The walk at the warning age lists its 20 oldest: when all are past the error age, the late ones are
    counted and said to be unnamed, never an empty list."""
    prefixes = ("FX", "EQ", "IX", "CM", "CR")  # as seed.py names asset i: prefix i % 5, then i
    stop(target, tuple(f"{prefixes[i % 5]}{i:04d}" for i in range(1, 11)), 5)
    stop(target, ("FX0020",), 2)
    result = check(conn, "market_data=warn:1d,error:3d")
    assert (result.stale_group_count, result.late_group_count, result.late_groups) == (30, 3, ())
    (warning,) = result.warnings
    unnamed = "no row newer than 1 day: none named here (the 20 oldest groups are past the error age)"
    assert warning.startswith(f"public.market_data: 3 of 150 symbol/timeframe pairs have {unnamed}")


def test_with_an_index_on_symbol_and_ts_only_the_groups_are_symbols(target, fifty, conn):
    stage(
        target,
        "ALTER TABLE market_data DROP CONSTRAINT market_data_symbol_timeframe_ts_key",
    )
    stop(target, STOPPED, 5)
    result = check(conn)
    assert result.plan.group == ("symbol",)
    assert (result.groups, result.stale_group_count) == (50, 3)
    assert sorted(group.shown for group in result.stale_groups) == sorted(f"{s} (5 days)" for s in STOPPED)
    assert result.problems == (
        "public.market_data: 3 of 50 symbols have no row newer than 3 days: "
        + ", ".join(g.shown for g in result.stale_groups),
    )


def test_rows_whose_group_keys_are_null_are_groups_of_their_own(target, conn):
    """A symbol whose every row has no timeframe, 10 days old, and rows with no symbol, 9 days old: both
    are groups the walk visits (NULLs come last in the index), and the one-pass read of a small table
    without the index counts them too."""
    stage(
        target,
        "ALTER TABLE market_data ALTER COLUMN symbol DROP NOT NULL, ALTER COLUMN timeframe DROP NOT NULL",
        "INSERT INTO assets (symbol, name, asset_class, currency, exchange) VALUES ('ZZ0009', 'z', 'fx', 'USD', 'X')",
        "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)"
        " SELECT s, t, now() - d - n * interval '1 hour', 1, 1, 1, 1, 1 FROM generate_series(0, 29) AS n,"
        " (VALUES ('ZZ0009', NULL, interval '10 days'), (NULL, 'H1', interval '9 days'),"
        " ((SELECT min(symbol) FROM market_data), NULL, interval '8 days'), (NULL, NULL, interval '7 days'))"
        " AS v(s, t, d)",
    )
    (first,) = target.admin.execute("SELECT min(symbol) FROM market_data").fetchone()
    for drop in (None, "ALTER TABLE market_data DROP CONSTRAINT market_data_symbol_timeframe_ts_key"):
        if drop:
            stage(target, drop, "DROP INDEX market_data_symbol_ts_idx")
        result = check(conn)
        assert result.plan.group == (("symbol", "timeframe") if drop is None else ("symbol",))
        assert result.plan.group_indexed is (drop is None)
        stale = [group.shown for group in result.stale_groups]
        if drop is None:  # a NULL after a value, a value after a NULL, and a NULL after a NULL
            assert (result.groups, result.stale_group_count) == (16, 4), result.evidence
            assert stale == [
                "ZZ0009 timeframe=NULL (10 days)",
                "symbol=NULL H1 (9 days)",
                f"{first} timeframe=NULL (8 days)",
                "symbol=NULL timeframe=NULL (7 days)",
            ], stale
        else:  # the first symbol's other rows are fresh; the rows without a symbol, 7 days at the newest
            assert (result.groups, result.stale_group_count) == (6, 2), result.evidence
            assert stale == ["ZZ0009 (10 days)", "symbol=NULL (7 days)"], stale


def test_grouping_off_passes_when_the_table_is_fresh(target, fifty, conn):
    stop(target, STOPPED, 5)
    result = check(conn, group=None)
    assert result.ok and result.plan.group == () and "pairs" not in result.evidence


def test_more_than_twenty_stale_groups_are_summed_up(target, fifty, conn):
    prefixes = ("FX", "EQ", "IX", "CM", "CR")  # as seed.py names asset i: prefix i % 5, then i
    stop(target, tuple(f"{prefixes[i % 5]}{i:04d}" for i in range(1, 31)), 4)
    result = check(conn)
    assert len(result.stale_groups) == freshness.SHOWN_GROUPS
    assert result.problems[-1].endswith(f" and {result.stale_group_count - freshness.SHOWN_GROUPS} more")


def test_groups_that_never_had_rows_are_not_stale(target, fifty, conn):
    stage(target, f"DELETE FROM market_data WHERE symbol IN {STOPPED}")
    result = check(conn)
    assert result.ok and result.groups == 141


def test_a_table_whose_newest_row_is_ten_days_old_fails_with_its_age(target, conn):
    stage(target, "UPDATE market_data SET ts = ts - interval '10 days'")
    result = check(conn, group=None)
    (problem,) = result.problems
    assert problem.startswith("public.market_data.ts: the newest row (")
    assert "is 10 days old, older than the limit of 3 days (infra_freshness = market_data=3d)" in problem


def test_a_newest_row_hours_ahead_is_not_stale_and_says_so(target, conn):
    """A time zone's offset (MT5 servers' times stored without one, read as UTC) puts the newest rows hours ahead."""
    stage(
        target,
        "UPDATE market_data SET ts = ts + (now() - (SELECT max(ts) FROM market_data))"
        " + interval '5 hours 30 minutes 30 seconds'",
    )
    result = check(conn, "market_data=1d")
    assert result.ok
    assert ", 5 hours 30 minutes in the future (limit 1 day)" in result.evidence


def test_rows_dated_years_ahead_never_keep_a_dead_feed_fresh(target, fifty, conn):
    """A feed stopped 10 days ago, and one bogus row in 2099 for every symbol and timeframe: the rows up
    to a day ahead decide, and the far ones are said, not counted."""
    stage(
        target,
        "UPDATE market_data SET ts = ts - interval '1000 days'",  # in two steps: see stop()
        "UPDATE market_data SET ts = ts + interval '990 days'",
        "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)"
        " SELECT DISTINCT symbol, timeframe, '2099-01-01'::timestamptz, 1, 1, 1, 1, 1 FROM market_data",
    )
    result = check(conn)
    assert not result.ok
    assert any("is 10 days old, older than the limit of 3 days" in problem for problem in result.problems), (
        result.problems
    )
    assert result.stale_group_count == result.groups, "every pair: its newest row up to a day ahead is 10 days old"
    assert "rows dated more than a day ahead (the newest: 2099-01-01 00:00:00 UTC) are not counted" in result.evidence


def test_a_table_dated_entirely_ahead_says_so(target, conn):
    stage(target, "UPDATE market_data SET ts = ts + interval '1000 days'")
    (problem,) = check(conn, group=None).problems
    assert problem.startswith("public.market_data.ts: every row is dated more than a day ahead (the newest: ")
    assert problem.endswith("check the feed's clock and time zone")


def test_an_empty_table_is_said_once_as_a_cause_with_a_short_fact_as_evidence(target, conn):
    stage(target, "DELETE FROM market_data")
    result = check(conn, group=None)
    assert result.problems == (
        "public.market_data.ts: no row to date (the table is empty, or every ts is NULL), so "
        "nothing shows the data is current: is the feed running?",
    )
    assert result.evidence == "public.market_data.ts: no newest row"
    stage(
        target,
        "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume) "
        "SELECT symbol, 'H1', now() + interval '1000 days', 1, 1, 1, 1, 1 FROM assets LIMIT 1",
    )
    ahead = check(conn, group=None).evidence
    assert ahead.startswith("public.market_data.ts: no newest row up to a day ahead (the newest: ")


def test_ages_come_from_the_server_clock_and_naive_timestamps_read_as_utc(target):
    stage(
        target,
        "CREATE TABLE feed (at timestamp without time zone, day date)",
        "CREATE INDEX ON feed (at)",
        "INSERT INTO feed VALUES ((now() AT TIME ZONE 'UTC') - interval '2 hours', (now() AT TIME ZONE 'UTC')::date - 5)",
        "GRANT SELECT ON feed TO PUBLIC",
        # The session's zone must not shift a naive timestamp's age: the audit's session gets Tokyo's.
        f"ALTER DATABASE {target.dbname} SET timezone = 'Asia/Tokyo'",
    )
    with db_probe.connect(parse(target.url), TIMEOUTS) as conn:
        result = check(conn, "feed.at=3h", group=None)
        assert result.ok and ", 2 hours old (limit 3 hours)" in result.evidence
        assert "(no time zone: read as UTC)" in result.evidence
        dated = check(conn, "feed.day=3d", group=None)
        assert not dated.ok and " is 5 days old" in dated.problems[0]


def test_a_table_without_a_time_column_is_named(target, conn):
    stage(target, "CREATE TABLE notes (id int, body text)", "GRANT SELECT ON notes TO PUBLIC")
    error = probe_error(conn, "notes=1d")
    assert error.cause == "no_time_column"
    assert "table public.notes has no timestamp, timestamptz or date column" in str(error)


def test_two_candidate_columns_ask_which_one(target, conn):
    stage(
        target,
        "CREATE TABLE events (created_at timestamptz, updated_at timestamptz)",
        "INSERT INTO events VALUES (now(), now())",
        "GRANT SELECT ON events TO PUBLIC",
    )
    error = probe_error(conn, "events=3d")
    assert error.cause == "ambiguous_column"
    assert "(created_at, updated_at)" in str(error) and "infra_freshness = events.created_at=3d" in str(error)
    named = check(conn, "events.updated_at=3d", group=None)  # small and unindexed: scanned, and says so
    assert named.ok and named.evidence.endswith("small table without an index, scanned")
    qualified = probe_error(conn, "public.events=3d")
    assert "infra_freshness = public.events.created_at=3d" in str(qualified), str(qualified)


def test_a_preferred_name_settles_it_and_an_index_leading_with_a_column_does_not(target, conn):
    stage(
        target,
        "CREATE TABLE ticks (created_at timestamptz, ts timestamptz, seen date)",
        "INSERT INTO ticks VALUES (now(), now(), current_date)",
        "GRANT SELECT ON ticks TO PUBLIC",
    )
    assert check(conn, "ticks=3d", group=None).plan.column == "ts"
    stage(target, "CREATE INDEX ON ticks (seen)")
    found = check(conn, "ticks=3d", group=None)
    assert found.plan.column == "ts" and found.evidence.endswith("; ts is the time column: it is named ts")


def test_the_time_column_is_the_one_the_grouping_index_ends_with(target, conn):
    """Every bar_time 10 days old, updated_at touched today by a job and indexed on its own: the row's
    time is the column the (symbol, bar_time) index ends with, never the one an index merely leads with."""
    stage(
        target,
        "CREATE TABLE bars (symbol text, bar_time timestamptz, updated_at timestamptz)",
        "CREATE INDEX ON bars (symbol, bar_time)",
        "CREATE INDEX ON bars (updated_at)",
        "INSERT INTO bars SELECT 'S' || (n % 5), now() - interval '10 days' - n * interval '1 minute', now()"
        " FROM generate_series(1, 2000) AS n",
        "GRANT SELECT ON bars TO PUBLIC",
    )
    found = check(conn, "bars=3d", group="symbol")
    assert found.plan.column == "bar_time" and not found.ok, found.evidence
    assert "bar_time is the time column: the index on (symbol, bar_time) ends with it" in found.evidence
    assert "5 of 5 symbols have no row newer than 3 days" in found.problems[-1]
    stage(target, "CREATE INDEX ON bars (symbol, updated_at)")  # two grouping indexes: it asks
    error = probe_error(conn, "bars=3d", group="symbol")
    assert error.cause == "ambiguous_column"
    assert "(bar_time, updated_at) and indexes on symbol end with each" in str(error)
    assert "infra_freshness = bars.bar_time=3d" in str(error)
    no_group = probe_error(conn, "bars=3d")  # the index leading with updated_at settles nothing
    assert no_group.cause == "ambiguous_column"


def test_a_big_table_without_an_index_gets_the_create_index_instead_of_a_scan(target, conn):
    stage(
        target,
        "CREATE TABLE events (id int, ts timestamptz)",
        "INSERT INTO events SELECT i, now() FROM generate_series(1, 50) AS i",
        "ANALYZE events",
        "GRANT SELECT ON events TO PUBLIC",
    )
    error = probe_error(conn, "events=3d", exact_limit=10)  # a planner estimate of 50 >= 10: "big"
    assert error.cause == "needs_index"
    assert str(error) == (
        "table public.events (~50 rows) has no index to find its newest row without reading the whole table: "
        "CREATE INDEX ON public.events (ts)"
    )
    assert str(probe_error(conn, "events.ts=3d", exact_limit=10)).endswith("CREATE INDEX ON public.events (ts)")
    assert check(conn, "events=3d", group=None, exact_limit=1000).ok  # small: scanned


def test_a_never_analyzed_table_is_judged_by_its_size(target, conn):
    """No planner estimate yet (reltuples = -1, as after a restore) must not read as "small, scan it"."""
    stage(
        target,
        "CREATE TABLE restored (ts timestamptz) WITH (autovacuum_enabled = false)",
        "INSERT INTO restored SELECT now() FROM generate_series(1, 2000)",
        "GRANT SELECT ON restored TO PUBLIC",
    )
    error = probe_error(conn, "restored=3d", exact_limit=100)  # 2,000 rows take far more than 100 x 50 bytes
    assert error.cause == "needs_index"
    assert str(error).startswith("table public.restored (never analyzed, ") and "kB on disk)" in str(error)
    assert check(conn, "restored=3d", group=None, exact_limit=100_000).ok


def test_a_big_table_without_a_group_index_gets_the_create_index(target, conn):
    stage(
        target,
        "ALTER TABLE market_data DROP CONSTRAINT market_data_symbol_timeframe_ts_key",
        "DROP INDEX market_data_symbol_ts_idx",
        "CREATE INDEX ON market_data (ts, symbol)",  # both columns, but led by the time: no group's newest row
    )
    error = probe_error(conn, "market_data=3d", group="symbol", exact_limit=10)
    assert error.cause == "needs_index" and str(error).endswith("CREATE INDEX ON public.market_data (symbol, ts)")
    small = check(conn, exact_limit=EXACT_LIMIT)
    assert small.ok and small.plan.group == ("symbol",) and not small.plan.group_indexed


def test_a_column_with_too_many_values_is_no_group(target, fifty, conn, monkeypatch):
    """The walk stops after MAX_GROUPS + 1 groups instead of visiting every id of a huge table."""
    monkeypatch.setattr(freshness, "MAX_GROUPS", 149)
    error = probe_error(conn, "market_data=3d", group="symbol")
    assert error.cause == "too_many_groups" and "more than 149 distinct symbol/timeframe values" in str(error)
    monkeypatch.setattr(freshness, "MAX_GROUPS", 10)
    plan = freshness.resolve(conn, rule("market_data=3d"), "symbol", EXACT_LIMIT, TIMEOUTS)
    assert conn.execute(plan.group_query, (1.0, 1.0)).fetchone()[0] == 11  # walked no further
    monkeypatch.setattr(freshness, "MAX_GROUPS", 150)
    assert check(conn).groups == 150


def test_a_table_without_the_group_column_names_the_setting(conn):
    error = probe_error(conn, "market_data=3d", group="ticker")
    assert error.cause == "no_group_column"
    assert "no column 'ticker'" in str(error) and "infra_freshness_group" in str(error)


def test_the_time_column_as_its_own_group_is_refused(conn):
    """--freshness-group=ts would ask for an index on (ts, ts): every timestamp its own group."""
    error = probe_error(conn, "market_data=3d", group="ts")
    assert error.cause == "no_group_column" and "names public.market_data's time column 'ts' itself" in str(error)


def test_the_group_query_walks_the_index_and_never_scans_the_table(target, fifty, conn):
    for drop in (None, "ALTER TABLE market_data DROP CONSTRAINT market_data_symbol_timeframe_ts_key"):
        if drop:
            stage(target, drop)
        plan = freshness.resolve(conn, rule("market_data=3d"), "symbol", EXACT_LIMIT, TIMEOUTS)
        explained = "\n".join(
            line for (line,) in conn.execute(sql.SQL("EXPLAIN {}").format(plan.group_query), (1.0, 1.0))
        )
        assert "Seq Scan" not in explained and "Index Only Scan" in explained, explained
        newest = "\n".join(line for (line,) in conn.execute(sql.SQL("EXPLAIN {}").format(plan.newest_query)))
        assert "Seq Scan" not in newest, newest


def test_qualified_and_quoted_tables_resolve(target, conn):
    stage(
        target,
        'CREATE TABLE "Market Data" ("Ts" timestamptz)',
        "INSERT INTO \"Market Data\" VALUES (now() - interval '1 hour')",
        "CREATE SCHEMA other",
        "CREATE TABLE other.feed (ts timestamptz)",
        "INSERT INTO other.feed VALUES (now())",
        "GRANT USAGE ON SCHEMA other TO PUBLIC",
        'GRANT SELECT ON "Market Data", other.feed TO PUBLIC',
    )
    quoted = check(conn, '"Market Data"=2h', group=None)
    assert quoted.ok and quoted.plan.label == 'public."Market Data"."Ts"'
    assert check(conn, "other.feed=1d", group=None).plan.table == "other.feed"  # schema.table
    assert check(conn, "market_data.ts=3d", group=None).plan.column == "ts"  # table.column
    assert probe_error(conn, "nosuch=1d").cause == "missing"
    assert probe_error(conn, "market_data.nosuch=1d").cause == "missing_column"
    assert probe_error(conn, "market_data.symbol=1d").cause == "bad_column"


def test_every_query_runs_under_the_deadline(target, conn):
    """A table locked by another session fails as 'locked' within the deadline instead of hanging."""
    with psycopg.connect(target.admin.info.dsn, password=target.admin.info.password) as locker:
        locker.execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        error = probe_error(conn, "market_data=3d", group="symbol")
    assert error.cause == "locked"


# A row just inside the 3-day limit and one just past it, per column type. A date's age is whole days,
# so its edge is exact (3 days old is at the limit, and fresh); a timestamp's is 10 minutes either
# side, a margin no loaded machine outruns between the INSERT and the check.
EDGE = {
    "timestamptz": ("now() - interval '3 days' + interval '10 minutes'", "now() - interval '3 days 10 minutes'"),
    "date": ("(now() AT TIME ZONE 'UTC')::date - 3", "(now() AT TIME ZONE 'UTC')::date - 4"),
}


@pytest.mark.parametrize("column_type", EDGE)
def test_the_age_limit_holds_at_its_edge_per_table_and_per_group(target, conn, column_type):
    """Symbol IN's newest row is just within the limit, OUT's just past it: the table is fresh (its
    newest row is IN's), one of its two symbols is stale, and without IN the table is stale too."""
    within, past = EDGE[column_type]
    stage(
        target,
        f"CREATE TABLE edge (symbol text, ts {column_type})",
        f"INSERT INTO edge VALUES ('IN', {within}), ('OUT', {past})",
        "GRANT SELECT ON edge TO PUBLIC",
    )
    assert check(conn, "edge=3d", group=None).ok
    grouped = check(conn, "edge=3d", group="symbol")
    assert (grouped.groups, grouped.stale_group_count) == (2, 1)
    assert [group.key for group in grouped.stale_groups] == [("OUT",)]
    stage(target, "DELETE FROM edge WHERE symbol = 'IN'")
    (problem,) = check(conn, "edge=3d", group=None).problems
    assert "older than the limit of 3 days" in problem, problem
