"""tools/seed.py against a real PostgreSQL: exact counts, the data's invariants, the schema's keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from infra_audit.sandbox import seed
from tests.support import CONNECT_S

NOW = datetime(2024, 5, 17, 12, 30, tzinfo=timezone.utc)


def _connect(pg_server, dbname: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(
        host=pg_server.host,
        port=pg_server.port,
        user=pg_server.user,
        password=pg_server.password,
        dbname=dbname,
        connect_timeout=CONNECT_S,
        **kwargs,
    )


@pytest.fixture
def conn(empty_database: psycopg.Connection) -> psycopg.Connection:
    """A connection (not autocommit, as an application's would be) to a fresh empty database."""
    return empty_database


def one(conn: psycopg.Connection, query: str) -> object:
    return conn.execute(query).fetchone()[0]


def table_md5(conn: psycopg.Connection, table: str) -> str:
    """A fingerprint of a table's full contents, to compare two seeds."""
    return one(conn, f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} AS t")


@pytest.mark.parametrize(("market_data_rows", "assets_rows"), [(0, 3), (1, 1), (7, 2), (4_321, 975), (500, 60)])
def test_exact_row_counts(conn, market_data_rows: int, assets_rows: int) -> None:
    seed.seed(conn, market_data_rows=market_data_rows, assets_rows=assets_rows, now=NOW)
    assert one(conn, "SELECT count(*) FROM market_data") == market_data_rows
    assert one(conn, "SELECT count(*) FROM assets") == assets_rows


def test_seed_commits_and_sets_reltuples(conn, pg_server) -> None:
    """Another session sees the rows, and the planner's estimate is the real size (what the audit reads)."""
    seed.seed(conn, market_data_rows=20_000, assets_rows=975)
    with _connect(pg_server, conn.info.dbname) as other:
        counts = other.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relname IN ('market_data', 'assets')"
        ).fetchall()
    assert dict(counts) == {"market_data": 20_000, "assets": 975}


def test_bars_are_plausible(conn) -> None:
    seed.seed(conn, market_data_rows=30_000, assets_rows=975, now=NOW)
    bad = one(
        conn,
        """
        SELECT count(*) FROM market_data
        WHERE high < greatest(open, close) OR low > least(open, close) OR low <= 0 OR volume <= 0
    """,
    )
    assert bad == 0
    assert one(conn, "SELECT max(ts) FROM market_data") == NOW
    assert one(conn, "SELECT count(DISTINCT symbol) FROM market_data") == seed.SYMBOLS_WITH_BARS
    assert one(conn, "SELECT count(DISTINCT timeframe) FROM market_data") == len(seed.TIMEFRAMES)
    assert one(conn, "SELECT count(*) FROM market_data m LEFT JOIN assets a USING (symbol) WHERE a.id IS NULL") == 0


def test_closes_chain_into_next_open(conn) -> None:
    """Each bar opens where the previous one closed, as a continuous price series does."""
    seed.seed(conn, market_data_rows=3_000, assets_rows=5, now=NOW)
    gaps = one(
        conn,
        """
        SELECT count(*) FROM (
            SELECT open, lag(close) OVER (PARTITION BY symbol, timeframe ORDER BY ts) AS prev_close
            FROM market_data) AS bars
        WHERE prev_close IS NOT NULL AND open <> prev_close
    """,
    )
    assert gaps == 0


def test_deterministic_for_the_same_arguments(conn) -> None:
    seed.seed(conn, market_data_rows=2_000, assets_rows=40, now=NOW)
    first = table_md5(conn, "market_data"), table_md5(conn, "assets")
    seed.seed(conn, market_data_rows=2_000, assets_rows=40, now=NOW)
    assert (table_md5(conn, "market_data"), table_md5(conn, "assets")) == first


def test_timestamps_default_to_the_servers_now(conn) -> None:
    seed.seed(conn, market_data_rows=10, assets_rows=1)
    assert one(conn, "SELECT now() - max(ts) FROM market_data") < timedelta(minutes=1)


def test_schema_has_the_keys_and_indexes_a_real_one_would(conn) -> None:
    seed.create_schema(conn)
    constraints = dict(
        conn.execute("SELECT conname, contype FROM pg_constraint WHERE conrelid = 'market_data'::regclass").fetchall()
    )
    assert {name: constraints.get(name) for name in seed.MARKET_DATA_CONSTRAINTS} == {
        "market_data_pkey": "p",
        "market_data_symbol_timeframe_ts_key": "u",
        "market_data_symbol_fkey": "f",
    }
    indexes = {row[0] for row in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'market_data'")}
    assert "CREATE INDEX market_data_symbol_ts_idx ON public.market_data USING btree (symbol, ts)" in indexes
    assert "CREATE INDEX market_data_ts_idx ON public.market_data USING btree (ts)" in indexes
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO assets (symbol, name, asset_class, currency, exchange) VALUES "
            "('X', 'x', 'forex', 'USD', 'E'), ('X', 'x', 'forex', 'USD', 'E')"
        )


def test_schema_creation_is_idempotent_and_keeps_data(conn) -> None:
    seed.seed(conn, market_data_rows=100, assets_rows=3, now=NOW)
    seed.create_schema(conn)
    seed.create_schema(conn)
    assert one(conn, "SELECT count(*) FROM market_data") == 100
    assert one(conn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'market_data'") == 4


def test_reseeding_replaces_rows(conn) -> None:
    seed.seed(conn, market_data_rows=500, assets_rows=10, now=NOW)
    seed.seed(conn, market_data_rows=50, assets_rows=2, now=NOW)
    assert one(conn, "SELECT count(*) FROM market_data") == 50
    assert one(conn, "SELECT min(id) FROM assets") == 1


def test_works_on_an_autocommit_connection(conn) -> None:
    conn.autocommit = True
    seed.seed(conn, market_data_rows=30, assets_rows=2, now=NOW)
    assert one(conn, "SELECT count(*) FROM market_data") == 30


@pytest.mark.parametrize(
    ("market_data_rows", "assets_rows", "message"),
    [(1, 0, "assets_rows >= 1"), (-1, 3, ">= 0"), (0, -2, ">= 0"), (10**20, 3, "above 100,000,000 are refused")],
)
def test_impossible_counts_are_refused_before_touching_the_database(conn, market_data_rows, assets_rows, message):
    with pytest.raises(ValueError, match=message):
        seed.seed(conn, market_data_rows=market_data_rows, assets_rows=assets_rows)
    assert one(conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


def test_zero_assets_and_zero_bars_is_fine(conn) -> None:
    seed.seed(conn, market_data_rows=0, assets_rows=0)
    assert one(conn, "SELECT count(*) FROM assets") == 0
