#!/usr/bin/env python3
"""Measure the audit as ratios against a floor: start-up against bare processes, checks against table size.

    INFRA_ADMIN_URL=postgresql://ADMIN:<password>@127.0.0.1:5432/postgres python3 tools/benchmark.py
    python3 tools/benchmark.py --sizes 1000000,10000000 --repeat 7 --startup-runs 9

1. Start-up, whole processes side by side: the audit (`pytest infra_tests`, HTML report included)
   against a bare pytest process running one trivial test with plugin autoload off, and
   `tools/health_check.py` against a bare `import psycopg; connect; SELECT 1` process; then the
   audit with `market_data` locked by another session against the healthy audit (one lock wait more
   at most: each cause is waited on once, the health check's wait beside the audit's).
2. Per size, in a scratch database seeded like production (infra_audit/sandbox/seed.py): the table check
   (`infra_audit.core.probe.table_stats`, the code the audit runs) against a naive `SELECT count(*)`,
   the freshness check (newest row and the per-symbol skip scan) and the row-count history check.
3. Per partition count (`--partitions`), a `market_data` partitioned by day, one bar a day for each of
   PAIRS symbol/timeframe pairs, STALE_SYMBOLS of them stopped STALE_DAYS ago: "data is fresh" (which
   must name exactly those) against the plain `SELECT symbol, timeframe, max(ts) ... GROUP BY 1, 2`.

The admin URL comes from INFRA_ADMIN_URL (a URL in --server is visible to every user in `ps`).
Scratch databases carry a marker of this run and only those are dropped; every connection and
statement has a deadline. Exit codes: 0 measured, 1 a measurement failed, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _checkout

_checkout.require_installed("benchmark.py")

import psycopg  # noqa: E402  (after the check above: one line, not an ImportError, where it is missing)
from psycopg import conninfo, sql  # noqa: E402

from infra_audit.cli import convention  # noqa: E402
from infra_audit.core import dburl, freshness, history, settings  # noqa: E402
from infra_audit.core import probe as db_probe  # noqa: E402
from infra_audit.core.errors import DbUrlError, InfraError  # noqa: E402
from infra_audit.sandbox import ownership, seed  # noqa: E402

TOOL = "benchmark.py"
MAKER = "benchmark"
CHECKOUT = Path(__file__).resolve().parents[1]
ADMIN_URL_VARIABLE = "INFRA_ADMIN_URL"
DEFAULTS = settings.build({}, CHECKOUT)
TIMEOUTS = db_probe.Timeouts(connect=5, query=600)
SEED_DEADLINE_S = 60 * 60
PROCESS_DEADLINE_S = 120
BARE_TEST = "def test_trivial():\n    assert True\n"
BARE_CONNECT = "import os, psycopg\npsycopg.connect(os.environ['DB_URL'], connect_timeout=5).execute('SELECT 1')\n"
PAIRS = 6000  # 3,000 symbols x 2 timeframes: at 500 daily partitions, 3 million rows
STALE_SYMBOLS = ("P0001", "P0002", "P0003")
STALE_DAYS = 5
PLAIN_GROUP_BY = "SELECT symbol, timeframe, max(ts) FROM market_data GROUP BY 1, 2"


def parse_args(argv: list[str] | None):
    parser = convention.Parser(prog=TOOL, description=__doc__.split("\n")[0])
    parser.add_argument("--server", metavar="ADMIN_URL", help=f"admin URL (prefer ${ADMIN_URL_VARIABLE})")
    parser.add_argument("--sizes", default="1000000,10000000", help="market_data row counts, comma separated")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per check (median reported)")
    parser.add_argument("--startup-runs", type=int, default=9, help="runs of each whole process (median reported)")
    parser.add_argument("--skip-startup", action="store_true", help="only the per-size measurements")
    parser.add_argument(
        "--partitions",
        default="",
        help=f"daily partition counts of a partitioned market_data, comma separated ({PAIRS:,} rows each; empty: none)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.startup_runs < 1:
        parser.error("--repeat and --startup-runs must be at least 1")
    try:
        args.sizes = [int(size) for size in args.sizes.split(",")]
        for size in args.sizes:
            if size < 1:  # an empty market_data has no newest row to time: the audit fails it
                raise ValueError(f"{size} rows leave market_data empty")
            seed.seed_params(market_data_rows=size, assets_rows=seed.SPEC_ASSETS_ROWS, now=None)
    except ValueError as exc:
        parser.error(f"--sizes: {exc} (whole numbers from 1 to {seed.MAX_ROWS:,}, comma separated)")
    try:
        args.partitions = [int(count) for count in args.partitions.split(",") if count.strip()]
        if any(not STALE_DAYS < count <= 5000 for count in args.partitions):
            raise ValueError
    except ValueError:
        parser.error(f"--partitions: whole numbers from {STALE_DAYS + 1} to 5000, comma separated")
    text = args.server or os.environ.get(ADMIN_URL_VARIABLE)
    if not text:
        parser.error(f"set {ADMIN_URL_VARIABLE} to an admin URL (a role with CREATEDB)")
    try:
        args.admin = dburl.parse(text)
    except DbUrlError as exc:
        parser.error(f"the admin URL: {exc}")
    return args


def median_ms(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``action`` in milliseconds, after one warm-up run."""
    action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


