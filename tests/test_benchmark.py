"""tools/benchmark.py runs end to end (its numbers live in docs/benchmark.md, not in assertions)."""

from __future__ import annotations

import subprocess
import sys

from infra_audit.core import dburl
from tests.fingerprint import server_fingerprint
from tests.support import REPO, clean_env


def run_benchmark(*args: str, admin_url: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python3 tools/benchmark.py ARGS` with the admin URL in INFRA_ADMIN_URL, as its docs say to run it."""
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(INFRA_ADMIN_URL=admin_url),
    )


def test_benchmark_seeds_measures_and_drops_only_its_own(admin_url):
    before = server_fingerprint(admin_url)
    done = run_benchmark("--sizes", "40,90", "--repeat", "1", "--startup-runs", "1", admin_url=admin_url)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [(row[0].strip(), row[-1].strip()) for row in rows] == [("40", "40 rows"), ("90", "90 rows")]
    assert all(cell.strip().endswith("ms") for row in rows for cell in row[1:-1])
    ratios = [line for line in done.stdout.splitlines() if "ratio" in line]
    assert [line.split()[0] for line in ratios] == ["audit", "health"], done.stdout
    assert dburl.parse(admin_url).password not in done.stdout + done.stderr
    assert server_fingerprint(admin_url) == before, "the scratch databases are dropped, nothing else is touched"


def test_the_partitioned_table_is_measured_beside_the_plain_group_by(admin_url):
    """ "data is fresh" must name exactly the stopped symbols of the daily-partitioned market_data, or the
    benchmark fails; its scratch database is dropped."""
    before = server_fingerprint(admin_url)
    done = run_benchmark("--sizes", "30", "--repeat", "1", "--skip-startup", "--partitions", "8", admin_url=admin_url)
    assert done.returncode == 0, done.stderr
    (row,) = [line.split("|") for line in done.stdout.splitlines() if line.strip().startswith("8 |")]
    assert [cell.strip() for cell in row][:2] == ["8", "47,970"] and row[-1].strip() == "6", done.stdout
    assert "GROUP BY" in done.stdout and server_fingerprint(admin_url) == before


def test_a_slash_in_the_admin_urls_query_never_reaches_its_database(admin_url, tmp_path):
    """The scratch database's URL is built from parts: `?application_name=ops/bench` cannot truncate it."""
    before = server_fingerprint(admin_url, contents_of=("postgres",))
    done = run_benchmark(
        "--sizes", "30", "--repeat", "1", "--skip-startup", admin_url=admin_url + "?application_name=ops/bench"
    )
    assert done.returncode == 0, done.stderr
    assert server_fingerprint(admin_url, contents_of=("postgres",)) == before


def test_bad_arguments_are_one_line(admin_url):
    for args in (["--sizes=-5"], ["--sizes=0"], ["--repeat", "0"], ["--sizes", "x"], ["--partitions", "3"]):
        done = run_benchmark(*args, admin_url=admin_url, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("benchmark.py: error: ") and "Traceback" not in done.stderr
