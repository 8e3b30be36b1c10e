"""The two data checks end to end: a feed that stopped, data that aged, rows that went missing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from psycopg import sql

from infra_audit.sandbox import seed
from tests.support import partitioned_bars, stage, write_env

SYMBOLS = 50


def reseed(target, rows: int = 90_000) -> list[str]:
    """50 symbols of bars up to now (90,000 rows: 600 a series, so even 15-minute bars reach back over
    6 days); the symbols in id order."""
    seed.seed(target.admin, market_data_rows=rows, assets_rows=SYMBOLS)
    return [symbol for (symbol,) in target.admin.execute("SELECT symbol FROM assets ORDER BY id").fetchall()]


def audit_feed(project: Path, target, run_audit, history: Path, *args: str):
    write_env(project, f"DB_URL={target.url}\n")
    return run_audit(project, f"--history={history}", *args)


def test_three_stopped_symbols_are_named_with_their_ages(project, target, run_audit, tmp_path):
    symbols = reseed(target)
    stopped = symbols[:3]
    target.admin.execute(
        "DELETE FROM market_data WHERE symbol = ANY(%s) AND ts > now() - interval '5 days'", (stopped,)
    )
    target.admin.execute("ANALYZE market_data")
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert run.outcome("test_data_is_fresh") == "failed", run.output
    message = run.message("test_data_is_fresh")
    named = set(re.findall(r"\b([A-Z]{2}\d{4}) (?:M15|H1|D1) \(", message))
    assert named == set(stopped), message
    assert "9 of 150 symbol/timeframe pairs" in message and "5 days" in message
    assert run.outcome("test_row_counts_nonzero") == "passed", "the tables still hold plenty of rows"

    ungrouped = audit_feed(project, target, run_audit, tmp_path / "history.jsonl", "--freshness-group=")
    assert ungrouped.outcome("test_data_is_fresh") == "passed", ungrouped.output


def test_a_table_whose_newest_row_is_ten_days_old_fails_with_its_age(project, target, run_audit, tmp_path):
    reseed(target, rows=3_000)
    target.admin.execute("DELETE FROM market_data WHERE ts > now() - interval '10 days'")
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert run.outcome("test_data_is_fresh") == "failed"
    assert re.search(
        r"market_data\.ts: the newest row \(.*\) is 10 days( \d+ (second|minute)s?)? old",
        run.message("test_data_is_fresh"),
    ), run.message("test_data_is_fresh")
    health = run.message("test_health_check_passes")
    assert run.outcome("test_health_check_passes") == "failed" and "10 days" in health, "a stale feed is not healthy"


def test_a_two_level_rule_warns_between_its_ages_and_fails_past_the_error_age(project, target, run_audit, tmp_path):
    """Past the warning age the check passes with its warning in the terminal, JUnit and HTML, and the
    health check still passes; past the error age both fail."""
    stage(target, "UPDATE market_data SET ts = ts - interval '1000 days'")  # in two steps: the unique key
    stage(target, "UPDATE market_data SET ts = ts + interval '1000 days' - interval '8 hours'")
    rule, page = "--freshness=market_data=warn:6h,error:3d", tmp_path / "report.html"
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl", rule, f"--html={page}")
    assert run.exit_code == 0 and run.outcome("test_data_is_fresh") == "passed", run.output
    warning = "public.market_data.ts: the newest row ("
    case = next(case for case in ET.fromstring(run.junit).iter("testcase") if case.get("name") == "test_data_is_fresh")
    warnings = [p.get("value") for p in case.iter("property") if p.get("name") == "warning"]
    assert warnings[0].startswith(warning) and "past the warning age of 6 hours (it fails at 3 days" in warnings[0]
    assert f"warning: {warning}" in run.output and re.search(r"audit PASSED: 8 passed \(\d+ warnings\)", run.output)
    assert f'<div class="infra-warning">warning: {warning}' in page.read_text()
    assert run.outcome("test_health_check_passes") == "passed", "a warning is still healthy"

    stage(target, "UPDATE market_data SET ts = ts - interval '1000 days'")
    stage(target, "UPDATE market_data SET ts = ts + interval '1000 days' - interval '3 days'")
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl", rule)
    assert run.outcome("test_data_is_fresh") == "failed" and "older than the limit of 3 days" in run.message(
        "test_data_is_fresh"
    )
    assert run.outcome("test_health_check_passes") == "failed"


def test_a_symbol_whose_rows_have_no_timeframe_is_never_left_out(project, target, run_audit, tmp_path):
    """Issue 17: rows whose timeframe is NULL were skipped by the walk over (symbol, timeframe, ts): a
    symbol 10 days old was never looked at, and the evidence said every pair was within the limit."""
    reseed(target, rows=3_000)
    stage(
        target,
        "ALTER TABLE market_data ALTER COLUMN timeframe DROP NOT NULL",
        "INSERT INTO assets (symbol, name, asset_class, currency, exchange) VALUES ('ZZ0009', 'z', 'fx', 'USD', 'X')",
        "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)"
        " SELECT 'ZZ0009', NULL, now() - interval '10 days' - n * interval '1 hour', 1, 1, 1, 1, 1"
        " FROM generate_series(0, 29) AS n",
    )
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert run.outcome("test_data_is_fresh") == "failed", run.output
    message = run.message("test_data_is_fresh")
    assert "1 of 151 symbol/timeframe pairs have no row newer than 3 days: ZZ0009 timeframe=NULL (10 days)" in message


def test_the_row_time_is_judged_never_a_column_a_job_touches(project, target, run_audit, tmp_path):
    """Issue 17: with indexes on (symbol, ts) and on updated_at, the audit judged updated_at (touched today
    by a job) while every ts was 10 days old, and passed."""
    reseed(target, rows=3_000)
    stage(
        target,
        "ALTER TABLE market_data DROP CONSTRAINT market_data_symbol_timeframe_ts_key",
        "DROP INDEX market_data_ts_idx",
        "ALTER TABLE market_data ADD COLUMN updated_at timestamptz",
        "UPDATE market_data SET ts = ts - interval '10 days', updated_at = now()",
        "CREATE INDEX ON market_data (updated_at)",
    )
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert run.outcome("test_data_is_fresh") == "failed", run.output
    assert "public.market_data.ts: the newest row (" in run.message("test_data_is_fresh")
    assert "ts is the time column: the index on (symbol, ts) ends with it" in run.output, run.output


def test_a_daily_partitioned_table_in_another_schema_is_checked_and_named(project, target, run_audit, tmp_path):
    """Issue 17: market_data partitioned by day (200 partitions), found in schema trading through the
    search path while an empty public.market_data exists: each check names the table it read, freshness
    names exactly the stopped symbols, and row counts and "not shrinking" work on the partitions."""
    stage(target, "CREATE SCHEMA trading", "TRUNCATE public.market_data")
    partitioned_bars(target, "trading.market_data", days=200)
    stage(
        target,
        "GRANT USAGE ON SCHEMA trading TO PUBLIC",
        "GRANT SELECT ON trading.market_data TO PUBLIC",
        f"ALTER ROLE {target.role.name} IN DATABASE {target.dbname} SET search_path = trading, public",
    )
    history = tmp_path / "history.jsonl"
    first = audit_feed(project, target, run_audit, history, "--freshness=market_data=10d")
    assert first.exit_code == 0, first.output
    assert "trading.market_data: 2,370 rows (exact count)" in first.output, first.output
    assert "trading.market_data.ts: newest row " in first.output
    assert "200 partitions with rows: 0 walked over their index, 200 small ones read whole" in first.output

    stage(target, "DELETE FROM trading.market_data WHERE ts < current_date - 99")  # 100 days' bars, 1,200 rows
    second = audit_feed(project, target, run_audit, history)
    message = second.message("test_data_is_fresh")
    assert "trading.market_data: 6 of 12 symbol/timeframe pairs have no row newer than 3 days: " in message
    assert set(re.findall(r"\b(S\d) (?:H1|D1) \(5 days", message)) == {"S1", "S2", "S3"}, message
    assert second.outcome("test_row_counts_not_shrinking") == "failed", second.output
    assert "market_data holds 1,170 rows (exact) now, 51% fewer than the 2,370 rows (exact)" in second.message(
        "test_row_counts_not_shrinking"
    )


def test_rows_that_went_missing_are_named_with_both_counts(project, target, run_audit, tmp_path):
    reseed(target, rows=10_000)
    history = tmp_path / "history.jsonl"
    first = audit_feed(project, target, run_audit, history)
    assert first.exit_code == 0, first.output
    assert "warning: no passing audit of " in first.output and "become the baseline if it passes" in first.output
    target.admin.execute("DELETE FROM market_data WHERE id % 5 = 0")  # 20% of the rows, 2,000
    second = audit_feed(project, target, run_audit, history)
    assert re.search(r"^FAILED +row counts not shrinking$", second.output, re.MULTILINE), second.output
    message = second.message("test_row_counts_not_shrinking")
    assert "market_data holds 8,000 rows (exact) now, 20% fewer than the 10,000 rows (exact)" in message
    assert "pass one audit with a higher infra_max_shrink (--max-shrink=21%)" in message
    assert "assets" not in message.splitlines()[0]
    assert len(history.read_text().splitlines()) == 2, "each audit appended one whole line"


def test_rows_deleted_since_the_last_analyze_never_pass_behind_a_stale_estimate(project, target, run_audit, tmp_path):
    """A quarter of a big table deleted before autovacuum's next ANALYZE: the planner's estimate still
    says every row is there, PostgreSQL's statistics count the rows left, so the check cannot pass.
    A statistics reset (a crash, pg_stat_reset()) zeroes those counts: that is no loss."""
    reseed(target, rows=10_000)
    history = tmp_path / "history.jsonl"
    assert audit_feed(project, target, run_audit, history, "--exact-count-limit=1000").exit_code == 0
    stage(
        target,
        "ALTER TABLE market_data SET (autovacuum_enabled = false)",
        "DELETE FROM market_data WHERE id % 4 = 0",
        "SELECT pg_stat_force_next_flush()",
    )
    run = audit_feed(project, target, run_audit, history, "--exact-count-limit=1000")
    assert re.search(r"^COULD NOT CHECK +row counts not shrinking$", run.output, re.MULTILINE), run.output
    assert (
        "market_data: could not compare: the planner's estimate (~10,000 rows) and PostgreSQL's statistics "
        "(~7,500 live rows, 25% fewer than the ~10,000 rows (estimate) of the last passing audit"
    ) in run.message("test_row_counts_not_shrinking")
    assert "disagree: rows were deleted since the last ANALYZE" in run.message("test_row_counts_not_shrinking")
    assert (
        "market_data: ~10,000 rows (planner estimate; the statistics count ~7,500 live rows: run ANALYZE "
        "market_data)" in run.output
    )
    assert run.outcome("test_row_counts_nonzero") == "passed", "the rows left are rows"

    stage(target, "ANALYZE market_data", "SELECT pg_stat_reset()", "SELECT pg_stat_force_next_flush()")
    stage(target, "UPDATE market_data SET symbol = symbol", "SELECT pg_stat_force_next_flush()")  # every row changed
    after_reset = audit_feed(project, target, run_audit, history, "--exact-count-limit=1000", "--max-shrink=30%")
    assert after_reset.outcome("test_row_counts_not_shrinking") == "passed", after_reset.output
    assert "the statistics count" not in after_reset.output


def test_terminal_escapes_in_the_data_never_reach_the_terminal(project, target, run_audit, run_health_check, tmp_path):
    """A symbol holding escapes that move the cursor up and erase lines could rewrite FAILED as PASSED
    on a terminal: the audit's summary and the health check's report show them escaped."""
    reseed(target, rows=3_000)
    evil = "EVIL" + "\x1b[1A\x1b[2K" * 5 + "\x1b[32mPASSED"
    stage(
        target,
        "INSERT INTO assets (symbol, name, asset_class, currency, exchange) "
        f"VALUES ({sql.Literal(evil).as_string(target.admin)}, 'x', 'fx', 'USD', 'X')",
        "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume) "
        f"VALUES ({sql.Literal(evil).as_string(target.admin)}, 'H1', now() - interval '9 days', 1, 1, 1, 1, 1)",
    )
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert run.outcome("test_data_is_fresh") == "failed", run.output
    assert "\x1b" not in run.output and "EVIL\\x1b[1A" in run.output
    done = run_health_check("--root", str(project))
    assert done.returncode == 1 and "\x1b" not in done.stdout and "EVIL\\x1b[1A" in done.stdout, done.stdout


def test_a_failed_audit_never_becomes_the_baseline(project, target, run_audit, tmp_path):
    reseed(target, rows=10_000)
    history = tmp_path / "history.jsonl"
    assert audit_feed(project, target, run_audit, history).exit_code == 0
    target.admin.execute("DELETE FROM market_data WHERE id % 2 = 0")
    assert audit_feed(project, target, run_audit, history).exit_code == 1
    again = audit_feed(project, target, run_audit, history)
    assert again.outcome("test_row_counts_not_shrinking") == "failed", "still compared with the last passing audit"


def test_row_level_security_is_said_never_taken_for_the_whole_table(
    project, target, run_audit, run_health_check, tmp_path
):
    """A policy that shows the audit's user some rows: "non-empty" is still proven (with a warning), but
    freshness and shrinking are about the rows it cannot see too, so they could not check; a policy that
    shows none is not "the table is empty"."""
    symbols = reseed(target)
    target.admin.execute("ALTER TABLE market_data ENABLE ROW LEVEL SECURITY")
    target.admin.execute(
        sql.SQL("CREATE POLICY some_symbols ON market_data FOR SELECT USING (symbol = ANY({}))").format(
            sql.Literal(symbols[:10])
        )
    )
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    user = target.role.name
    assert run.exit_code == 1, run.output
    assert run.outcome("test_row_counts_nonzero") == "passed"
    assert run.output.count(f"row-level security may filter what user '{user}' sees of market_data") == 1, run.output
    assert (
        "market_data: could not check every row: row-level security may hide some from the audit's user: audit "
        "as a role with BYPASSRLS"
    ) in run.message("test_data_is_fresh")
    assert "30 of 30 symbol/timeframe pairs within the limit" in run.output, "only the 10 symbols it may see"
    assert (
        f"market_data: could not compare every row: row-level security may hide some from user '{user}': "
        'see "row counts non-zero"'
    ) in run.message("test_row_counts_not_shrinking")
    assert run.outcome("test_health_check_passes") == "failed", "monitoring cannot vouch for rows it cannot see"
    probe = run_health_check("--root", str(project))
    assert f"(row-level security: only what user '{user}' may see)" in probe.stdout, probe.stdout

    target.admin.execute("DROP POLICY some_symbols ON market_data")  # no policy: every row hidden
    hidden = audit_feed(project, target, run_audit, tmp_path / "history.jsonl")
    assert hidden.outcome("test_row_counts_nonzero") == "failed"
    assert (
        f"table 'market_data' shows no rows to user '{user}': it is empty, or row-level security "
        "(on for it) hides every row"
    ) in hidden.message("test_row_counts_nonzero")
    assert "is empty: load its data" not in hidden.output


def test_a_view_over_a_table_with_row_level_security_is_never_taken_for_the_whole_table(
    project, target, run_audit, tmp_path
):
    """row_security_active says nothing of a view: one that reads a table under row-level security is
    said so, as the table itself would be."""
    target.admin.execute("ALTER TABLE assets ENABLE ROW LEVEL SECURITY")
    target.admin.execute("CREATE POLICY all_rows ON assets FOR SELECT USING (true)")
    target.admin.execute("CREATE VIEW assets_seen WITH (security_invoker = true) AS SELECT * FROM assets")
    target.admin.execute("GRANT SELECT ON assets_seen TO PUBLIC")
    run = audit_feed(project, target, run_audit, tmp_path / "history.jsonl", "--tables=market_data assets_seen")
    assert run.outcome("test_row_counts_nonzero") == "passed", run.output
    assert f"row-level security may filter what user '{target.role.name}' sees of assets_seen" in run.output
    assert run.outcome("test_row_counts_not_shrinking") == "failed"


def test_a_stale_planner_estimate_never_passes_a_shrink_it_cannot_see(project, target, run_audit, tmp_path):
    """Emptied, refilled a little, analyzed, then grown past the limit: the count now is only "more than
    50", the planner says 10. Neither number may pass the check (or become the baseline)."""
    history = tmp_path / "history.jsonl"
    first = audit_feed(project, target, run_audit, history, "--exact-count-limit=50")
    assert first.outcome("test_row_counts_not_shrinking") == "passed", first.output
    stage(
        target,
        "ALTER TABLE market_data SET (autovacuum_enabled = false)",
        "CREATE TABLE keep AS SELECT * FROM market_data",
        "TRUNCATE market_data",
        "INSERT INTO market_data SELECT * FROM keep LIMIT 10",
        "ANALYZE market_data",
        "INSERT INTO market_data SELECT * FROM keep OFFSET 10 LIMIT 60",
    )
    second = audit_feed(project, target, run_audit, history, "--exact-count-limit=50")
    assert second.outcome("test_row_counts_not_shrinking") == "failed", second.output
    assert (
        "market_data: could not compare: it holds more than 50 rows now, too few to tell whether it is within "
        "10% of the ~120 rows (estimate)"
    ) in second.message("test_row_counts_not_shrinking")
    assert "more than 50 rows (no current planner estimate: run ANALYZE market_data)" in second.output
    assert len(history.read_text().splitlines()) == 2 and '"passed":false' in history.read_text().splitlines()[1]