class Scratch:
    """A scratch database of this run: created with its marker, dropped only while the marker is there."""

    def __init__(self, admin: dburl.DbUrl, label: str) -> None:
        self.admin, self.marker = admin, ownership.Marker.new(MAKER, CHECKOUT)
        self.name = f"infra_bench_{self.marker.run_id}_{label}"

    @property
    def conninfo(self) -> str:
        """The admin's connection to the scratch database: psycopg's own conninfo with ``dbname=``."""
        return conninfo.make_conninfo(self.admin.raw, dbname=self.name)

    @property
    def url(self) -> str:
        """The same as a URL for the audit's DB_URL, built from the parsed parts (never by editing the text)."""
        host, port = self.admin.hosts[0] if self.admin.hosts else ("localhost", None)
        return dburl.build(host, str(port) if port else None, self.admin.user, self.admin.password, self.name)

    def __enter__(self) -> Scratch:
        with ownership.connect(self.admin.raw) as conn:
            admin = db_probe.Deadlined(conn, 60, "the server")
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
            admin.execute(self.marker.comment_sql("database", self.name))
        return self

    def __exit__(self, *_: object) -> None:
        with ownership.connect(self.admin.raw) as conn:
            ownership.drop_if_ours(db_probe.Deadlined(conn, 60, "the server"), "database", self.name, self.marker)

    def seed(self, rows: int) -> float:
        """Seed like production, then vacuum, so autovacuum does not start on the new rows in the middle of
        a measurement (it would, within its naptime, and slow one side); the seconds it took."""
        started = time.monotonic()
        with ownership.connect(self.conninfo) as conn:
            db_probe.with_deadline(lambda: seed.seed(conn, market_data_rows=rows), SEED_DEADLINE_S)
            db_probe.with_deadline(lambda: conn.execute("VACUUM (ANALYZE) market_data, assets"), SEED_DEADLINE_S)
        return time.monotonic() - started


