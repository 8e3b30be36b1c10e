"""tools/benchmark.py runs end to end (its numbers live in docs/benchmark.md, not in assertions)."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from tests.support import REPO, clean_env
from tools.core import dburl


def test_benchmark_seeds_measures_and_cleans_up(admin_url):
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), "--server", admin_url, "--sizes", "40,90", "--repeat", "1"],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [(row[0].strip(), row[3].strip()) for row in rows] == [("40", "40 rows"), ("90", "90 rows")]
    assert all(row[1].strip().endswith("ms") and row[2].strip().endswith("ms") for row in rows)
    password = dburl.parse(admin_url).password
    assert password not in done.stdout + done.stderr
    with psycopg.connect(admin_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'infra_bench_%'").fetchone()[0]
    assert left == 0, "the scratch databases are dropped"
