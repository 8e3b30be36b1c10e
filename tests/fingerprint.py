"""A server's fingerprint for "never touch what you did not make" tests.

Every database (owner, comment) and role (attributes, password hash) that no run of our tools
marked as its own (self-tests, sandboxes, benchmarks running beside this one come and go), plus a
digest of every table's rows in databases the caller names. Taken before and after an action, equal fingerprints prove the action left the user's
world as it was.
"""

from __future__ import annotations

import psycopg

from infra_audit.sandbox import ownership
from tests.support import CONNECT_S

SELF_TESTS = "self-tests"


def server_fingerprint(admin_url: str, contents_of: tuple[str, ...] = (), tables: bool = False) -> dict[str, object]:
    """What the server holds that no run of ours made; ``contents_of`` databases also by row content;
    with ``tables``, every unmarked database's tables by name and data file (cheap on any size: a
    DROP, TRUNCATE or rewrite shows, while the user's own live inserts elsewhere do not)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_S) as conn:
        databases = conn.execute(
            "SELECT datname, pg_get_userbyid(datdba), shobj_description(oid, 'pg_database') FROM pg_database"
        ).fetchall()
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, md5(coalesce(rolpassword, '')),"
            " shobj_description(oid, 'pg_authid') FROM pg_authid WHERE rolname !~ '^pg_'"
        ).fetchall()
    print_ = {
        "databases": sorted(row for row in databases if not _marked(row[2])),
        "roles": sorted(row for row in roles if not _marked(row[6])),
    }
    for dbname in contents_of:
        print_[f"rows of {dbname}"] = _contents(admin_url, dbname)
    if tables:
        for dbname, _, _comment in print_["databases"]:
            if dbname != "template0":
                print_[f"tables of {dbname}"] = _tables(admin_url, dbname)
    return print_


def _marked(comment: str | None) -> bool:
    return ownership.Marker.from_json(comment) is not None


def _contents(admin_url: str, dbname: str) -> list[tuple[str, str]]:
    """(table, md5 of all its rows) for every ordinary table of one database."""
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_S) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        return [
            (
                table,
                conn.execute(
                    f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
                ).fetchone()[0],
            )
            for (table,) in tables
        ]


def _tables(admin_url: str, dbname: str) -> list[tuple]:
    """(table, data file) for every ordinary table of one database."""
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_S) as conn:
            return conn.execute(
                "SELECT format('%I.%I', n.nspname, c.relname), c.relfilenode FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            ).fetchall()
    except psycopg.OperationalError:  # dropped meanwhile: the list of databases already tells whether it should be
        return [("(gone)",)]
