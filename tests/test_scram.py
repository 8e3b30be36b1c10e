"""tools/core/scram.py: verifiers PostgreSQL accepts, so a role's plaintext password never reaches the server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.support import REPO
from infra_audit.core import dburl
from infra_audit.sandbox import ownership
from infra_audit.sandbox.scram import (
    parse_verifier,
    password_clause,
    scram_sha256_verifier,
    verifies,
)

PREFIX = f"infra_selftest_{os.getpid()}_scram_{secrets.token_hex(4)}"


def test_rfc_7677_vector() -> None:
    """RFC 7677's exchange for "pencil": our keys give its client proof and server signature."""
    keys = parse_verifier(scram_sha256_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    server_signature = hmac.new(keys.server_key, auth, hashlib.sha256).digest()
    assert base64.b64encode(server_signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.new(keys.stored_key, auth, hashlib.sha256).digest()))
    assert hashlib.sha256(client_key).digest() == keys.stored_key


def test_the_format_is_postgresqls() -> None:
    text = scram_sha256_verifier("pw", iterations=4096, salt=b"0123456789abcdef")
    assert text.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert parse_verifier(text).iterations == 4096 and verifies(text, "pw") and not verifies(text, "pW")
    assert scram_sha256_verifier("pw") != scram_sha256_verifier("pw")  # a fresh salt each time


@pytest.mark.parametrize("password", ["pässword", "", "nul\0byte", "пароль"])
def test_what_would_need_saslprep_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        scram_sha256_verifier(password)


KEY = "A" * 43 + "="  # 32 bytes in base64


JUNK = ["", "md5abc", "SCRAM-SHA-256$x:AA==$AA==:AA==", f"SCRAM-SHA-256$4096:AA==$AA==:{KEY}",
        f"SCRAM-SHA-256$4096:AA==${KEY}:AA==", f"SCRAM-SHA-256$0:AA==${KEY}:{KEY}",
        f"SCRAM-SHA-1$4096:AA==${KEY}:{KEY}", f"SCRAM-SHA-256$4096:AA*==${KEY}:{KEY}"]  # fmt: skip


@pytest.mark.parametrize("text", JUNK)
def test_junk_is_not_a_verifier(text: str) -> None:
    with pytest.raises(ValueError, match="not a SCRAM-SHA-256 verifier"):
        parse_verifier(text)


@pytest.fixture
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with ownership.connect(admin_url) as conn:
        yield conn


@pytest.fixture
def role(admin: psycopg.Connection) -> Iterator[str]:
    """A run-unique login role, marked as this test's and dropped only if the marker is still ours."""
    name = f"{PREFIX}_{secrets.token_hex(3)}"
    marker = ownership.Marker.new("self-tests", REPO)
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    admin.execute(marker.comment_sql("role", name))
    yield name
    assert ownership.drop_if_ours(admin, "role", name, marker)


def login(admin_url: str, user: str, password: str) -> None:
    """Log in over TCP, where the server asks for scram-sha-256."""
    host, port = dburl.parse(admin_url).hosts[0]
    psycopg.connect(host=host, port=port or 5432, user=user, password=password, dbname="postgres",
                    connect_timeout=5, sslmode="disable").close()  # fmt: skip


def rolpassword(admin: psycopg.Connection, name: str) -> str:
    return admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()[0]


def test_the_server_stores_our_verifier_and_accepts_the_password(admin, admin_url: str, role: str) -> None:
    password = secrets.token_urlsafe(24)
    statement = sql.SQL("ALTER ROLE {} LOGIN ").format(sql.Identifier(role)) + password_clause(password)
    text = statement.as_string(admin)
    assert password not in text and "SCRAM-SHA-256$4096:" in text  # what log_statement=ddl would log
    admin.execute(statement)
    assert verifies(rolpassword(admin, role), password)  # stored as sent: no plaintext ever arrived
    login(admin_url, role, password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(admin_url, role, password + "x")


def test_our_keys_match_a_verifier_the_server_made(admin, role: str) -> None:
    """Recompute StoredKey and ServerKey from the server's own salt and iterations."""
    password = "pw-" + secrets.token_urlsafe(12)  # a throwaway: this test alone sends a plaintext
    admin.execute("SET password_encryption = 'scram-sha-256'")
    admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    stored = rolpassword(admin, role)
    parts = parse_verifier(stored)
    assert scram_sha256_verifier(password, iterations=parts.iterations, salt=parts.salt) == stored
