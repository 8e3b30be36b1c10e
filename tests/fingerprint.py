"""A server's fingerprint for "never touch what you did not make" tests.

Every database (owner, comment) and role (attributes, password hash) that no run of our tools
marked as its own (self-tests, sandboxes, benchmarks running beside this one come and go), plus a
digest of every table's rows in databases the caller names. Taken before and after an action, equal fingerprints prove the action left the user's
world as it was.
"""

from __future__ import annotations

import psycopg

from tools.core import ownership

SELF_TESTS = "self-tests"


def server_fingerprint(
    admin_url: str, contents_of: tuple[str, ...] = (), writes: bool = False
) -> dict[str, object]:
    """What the server holds that no run of ours made; ``contents_of`` databases also by row content;
    with ``writes``, every unmarked database's tables by file and write counters (cheap on any size)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
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
    if writes:
        for dbname, _, comment in print_["databases"]:
            if dbname != "template0":
                print_[f"writes to {dbname}"] = _writes(admin_url, dbname)
    return print_


def _marked(comment: str | None) -> bool:
    return ownership.Marker.from_json(comment) is not None


def _contents(admin_url: str, dbname: str) -> list[tuple[str, str]]:
    """(table, md5 of all its rows) for every ordinary table of one database."""
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        return [
            (table, conn.execute(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t")
             .fetchone()[0])
            for (table,) in tables
        ]  # fmt: skip


def _writes(admin_url: str, dbname: str) -> list[tuple]:
    """(table, file, inserted, updated, deleted) for every ordinary table: a TRUNCATE changes the file,
    any other write a counter, and reading the tables changes neither."""
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT format('%I.%I', s.schemaname, s.relname), c.relfilenode, s.n_tup_ins, s.n_tup_upd,"
                " s.n_tup_del FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1"
            ).fetchall()
    except psycopg.OperationalError:  # dropped meanwhile: the list of databases already tells whether it should be
        return [("(gone)",)]