def startup(scratch: Scratch, runs: int) -> list[tuple[str, float, str, float]]:
    """Whole processes side by side (interleaved, so load hits both): (what, ms, floor, ms)."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "test_trivial.py").write_text(BARE_TEST)
        # Python as it runs by default, for both sides: bytecode cached after the first round (in this
        # run's own folder, never the checkout), whatever PYTHONDONTWRITEBYTECODE the caller has.
        env = {**os.environ, "DB_URL": scratch.url, "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        for name in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE"):
            env.pop(name, None)
        bare = {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        commands = {
            "audit": (
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "infra_tests",
                    f"--history={work / 'h.jsonl'}",
                    f"--report-dir={work / 'reports'}",
                ],
                CHECKOUT,
                env,
            ),
            "bare pytest": (
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_trivial.py"],
                work,
                bare,
            ),
            "health check": ([sys.executable, str(CHECKOUT / "tools" / "health_check.py")], CHECKOUT, env),
            "bare connect": ([sys.executable, "-c", BARE_CONNECT], work, env),
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs + 1):  # the first round warms the caches and is not counted
            for name, (command, cwd, environment) in commands.items():
                started = time.perf_counter()
                done = subprocess.run(
                    command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=PROCESS_DEADLINE_S
                )
                if done.returncode != 0:
                    raise InfraError(f"{name} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}")
                samples[name].append((time.perf_counter() - started) * 1000)
        ms = {name: statistics.median(values[1:]) for name, values in samples.items()}
        audit, _, _ = commands["audit"]
        ms["locked"] = locked_audit_ms(scratch, [*audit, "--no-default-report"], env, runs)
    return [
        ("audit", ms["audit"], "bare pytest", ms["bare pytest"]),
        ("health check", ms["health check"], "bare connect", ms["bare connect"]),
        ("audit, locked", ms["locked"], "healthy audit", ms["audit"]),
    ]


def locked_audit_ms(scratch: Scratch, command: list[str], env: dict[str, str], runs: int) -> float:
    """The audit's median wall time while another session holds market_data locked (it fails, as it
    should: could not check)."""
    samples = []
    with ownership.connect(scratch.conninfo) as holder:
        holder.execute("BEGIN")
        db_probe.Deadlined(holder, 60, "market_data").execute("LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE")
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                command, cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=PROCESS_DEADLINE_S
            )
            if "is locked by another session" not in done.stdout:
                raise InfraError(f"the audit with market_data locked did not say so: {done.stdout.strip()[-300:]}")
            samples.append((time.perf_counter() - started) * 1000)
        holder.execute("ROLLBACK")
    return statistics.median(samples)


def per_size(scratch: Scratch, size: int, repeat: int) -> dict[str, object]:
    """The audit's data checks against the naive count, on one seeded size."""
    seconds = scratch.seed(size)
    rule = DEFAULTS.freshness[0]
    url = dburl.parse(scratch.url)
    with db_probe.connect(url, TIMEOUTS) as conn:
        limit = DEFAULTS.exact_count_limit
        tables = lambda: [db_probe.table_stats(conn, t, limit, TIMEOUTS) for t in DEFAULTS.tables]  # noqa: E731
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "history.jsonl"
            history.append(path, history.record(history.identify(conn, url, TIMEOUTS)[0], tables(), passed=True))

            def shrink() -> object:  # as the check does it: which database this is, its counts, the comparison
                target = history.identify(conn, url, TIMEOUTS)[0]
                return history.compare(history.read(path).last_passing(target), history.record(target, tables(), True))

            return {
                "rows": size,
                "seed_s": seconds,
                "table_check_ms": median_ms(tables, repeat),
                "count_ms": median_ms(lambda: conn.execute("SELECT count(*) FROM market_data").fetchone(), repeat),
                "fresh_ms": median_ms(
                    lambda: freshness.check(conn, rule, DEFAULTS.freshness_group, limit, TIMEOUTS), repeat
                ),
                "fresh_table_only_ms": median_ms(lambda: freshness.check(conn, rule, None, limit, TIMEOUTS), repeat),
                "shrink_ms": median_ms(shrink, repeat),
                "shown": tables()[0].shown,
            }


def seed_partitioned(scratch: Scratch, days: int) -> float:
    """market_data partitioned by day over ``days`` days (and one ahead, empty), one bar a day per pair, indexed
    on the parent as a time-series table is; STALE_SYMBOLS stopped STALE_DAYS ago; vacuumed. The seconds it took."""
    first = f"current_date - {days - 1}"
    statements = [
        "CREATE TABLE market_data (symbol text NOT NULL, timeframe text NOT NULL, ts timestamptz NOT NULL,"
        " close numeric(18, 6) NOT NULL) PARTITION BY RANGE (ts)",
        f"DO $$ BEGIN FOR d IN 0..{days} LOOP EXECUTE format('CREATE TABLE market_data_%s PARTITION OF market_data"
        f" FOR VALUES FROM (%L) TO (%L)', d, ({first} + d)::timestamptz, ({first} + d + 1)::timestamptz);"
        " END LOOP; END $$",
        f"INSERT INTO market_data SELECT 'P' || lpad(s::text, 4, '0'), t, least(day + interval '12 hours', now()), 1"
        f" FROM generate_series({first}, current_date, interval '1 day') AS day,"
        f" generate_series(1, {PAIRS // 2}) AS s, (VALUES ('H1'), ('D1')) AS v(t)",
        f"DELETE FROM market_data WHERE symbol IN {STALE_SYMBOLS} AND ts > now() - interval '{STALE_DAYS} days'",
        "CREATE INDEX ON market_data (symbol, timeframe, ts)",
        "CREATE INDEX ON market_data (ts)",
        "VACUUM (ANALYZE) market_data",
    ]
    started = time.monotonic()
    with ownership.connect(scratch.conninfo) as conn:
        conn.execute(f"SET statement_timeout = '{SEED_DEADLINE_S}s'")  # the admin's own session: no pooler here
        for statement in statements:
            db_probe.with_deadline(lambda statement=statement: conn.execute(statement), SEED_DEADLINE_S)
    return time.monotonic() - started


