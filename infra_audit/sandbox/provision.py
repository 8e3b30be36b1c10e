"""The sandbox's login role and database on a server, made and removed by proof of ownership.

Each copy of the project has an identity of its own, a random ``copy`` id kept in its state file:
on a shared server its names come from it (never from its folder's path alone: two containers that
both keep the project at ``/app`` must not share a database), and its marker
(``infra_audit.sandbox.ownership``) names the host and that copy. A comment can be written by any
database's owner, so on a shared server the marker alone proves nothing: a role or database is this
copy's only when it is the very object this copy created (its oid, recorded in the state right after
``CREATE``), still carries this copy's marker, and (a database) is owned by this copy's role. Anything
else of the same name is never altered, re-passworded, seeded or dropped. Passwords go to the server
as SCRAM verifiers only (hashed here by libpq), so no server log holds one. Every statement has a client-side deadline.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from infra_audit.core.errors import SandboxError
from infra_audit.core.probe import Deadlined, with_deadline
from infra_audit.sandbox import ownership, seed

MAKER = "tools/sandbox.py"
STATEMENT_DEADLINE_S = 30
SEED_DEADLINE_S = 20 * 60  # the seed's own statement_timeout is 10 min; this is the stalled-server backstop
_OID = {
    "role": "SELECT oid FROM pg_roles WHERE rolname = %s",
    "database": "SELECT oid FROM pg_database WHERE datname = %s",
}


@dataclass(frozen=True)
class Names:
    """The sandbox's role and database, with the oids they got when this copy created them (None: not yet)."""

    role: str
    database: str
    role_oid: int | None = None
    database_oid: int | None = None

    def oid(self, kind: str) -> int | None:
        return self.role_oid if kind == "role" else self.database_oid


def new_copy_id() -> str:
    """A copy's identity: random, so no other copy (another container, the same path) can have it."""
    return secrets.token_hex(8)


def names_for(copy: str, shared_server: bool) -> Names:
    """``trader``/``mt5_crs`` on our own private server; names unique to the copy on a shared one."""
    if not shared_server:
        return Names("trader", "mt5_crs")
    return Names(f"trader_sandbox_{copy}", f"mt5_crs_sandbox_{copy}")


def admin_session(url: str, what: str) -> Deadlined:
    """An autocommit admin session whose connect and every statement have deadlines."""
    return Deadlined(ownership.connect(url), STATEMENT_DEADLINE_S, what)


def ensure(
    admin: Deadlined,
    names: Names,
    marker: ownership.Marker,
    password: str,
    *,
    own_server: bool,
    record: Callable[[Names], None],
) -> list[str]:
    """Create (or take up again) this copy's role and database; say what was done, line by line.

    ``record`` keeps each object's oid in the copy's state as soon as it exists: the role in the same
    transaction that creates and marks it, the database (which cannot be made in a transaction) right
    after, so a `stop` after an interrupted `start` can prove what it made. On ``own_server`` (the
    sandbox's private server, whose superuser only this copy knows) nobody else can have made a
    look-alike, so a marker there is proof enough."""
    said = []
    role_oid = _claim(admin, "role", names, marker, own_server)
    with admin.conn.transaction():  # the role, its marker and the record of its oid: all or nothing
        login = sql.SQL(" LOGIN NOSUPERUSER ") + password_clause(admin.conn, names.role, password)
        if role_oid is None:
            admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(names.role)) + login)
            role_oid = admin.execute(_OID["role"], (names.role,)).fetchone()[0]
            said.append(f"created login role {names.role} (not a superuser)")
        else:
            admin.execute(sql.SQL("ALTER ROLE {}").format(sql.Identifier(names.role)) + login)
            said.append(f"set this copy's password (the one in .env) on its login role {names.role}")
        admin.execute(marker.comment_sql("role", names.role))
        names = replace(names, role_oid=role_oid)
        record(names)
    database_oid = _claim(admin, "database", names, marker, own_server)
    if database_oid is None:
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(names.database), sql.Identifier(names.role))
        )
        database_oid = admin.execute(_OID["database"], (names.database,)).fetchone()[0]
        said.append(f"created database {names.database}")
    else:
        said.append(f"database {names.database} exists (this copy's)")
    record(replace(names, database_oid=database_oid))
    admin.execute(marker.comment_sql("database", names.database))
    return said


