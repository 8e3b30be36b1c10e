"""SCRAM-SHA-256 verifiers, so that a role's password reaches the server already hashed.

``CREATE ROLE ... PASSWORD 'plaintext'`` puts the plaintext in the server log when
``log_statement`` is ``ddl`` or ``all`` (and in pg_stat_statements, and in any statement shown in
an error). Given a verifier instead, PostgreSQL stores it as is and the plaintext never leaves
this process. The format is PostgreSQL's: ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
(RFC 5802 and RFC 7677).

PostgreSQL runs the password through SASLprep (RFC 4013) before hashing; for an ASCII password
that is the identity. We only generate ASCII passwords (``secrets.token_urlsafe``), so a
non-ASCII one is refused rather than hashed in a way the server might not reproduce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import NamedTuple

from psycopg import sql

DEFAULT_ITERATIONS = 4096  # PostgreSQL's scram_iterations default
SALT_BYTES = 16  # as PostgreSQL generates


class Verifier(NamedTuple):
    """The parts of a stored verifier."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_sha256_verifier(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """The verifier PostgreSQL would store for password (a fresh random salt unless one is given)."""
    if not password or not password.isascii() or "\0" in password:
        raise ValueError("only a non-empty ASCII password without NUL can be hashed here (no SASLprep)")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def parse_verifier(text: str) -> Verifier:
    """The parts of a ``SCRAM-SHA-256$...`` text (as in pg_authid.rolpassword); ValueError if not one."""
    try:
        scheme, params, keys = text.split("$")
        iterations, salt = params.split(":")
        stored_key, server_key = keys.split(":")
        if scheme != "SCRAM-SHA-256":
            raise ValueError
        parts = Verifier(int(iterations), *(base64.b64decode(part, validate=True)
                                            for part in (salt, stored_key, server_key)))  # fmt: skip
    except ValueError:
        raise ValueError("not a SCRAM-SHA-256 verifier") from None
    if parts.iterations < 1 or len(parts.stored_key) != 32 or len(parts.server_key) != 32:
        raise ValueError("not a SCRAM-SHA-256 verifier")
    return parts


def verifies(verifier: str, password: str) -> bool:
    """Whether password matches verifier, recomputed with the verifier's own salt and iterations."""
    parts = parse_verifier(verifier)
    again = parse_verifier(scram_sha256_verifier(password, iterations=parts.iterations, salt=parts.salt))
    return hmac.compare_digest(parts.stored_key + parts.server_key, again.stored_key + again.server_key)


def password_clause(password: str) -> sql.Composed:
    """``PASSWORD '<verifier>'`` for CREATE/ALTER ROLE: the statement never holds the plaintext."""
    return sql.SQL("PASSWORD {}").format(sql.Literal(scram_sha256_verifier(password)))