def partitioned(scratch: Scratch, days: int, repeat: int) -> dict[str, object]:
    """ "data is fresh" on a daily-partitioned market_data against the plain GROUP BY over the whole table."""
    seconds = seed_partitioned(scratch, days)
    rule = DEFAULTS.freshness[0]
    with db_probe.connect(dburl.parse(scratch.url), TIMEOUTS) as conn:
        limit = DEFAULTS.exact_count_limit
        found = freshness.check(conn, rule, DEFAULTS.freshness_group, limit, TIMEOUTS)
        named = {group.key[0] for group in found.stale_groups}
        if named != set(STALE_SYMBOLS) or found.stale_group_count != 2 * len(STALE_SYMBOLS):
            raise InfraError(
                f"{days} partitions: 'data is fresh' named {sorted(named)} ({found.stale_group_count} "
                f"pairs), not exactly {', '.join(STALE_SYMBOLS)}: {found.evidence}"
            )
        (rows,) = conn.execute("SELECT count(*) FROM market_data").fetchone()
        return {
            "partitions": days,
            "rows": rows,
            "seed_s": seconds,
            "group_by_ms": median_ms(lambda: conn.execute(PLAIN_GROUP_BY).fetchall(), repeat),
            "fresh_ms": median_ms(
                lambda: freshness.check(conn, rule, DEFAULTS.freshness_group, limit, TIMEOUTS), repeat
            ),
            "stale": found.stale_group_count,
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin = args.admin
    results: dict[str, object] = {"server": admin.redacted, "startup": [], "sizes": [], "partitioned": []}

    def work() -> convention.Result:
        try:
            return measure()
        except psycopg.Error as exc:
            raise InfraError(f"the database failed: {str(exc).strip().splitlines()[0]}") from None

    def measure() -> convention.Result:
        print(f"server {admin.redacted}; exact-count limit {DEFAULTS.exact_count_limit:,}")
        if not args.skip_startup:
            with Scratch(admin, "startup") as scratch:
                scratch.seed(seed.SPEC_MARKET_DATA_ROWS)
                print(f"\nwhole processes, median of {args.startup_runs} (spec-sized database, healthy):")
                for name, ms, floor, floor_ms in startup(scratch, args.startup_runs):
                    ratio = f"ratio {ms / floor_ms:.2f}x"
                    if name == "audit, locked":
                        ratio = f"{ms - floor_ms:+.0f} ms (one lock wait: {DEFAULTS.timeouts.lock * 1000:.0f} ms)"
                    print(f"  {name:<13} {ms:8.0f} ms   {floor:<13} {floor_ms:6.0f} ms   {ratio}")
                    results["startup"].append({"what": name, "ms": ms, "floor": floor, "floor_ms": floor_ms})
        print(f"\nchecks, median of {args.repeat} (warm cache):")
        print(
            f"{'market_data rows':>17} | {'table check':>11} | {'count(*)':>10} | {'fresh':>8} | "
            f"{'fresh, table':>12} | {'not shrinking':>13} | reported as"
        )
        for size in args.sizes:
            with Scratch(admin, str(size)) as scratch:
                row = per_size(scratch, size, args.repeat)
            results["sizes"].append(row)
            print(
                f"{size:>17,} | {row['table_check_ms']:>8.2f} ms | {row['count_ms']:>7.1f} ms | "
                f"{row['fresh_ms']:>5.2f} ms | {row['fresh_table_only_ms']:>9.2f} ms | "
                f"{row['shrink_ms']:>10.2f} ms | {row['shown']}"
            )
        if args.partitions:
            print(
                f"\ndaily-partitioned market_data, {PAIRS:,} pairs, {len(STALE_SYMBOLS)} symbols stopped "
                f"{STALE_DAYS} days ago; median of {args.repeat} (warm cache):"
            )
            print(f"{'partitions':>10} | {'rows':>10} | {'GROUP BY':>10} | {'fresh':>10} | ratio | stale pairs named")
        for days in args.partitions:
            with Scratch(admin, f"p{days}") as scratch:
                row = partitioned(scratch, days, args.repeat)
            results["partitioned"].append(row)
            print(
                f"{days:>10,} | {row['rows']:>10,} | {row['group_by_ms']:>7.0f} ms | {row['fresh_ms']:>7.0f} ms | "
                f"{row['fresh_ms'] / row['group_by_ms']:.2f}x | {row['stale']}"
            )
        return convention.Result(convention.EXIT_OK, results)

    return convention.run(TOOL, work, as_json=False, secrets=lambda: admin.secrets, fail_code=convention.EXIT_PROBLEM)


if __name__ == "__main__":
    sys.exit(main())
