"""tools/dburl.py: what is a valid DB_URL, and the password never shows."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import dburl
from tools.dburl import DbUrlError, parse, redact, scrub


@pytest.mark.parametrize(
    ("url", "user", "hosts", "dbname"),
    [
        ("postgresql://trader:pw@localhost:5432/mt5_crs", "trader", (("localhost", 5432),), "mt5_crs"),
        ("postgres://trader@db.internal/mt5_crs", "trader", (("db.internal", None),), "mt5_crs"),
        ("postgresql://u:p@[::1]:5433/db", "u", (("::1", 5433),), "db"),
        ("postgresql://u@h1:5432,h2:5433/db", "u", (("h1", 5432), ("h2", 5433)), "db"),
        ("postgresql://u@/db?host=/var/run/postgresql", "u", (), "db"),
        ("postgresql://u@h/?dbname=fromparam", "u", (("h", None),), "fromparam"),
        ("  postgresql://u@h/db%20x  ", "u", (("h", None),), "db x"),
    ],
)
def test_parse_accepts_what_libpq_accepts(url, user, hosts, dbname):
    parsed = parse(url)
    assert (parsed.user, parsed.hosts, parsed.dbname) == (user, hosts, dbname)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "the URL is empty"),
        ("localhost:5432/mt5_crs", "not a URL"),
        ("postgresql//trader:pw@localhost/mt5_crs", "not a URL"),
        ("mysql://trader:pw@localhost/mt5_crs", "unsupported scheme 'mysql'"),
        ("postgresql://trader:pw@localhost:54x2/mt5_crs", "port '54x2'"),
        ("postgresql://trader:pw@localhost:70000/mt5_crs", "port '70000'"),
        ("postgresql://trader:pw@localhost:5432/", "no database name"),
        ("postgresql://trader:pw@localhost:5432", "no database name"),
        ("postgresql://trader:pw@:5432/mt5_crs", "no host"),
        ("postgresql://trader:pw@localhost/db?sslmod=require", "did you mean 'sslmode'"),
        ("postgresql://trader:pw@localhost/db?sslmode", "has no value"),
        ("postgresql://trader:pw@[::1/db", "IPv6"),
    ],
)
def test_parse_rejects_with_a_reason_and_without_the_password(url, complaint):
    with pytest.raises(DbUrlError) as raised:
        parse(url)
    assert complaint in str(raised.value)
    assert ":pw@" not in str(raised.value)


def test_password_with_reserved_characters_round_trips_through_build():
    url = dburl.build("localhost", "5432", "trader", "p@ss:w/rd?#%", "mt5_crs")
    parsed = parse(url)
    assert parsed.password == "p@ss:w/rd?#%"
    assert parsed.redacted == "postgresql://trader:***@localhost:5432/mt5_crs"


def test_unescaped_at_sign_in_password_is_still_hidden():
    parsed = parse("postgresql://trader:p@ss@localhost/mt5_crs")
    assert (parsed.password, parsed.hosts) == ("p@ss", (("localhost", None),))
    assert "p@ss" not in parsed.redacted and "p@ss" not in repr(parsed)


def test_redact_masks_urls_inside_libpq_messages_and_conninfo():
    libpq = 'missing "=" after "postgresql//trader:hunter2@db/x" in connection info string'
    assert "hunter2" not in redact(libpq)
    assert redact("host=db password=hunter2 user=x") == "host=db password=*** user=x"
    assert redact("postgresql://trader@db/x") == "postgresql://trader@db/x"


def test_secrets_cover_decoded_and_encoded_spellings():
    parsed = parse("postgresql://u:a%2Fb@h/db?password=other")
    assert set(parsed.secrets) >= {"a/b", "a%2Fb", "other"}
    assert scrub("a/b and a%2Fb and other", parsed.secrets) == "*** and *** and ***"


def test_guess_secrets_finds_the_password_of_a_url_that_does_not_parse():
    assert dburl.guess_secrets("postgresql//trader:hunter2@db/x") == ("hunter2",)


# A marker character no other part of the URL or any message contains, so "not in" is meaningful.
passwords = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=24).map(lambda t: "§" + t)


@given(password=passwords)
def test_no_password_survives_redaction_or_error_messages(password):
    good = f"postgresql://trader:{quote(password, safe='')}@localhost:5432/mt5_crs"
    assert parse(good).password == password
    assert "§" not in parse(good).redacted and "%C2%A7" not in parse(good).redacted
    for bad in (good.replace("://", "//", 1), good.replace(":5432", ":5x32"), good.replace("/mt5_crs", "/")):
        with pytest.raises(DbUrlError) as raised:
            parse(bad)
        assert "§" not in str(raised.value) and "%C2%A7" not in str(raised.value)
        assert "§" not in redact(bad) and "%C2%A7" not in redact(bad)
