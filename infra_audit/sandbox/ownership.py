"""Who made a database, role or folder: proven by a marker we wrote on it, never guessed from its name.

A name like ``infra_selftest_2024_q3_reports`` may be someone's real database, and a fixed comment
such as "made by tools/sandbox.py" is per server, not per checkout: two checkouts sharing a server
would drop each other's objects. A marker is a JSON text stored as the object's comment
(``COMMENT ON DATABASE/ROLE``) or in a state file, naming the maker, the checkout, the host, the
process, a random run id and, for the sandbox, the copy: a random identity kept in the copy's own
state, which no other copy has (two containers that both keep the project at ``/app`` share the
checkout hash, never the copy). A comment is readable by everyone and writable by any database's
owner, so a marker alone is never proof on a server others use: ``read_marker`` and
``drop_if_ours`` can pin the object's oid, which its maker recorded and nobody can give a new object.

Every statement has a deadline: ``connect`` sets ``connect_timeout`` (and a client-side deadline
on the whole attempt) and ``statement_timeout``/``lock_timeout`` on the session.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from infra_audit.core.files import write_atomically
from infra_audit.core.probe import with_deadline

FORMAT = "infra-ownership/1"  # tells our JSON from any other comment
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
LOCK_TIMEOUT_MS = 5_000
# kind -> (catalog for shobj_description, catalog view, name column, keyword in SQL)
KINDS = {
    "database": ("pg_database", "pg_database", "datname", "DATABASE"),
    "role": ("pg_authid", "pg_roles", "rolname", "ROLE"),
}


def checkout_id(root: Path | str) -> str:
    """A project root as a short hash: names the checkout without putting a home path on a shared server."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Marker:
    """Proof of who made an object: equal markers mean the same run of the same maker."""

    maker: str  # "tools/sandbox.py", "self-tests", "benchmark"
    checkout: str  # checkout_id() of the project root
    host: str
    pid: int
    run_id: str
    created: str  # UTC, ISO 8601
    copy: str = ""  # the sandbox copy's random identity (its state file keeps it); "" for other makers

    @classmethod
    def new(cls, maker: str, checkout: Path | str, copy: str = "") -> Marker:
        return cls(
            maker,
            checkout_id(checkout),
            socket.gethostname(),
            os.getpid(),
            secrets.token_hex(8),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            copy,
        )

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Marker | None:
        """The marker in text, or None for anything else (no comment, someone's prose, other JSON)."""
        try:
            data = json.loads(text) if text else None
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            return None
        try:
            marker = cls(**data)
        except TypeError:
            return None
        texts = (marker.maker, marker.checkout, marker.host, marker.run_id, marker.created, marker.copy)
        return marker if all(isinstance(text, str) for text in texts) and type(marker.pid) is int else None

    def owns(self, other: Marker | None, *, same_run: bool = False) -> bool:
        """Whether other was written by the same maker in the same checkout and copy (and run, if asked)."""
        if other is None or (other.maker, other.checkout, other.copy) != (self.maker, self.checkout, self.copy):
            return False
        return not same_run or other.run_id == self.run_id

    def comment_sql(self, kind: str, name: str) -> sql.Composed:
        """``COMMENT ON DATABASE|ROLE name IS '<marker json>'``."""
        return sql.SQL("COMMENT ON {} {} IS {}").format(
            sql.SQL(KINDS[kind][3]), sql.Identifier(name), sql.Literal(self.to_json())
        )

    def write_file(self, path: Path) -> None:
        """The marker as a folder's state file (0600, written atomically)."""
        write_atomically(path, (self.to_json() + "\n").encode(), 0o600, None)


def read_marker_file(path: Path) -> Marker | None:
    """The marker in a folder's state file, or None (no file, or not our marker)."""
    try:
        return Marker.from_json(path.read_text(errors="replace"))
    except (FileNotFoundError, IsADirectoryError):
        return None


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """An autocommit admin connection whose every step has a deadline."""
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
    return with_deadline(
        lambda: psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, options=options, autocommit=True, **kwargs),
        CONNECT_TIMEOUT_S + 1,
        discard=psycopg.Connection.close,
    )


def read_marker(conn: psycopg.Connection, kind: str, name: str, oid: int | None = None) -> Marker | None:
    """The marker on a database or role (only the one with ``oid``, when given), or None when it is
    missing or carries no marker of ours."""
    catalog, view, column, _ = KINDS[kind]
    query = sql.SQL("SELECT shobj_description(oid, {}) FROM {} WHERE {} = %s AND (%s::oid IS NULL OR oid = %s)").format(
        sql.Literal(catalog), sql.Identifier(view), sql.Identifier(column)
    )
    row = conn.execute(query, (name, oid, oid)).fetchone()
    return Marker.from_json(row[0]) if row else None


def process_exists(pid: int) -> bool:
    """Whether pid is still running; an exited one that nobody has reaped yet (a zombie) is not.

    When it cannot be told (another user's process, a pid no process can have, no /proc), it exists:
    what is not proven dead is left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def drop_if_ours(conn: psycopg.Connection, kind: str, name: str, marker: Marker, oid: int | None = None) -> bool:
    """Drop the object only if it still carries exactly ``marker`` (and is still the object ``oid``, when
    given), read again right before; True if dropped.

    DROP DATABASE cannot run in a transaction, so the check and the drop are two statements: the
    window is one round trip, and a marker is only ever rewritten by its own run.
    """
    if read_marker(conn, kind, name, oid) != marker:
        return False
    if kind == "database":  # a template cannot be dropped
        conn.execute(sql.SQL("ALTER DATABASE {} WITH is_template false").format(sql.Identifier(name)))
        try:  # a plain DROP waits for autovacuum's workers there to leave, which FORCE may not end for a non-superuser
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.ObjectInUse:  # a dead run's lingering sessions: FORCE ends them
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    else:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    return True
