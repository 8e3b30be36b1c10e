"""tools/dburl.py: what is a valid DB_URL, and the password never shows."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from tools.core import dburl
from tools.core.dburl import parse, redact, scrub
from tools.core.errors import DbUrlError


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
        ("postgresql://trader:pw@localhost:54x2/mt5_crs", "a port is not a number from 1 to 65535"),
        ("postgresql://trader:pw@localhost:70000/mt5_crs", "a port is not a number from 1 to 65535"),
        ("postgresql://trader:pwsecret-host:5432/mt5_crs", "or the '@' between USER:PASSWORD and the host is missing"),
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


@pytest.mark.parametrize("url", ["postgresql://trader:p@ss@localhost/mt5_crs", "postgresql://trader:pa/ss@localhost/mt5_crs"])
def test_raw_at_or_slash_in_a_password_is_refused_as_libpq_would_misread_it(url):
    """libpq ends the credentials at the first '@' (or never finds them after a '/'): it would dial another host."""
    with pytest.raises(DbUrlError) as raised:
        parse(url)
    assert "percent-encode them (@ as %40, / as %2F)" in str(raised.value)
    assert "ss" not in str(raised.value).replace("password", "")
    assert "p@ss" not in redact(url) and "pa/ss" not in redact(url)


def test_redact_masks_urls_inside_libpq_messages_and_conninfo():
    libpq = 'missing "=" after "postgresql//trader:hunter2@db/x" in connection info string'
    assert "hunter2" not in redact(libpq)
    assert redact("host=db password=hunter2 user=x") == "host=db password=*** user=x"
    assert redact("postgresql://trader@db/x") == "postgresql://trader@db/x"


def test_secrets_cover_decoded_and_encoded_spellings():
    parsed = parse("postgresql://u:ab%2Fcd@h/db?password=other")
    assert set(parsed.secrets) >= {"ab/cd", "ab%2Fcd", "other"}
    assert scrub("ab/cd and ab%2Fcd and other", parsed.secrets) == "*** and *** and ***"


def test_scrub_masks_whole_tokens_only_so_reports_stay_readable():
    assert scrub("postgresql://trader:postgres@h/db failed: postgres said no", ["postgres"]) == (
        "postgresql://trader:***@h/db failed: *** said no"
    )
    assert scrub("340,494 rows at 127.0.0.1; password=4", ["4"]) == "340,494 rows at 127.0.0.1; password=***"


def test_guess_secrets_finds_the_password_of_a_url_that_does_not_parse():
    for broken in ("postgresql//trader:hunter2@db/x", "postgresql:/trader:hunter2@db/x", "postgresql://trader:hun ter2@db/x"):
        found = dburl.guess_secrets(broken)
        assert "hunter2" in found or "hun ter2" in found
        assert "hunter2" not in scrub(f"value was {broken}!", found)


urls = st.builds(
    "postgresql://{}:{}@{}:{}/{}".format,
    st.text("abcxyz_", min_size=1, max_size=6),
    st.text("ab:@/?#%&=+ .x9", max_size=10),
    st.sampled_from(["localhost", "db.internal", "10.1.2.3", "[::1]"]),
    st.integers(1, 65535),
    st.text("mt5_crs/@?x", min_size=1, max_size=8),
)


@settings(max_examples=400)
@given(url=urls)
def test_whatever_parse_accepts_libpq_reads_the_same_way(url):
    """Differential test against libpq itself: no URL we pass as valid means something else to it."""
    try:
        parsed = parse(url)
    except DbUrlError:
        return  # stricter than libpq is allowed (a raw '@' in a password); laxer is not
    libpq = conninfo_to_dict(url)
    assert libpq.get("user") == parsed.user
    assert libpq.get("password") == parsed.password
    assert libpq.get("dbname", "") == parsed.dbname
    assert libpq.get("host") == ",".join(host for host, _ in parsed.hosts)
    assert libpq.get("port") == (",".join("" if port is None else str(port) for _, port in parsed.hosts) or None)


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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://trader:it's@db/mt5_crs", "postgresql://trader:***@db/mt5_crs"),
        ("postgresql://trader:a?b@db/mt5_crs", "postgresql://trader:***@db/mt5_crs"),
        ("postgresql://trader:a%2fb@db/mt5_crs", "postgresql://trader:***@db/mt5_crs"),
        ("postgresql://trader@db/mt5_crs?pass%77ord=abc", "postgresql://trader@db/mt5_crs?password=***"),
        ("postgresql://tr%61der:x@db/?dbname=mt5_crs", "postgresql://trader:***@db/mt5_crs"),
    ],
)
def test_redacted_is_rebuilt_so_no_typing_quirk_leaves_the_password(url, shown):
    assert parse(url).redacted == shown


def test_secrets_include_the_password_exactly_as_typed():
    assert "a%2fb" in parse("postgresql://trader:a%2fb@db/mt5_crs").secrets


def test_repr_never_shows_the_password():
    parsed = parse("postgresql://trader:hunter2@db/mt5_crs?password=hunter3")
    assert "hunter" not in repr(parsed)
