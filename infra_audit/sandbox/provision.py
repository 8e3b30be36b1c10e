"""The sandbox's login role and database on a server, made and removed by proof of ownership.

Each object carries a marker (``infra_audit.sandbox.ownership``) naming the maker and the checkout. An
object of the same name without this checkout's marker (the user's own ``trader``, another
checkout's sandbox) is never altered, re-owned, truncated or dropped. On a shared server the
names are unique to the checkout, so the user's ``trader``/``mt5_crs`` and other checkouts'
sandboxes never collide with ours. Passwords go to the server as SCRAM verifiers only (hashed here
by libpq), so no server log holds one. Every statement has a client-side deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from infra_audit.core.errors import SandboxError
from infra_audit.core.probe import Deadlined, with_deadline
from infra_audit.sandbox import ownership, seed

MAKER = "tools/sandbox.py"
STATEMENT_DEADLINE_S = 30
SEED_DEADLINE_S = 20 * 60  # the seed's own statement_timeout is 10 min; this is the stalled-server backstop
_EXISTS = {
    "role": "SELECT 1 FROM pg_roles WHERE rolname = %s",
    "database": "SELECT 1 FROM pg_database WHERE datname = %s",
}


@dataclass(frozen=True)
class Names:
    """The sandbox's role and database names."""

    role: str
    database: str


def names_for(root: Path, shared_server: bool) -> Names:
    """``trader``/``mt5_crs`` on our own private server; names unique to the checkout on a shared one."""
    if not shared_server:
        return Names("trader", "mt5_crs")
    tag = ownership.checkout_id(root)[:10]
    return Names(f"trader_sandbox_{tag}", f"mt5_crs_sandbox_{tag}")


def admin_session(url: str, what: str) -> Deadlined:
    """An autocommit admin session whose connect and every statement have deadlines."""
    return Deadlined(ownership.connect(url), STATEMENT_DEADLINE_S, what)


def ensure(admin: Deadlined, names: Names, root: Path, password: str) -> list[str]:
    """Create (or take up again) this checkout's role and database; say what was done, line by line."""
    marker = ownership.Marker.new(MAKER, root)
    said = []
    if _claim(admin, "role", names.role, marker):
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER ").format(sql.Identifier(names.role))
                      + password_clause(admin.conn, names.role, password))  # fmt: skip
        said.append(f"set this checkout's password (the one in .env) on its login role {names.role}")
    else:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER ").format(sql.Identifier(names.role))
                      + password_clause(admin.conn, names.role, password))  # fmt: skip
        said.append(f"created login role {names.role} (not a superuser)")
    admin.execute(marker.comment_sql("role", names.role))
    if _claim(admin, "database", names.database, marker):
        said.append(f"database {names.database} exists (this checkout's)")
    else:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(names.database), sql.Identifier(names.role)))  # fmt: skip
        said.append(f"created database {names.database}")
    admin.execute(marker.comment_sql("database", names.database))
    return said


def password_clause(conn: psycopg.Connection, role: str, password: str) -> sql.Composed:
    """``PASSWORD '<SCRAM-SHA-256 verifier>'`` for CREATE/ALTER ROLE, hashed by libpq in this process: the
    statement, and so a server log with ``log_statement=ddl``, never holds the plaintext."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return sql.SQL("PASSWORD {}").format(sql.Literal(verifier.decode("ascii")))


def _claim(admin: Deadlined, kind: str, name: str, marker: ownership.Marker) -> bool:
    """Whether ``name`` exists as this checkout's; one that exists without our marker stops everything."""
    if admin.execute(_EXISTS[kind], (name,)).fetchone() is None:
        return False
    if not marker.owns(ownership.read_marker(admin, kind, name)):
        raise SandboxError(f"{kind} '{name}' already exists on that server and is not this checkout's sandbox: "
                           "left untouched; use another server, or remove it yourself if it is a leftover")  # fmt: skip
    return True


def remove(admin: Deadlined, names: Names, root: Path) -> list[str]:
    """Drop this checkout's database and role, each only if its marker proves it is ours."""
    expected = ownership.Marker.new(MAKER, root)
    said = []
    for kind, name in (("database", names.database), ("role", names.role)):  # a role cannot go while it owns one
        found = ownership.read_marker(admin, kind, name)
        if found is not None and expected.owns(found) and ownership.drop_if_ours(admin, kind, name, found):
            said.append(f"dropped {kind} {name}")
        elif admin.execute(_EXISTS[kind], (name,)).fetchone() is not None:
            said.append(f"left {kind} {name} alone: it is not this checkout's sandbox")
    return said


def seed_database(url: str, market_data_rows: int, assets_rows: int) -> bool:
    """Seed as the owning role (so it owns the tables); False when the counts already match."""
    with ownership.connect(url) as conn:
        session = Deadlined(conn, STATEMENT_DEADLINE_S, "the sandbox database")
        if row_counts(session) == (market_data_rows, assets_rows):
            return False
        with_deadline(lambda: seed.seed(conn, market_data_rows=market_data_rows, assets_rows=assets_rows),
                      SEED_DEADLINE_S)  # fmt: skip
    return True


def row_counts(session: Deadlined) -> tuple[int, int] | None:
    """(market_data, assets) exact counts, or None when the tables are not there yet."""
    if session.execute("SELECT to_regclass('market_data') IS NULL OR to_regclass('assets') IS NULL").fetchone()[0]:
        return None
    return session.execute("SELECT (SELECT count(*) FROM market_data), (SELECT count(*) FROM assets)").fetchone()