def password_clause(conn: psycopg.Connection, role: str, password: str) -> sql.Composed:
    """``PASSWORD '<SCRAM-SHA-256 verifier>'`` for CREATE/ALTER ROLE, hashed by libpq in this process: the
    statement, and so a server log with ``log_statement=ddl``, never holds the plaintext."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return sql.SQL("PASSWORD {}").format(sql.Literal(verifier.decode("ascii")))


def _claim(admin: Deadlined, kind: str, names: Names, marker: ownership.Marker, own_server: bool) -> int | None:
    """The oid of this copy's existing role or database, None when there is none; one that exists and
    is not proven this copy's stops everything."""
    name = names.role if kind == "role" else names.database
    row = admin.execute(_OID[kind], (name,)).fetchone()
    if row is None:
        return None
    on_own_server = own_server and marker.owns(ownership.read_marker(admin, kind, name))
    if not (on_own_server or _proven(admin, kind, names, marker)):
        raise SandboxError(
            f"{kind} '{name}' already exists on that server and is not proven this copy's sandbox: "
            "left untouched; use another server, or remove it yourself if it is a leftover"
        )
    return row[0]


def _proven(admin: Deadlined, kind: str, names: Names, marker: ownership.Marker) -> ownership.Marker | None:
    """The marker on the object when it is the one this copy created (the oid it recorded), carries this
    copy's marker and, a database, belongs to this copy's role; else None."""
    oid = names.oid(kind)
    name = names.role if kind == "role" else names.database
    if oid is None:
        return None
    if kind == "database":
        owner = admin.execute("SELECT datdba FROM pg_database WHERE oid = %s", (oid,)).fetchone()
        if owner is None or names.role_oid is None or owner[0] != names.role_oid:
            return None
    found = ownership.read_marker(admin, kind, name, oid)
    return found if marker.owns(found) else None


def remove(admin: Deadlined, names: Names, marker: ownership.Marker) -> list[str]:
    """Drop this copy's database and role, each only if it is proven this copy's (``_proven``)."""
    said = []
    for kind, name in (("database", names.database), ("role", names.role)):  # a role cannot go while it owns one
        found = _proven(admin, kind, names, marker)
        if found is not None and ownership.drop_if_ours(admin, kind, name, found, names.oid(kind)):
            said.append(f"dropped {kind} {name}")
        elif admin.execute(_OID[kind], (name,)).fetchone() is not None:
            said.append(f"left {kind} {name} alone: nothing proves it is the one this copy created")
    return said


def seed_database(url: str, market_data_rows: int, assets_rows: int) -> bool:
    """Seed as the owning role (so it owns the tables); False when the counts already match."""
    with ownership.connect(url) as conn:
        session = Deadlined(conn, STATEMENT_DEADLINE_S, "the sandbox database")
        if row_counts(session) == (market_data_rows, assets_rows):
            return False
        with_deadline(
            lambda: seed.seed(conn, market_data_rows=market_data_rows, assets_rows=assets_rows), SEED_DEADLINE_S
        )
    return True


def row_counts(session: Deadlined) -> tuple[int, int] | None:
    """(market_data, assets) exact counts, or None when the tables are not there yet."""
    if session.execute("SELECT to_regclass('market_data') IS NULL OR to_regclass('assets') IS NULL").fetchone()[0]:
        return None
    return session.execute("SELECT (SELECT count(*) FROM market_data), (SELECT count(*) FROM assets)").fetchone()
