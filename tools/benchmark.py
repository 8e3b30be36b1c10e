#!/usr/bin/env python3
"""Show that the audit's table check costs the same at 10 thousand rows as at millions.

    python tools/benchmark.py --server postgresql://ADMIN:<password>@127.0.0.1:5432/postgres
    python tools/benchmark.py --sizes 10000,1000000,5000000 --repeat 7

For each size it seeds a scratch database like production (tools/seed.py), then times the
audit's check of ``market_data`` and ``assets`` (``tools.core.probe.table_stats``, the code the
audit runs) against a naive ``SELECT count(*)``, and prints medians. The scratch databases are
dropped afterwards. The admin URL defaults to ``INFRA_SELFTEST_PG_URL`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import `tools` from this checkout

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tools import _cli  # noqa: E402
from tools.core import dburl, seed, settings  # noqa: E402
from tools.core import probe as db_probe  # noqa: E402

EXACT_LIMIT = int(settings.defaults()["infra_exact_count_limit"])


def median_ms(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``action`` in milliseconds, after one warm-up run."""
    action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(admin: dburl.DbUrl, size: int, repeat: int) -> tuple[float, float, str]:
    """Seed a scratch database with ``size`` market_data rows; time the audit's check and a full count."""
    name = f"infra_bench_{size}"
    with psycopg.connect(admin.raw, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    scratch = dburl.parse(admin.raw.rsplit("/", 1)[0] + "/" + name)
    try:
        with psycopg.connect(scratch.raw) as conn:
            seed.seed(conn, market_data_rows=size)
        timeouts = db_probe.Timeouts(connect=3, query=600)
        with db_probe.connect(scratch, timeouts) as conn:
            check = lambda table: db_probe.table_stats(conn, table, EXACT_LIMIT, timeouts)  # noqa: E731
            audit = median_ms(lambda: [check(table) for table in ("market_data", "assets")], repeat)
            naive = median_ms(lambda: conn.execute("SELECT count(*) FROM market_data").fetchone(), repeat)
            shown = check("market_data").shown
    finally:
        with psycopg.connect(admin.raw, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return audit, naive, shown


def main(argv: list[str] | None = None) -> int:
    _cli.tolerate_closed_stdout()
    parser = _cli.Parser(prog="benchmark.py", description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("INFRA_SELFTEST_PG_URL"), help="admin URL of a server")
    parser.add_argument("--sizes", default="10000,100000,1000000,5000000", help="market_data row counts")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median reported)")
    args = parser.parse_args(argv)
    if not args.server:
        parser.error("give --server ADMIN_URL (or set INFRA_SELFTEST_PG_URL)")
    try:
        admin = dburl.parse(args.server)
        sizes = [int(size) for size in args.sizes.split(",")]
    except (dburl.DbUrlError, ValueError) as exc:
        parser.error(str(exc))
    print(f"server {admin.redacted}, exact-count limit {EXACT_LIMIT:,}, median of {args.repeat} runs")
    print(f"{'market_data rows':>18} | {'audit check (both tables)':>26} | {'SELECT count(*)':>16} | reported as")
    for size in sizes:
        try:
            audit, naive, shown = measure(admin, size, args.repeat)
        except (psycopg.Error, db_probe.ProbeError) as exc:
            print(f"size {size:,}: {dburl.scrub(str(exc), admin.secrets)}", file=sys.stderr)
            return 1
        print(f"{size:>18,} | {audit:>23.2f} ms | {naive:>13.2f} ms | {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
