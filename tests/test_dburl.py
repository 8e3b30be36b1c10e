"""tools/dburl.py: what is a valid DB_URL, and the password never shows."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from infra_audit.core import dburl
from infra_audit.core.dburl import parse, redact, scrub
from infra_audit.core.errors import DbUrlError


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


@pytest.mark.parametrize(
    "url", ["postgresql://trader:p@ss@localhost/mt5_crs", "postgresql://trader:pa/ss@localhost/mt5_crs"]
)
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


@pytest.mark.parametrize(
    ("broken", "password"),
    [
        ("postgresql//trader:hunter2@db/x", "hunter2"),
        ("postgresql:/trader:hunter2@db/x", "hunter2"),
        ("postgresql://trader:hun ter2@db/x", "hun ter2"),
    ],
)
def test_guess_secrets_finds_the_password_of_a_url_that_does_not_parse(broken, password):
    found = dburl.guess_secrets(broken)
    assert password in found
    assert password not in scrub(f"value was {broken}!", found)
    assert password not in scrub(f"said {password}.", found), "the password alone, without its URL, is masked too"


urls = st.builds(
    "postgresql://{}:{}@{}:{}/{}".format,
    st.text("abcxyz_", min_size=1, max_size=6),
    st.text("ab:@/?#%&=+ .x9", max_size=10),
    st.sampled_from(["localhost", "db.internal", "10.1.2.3", "[::1]"]),
    st.integers(1, 65535),
    st.text("mt5_crs/@?x", min_size=1, max_size=8),
)


@settings(max_examples=400, derandomize=True, deadline=None)
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


@settings(derandomize=True, deadline=None)
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


# --- every character, every place: no piece of a password shows ---------------------------------

FREE_TEXT = "cannot use {}: failed"
# What may show anyway: the messages' own words (this module's text) and the URLs' other parts.
SHOWN_ANYWAY = Path(dburl.__file__).read_text() + FREE_TEXT + "postgresql://trader:***@db:5432/mt5_crs?sslmode=require"
PLACES = (
    "postgresql://trader:{encoded}@db:5432/mt5_crs",
    "postgresql://trader@db:5432/mt5_crs?password={encoded}&sslmode=require",
    "postgresql://trader:{raw}@db:5432/mt5_crs",
    "postgresql://trader:{raw}@db:5432/mt5_crs?sslmode=require",
    "postgresql://trader@db:5432/mt5_crs?password={raw}",
    "postgresql://trader@db:5432/mt5_crs?password={raw}&sslmode=require",
    "postgresql://trader:{raw}db:5432/mt5_crs",  # the '@' forgotten
)


def pieces(password: str, size: int = 4) -> set[str]:
    """Every run of ``size`` characters of the password (and the password itself when shorter)."""
    return {password[i : i + size] for i in range(max(1, len(password) - size + 1))}


def outputs(url: str) -> list[str]:
    """Everything this module lets a caller print about ``url``, knowing it is the DB_URL. (Bare ``redact``,
    which knows nothing, cannot tell a password whose '@' was forgotten from a host, nor where a password
    holding a blank ends: callers that know the URL use ``shown``, or ``scrub`` with ``guess_secrets``.)"""
    try:
        said = [parse(url).redacted]
    except DbUrlError as exc:
        said = [str(exc)]
    bare = [redact(url)] if "@" in url and not any(c.isspace() for c in url) else []
    return [*said, dburl.shown(url), scrub(FREE_TEXT.format(url), dburl.guess_secrets(url)), *bare]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(password=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=4, max_size=20))
def test_no_four_characters_of_any_password_show_in_any_place(password):
    """Printable and Unicode passwords, percent-encoded or typed raw, in the user info or a password= parameter."""
    for place in PLACES:
        url = place.format(encoded=quote(password, safe=""), raw=password)
        if "{raw}db" in place and any(c in password for c in "@/?"):
            continue  # then it is no forgotten '@': libpq reads a host, a database or a query there, as we do
        for text in outputs(url):
            leaked = sorted(p for p in pieces(password) if p in text and p not in SHOWN_ANYWAY)
            assert not leaked, (place, text)


@pytest.mark.parametrize("password", ["p@ssw0rd", "p@@ssw0rd@", "ab@cd/ef@gh", "s3cr@t?x=1", "x:y@z"])
def test_a_password_holding_at_signs_is_masked_whole(password):
    """Not just 'the whole password is absent': no part of it after the first '@' shows either."""
    for url in (f"postgresql://trader:{password}@localhost/mt5_crs", f"libpq said postgresql//trader:{password}@db/x"):
        for text in (redact(url), scrub(url, dburl.guess_secrets(url)), dburl.shown(url)):
            assert not [p for p in pieces(password, 3) if p in text and p not in "postgresql localhost trader"], text


@pytest.mark.parametrize("password", ["it's", 'say "hi"', "<secret>", "two words", "tab\there"])
def test_quotes_brackets_and_blanks_in_a_raw_password_are_masked(password):
    """What the sandbox echoes of an existing .env: a raw URL with characters that end a URL token."""
    url = f"postgresql://trader:{password}@localhost:5432/mt5_crs"
    assert redact(f"DB_URL={url} kept") == "DB_URL=postgresql://trader:***@localhost:5432/mt5_crs kept"
    assert dburl.shown(url) in ("postgresql://trader:***@localhost:5432/mt5_crs", "(not shown: not a valid URL)")


def test_a_url_missing_its_at_is_not_shown():
    """``user:password`` then the host: nobody can tell it is a password, so the URL is not shown at all."""
    assert dburl.shown("postgresql://trader:secretpw-host:5432/mt5_crs") == "(not shown: not a valid URL)"


@pytest.mark.parametrize(
    "query",
    [
        "password=Zebra&Pw-4411",
        "password=Zebra&Pw=4411",
        "password=Zebra&sslmod=4411",
        "sslmode=require&password=a&Bcd9",
    ],
)
def test_query_items_after_a_password_are_never_echoed(query):
    url = f"postgresql://trader@db/mt5_crs?{query}"
    with pytest.raises(DbUrlError) as raised:
        parse(url)
    assert "not shown: it may be part of a password" in str(raised.value)
    tail = query.split("password=", 1)[1]
    assert tail not in redact(url) and tail.split("&")[-1].split("=")[0] not in str(raised.value)


def test_a_query_with_an_at_sign_is_not_echoed():
    """A raw '/' in the user info moves the password into the query: 'u:Zebra/x?Pw4411=1@db'."""
    with pytest.raises(DbUrlError) as raised:
        parse("postgresql://u:Zebra/x?Pw4411=1@db/mt5_crs")
    assert "Pw4411" not in str(raised.value) and "Zebra" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db:5432/x?sslmod=1",
        "postgresql://[::1]:5432/x?sslmod=1",
        "postgresql://u:p@db:/x?sslmod=1",
        "postgresql://db/x?sslmod=1",
    ],
)
def test_a_bad_parameter_is_named_when_no_password_can_be_in_it(url):
    with pytest.raises(DbUrlError, match="unknown URL parameter 'sslmod'"):
        parse(url)


def test_unknown_parameters_before_any_password_are_named():
    with pytest.raises(DbUrlError, match="unknown URL parameter 'sslmod' \\(did you mean 'sslmode'\\?\\)"):
        parse("postgresql://trader:pw@db/mt5_crs?sslmod=require&password=x")


@pytest.mark.parametrize("port", ["\u00b2", "\u0665", "\uff15432", "\U0001d7d3"])
def test_unicode_digits_are_not_a_port(port):
    """'²'.isdigit() is True and int('²') raises: the check must be ASCII digits."""
    with pytest.raises(DbUrlError, match="a port is not a number from 1 to 65535"):
        parse(f"postgresql://trader:pw@127.0.0.1:{port}/mt5_crs")


@pytest.mark.parametrize(
    ("url", "left"),
    [
        (dburl.EXAMPLE, ("user USER", "the password", "host HOST", "database DATABASE")),
        (
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE",
            ("user USER", "the password", "host HOST", "database DATABASE"),
        ),
        ("postgresql://trader:<password>@db.internal:5432/mt5_crs", ("the password",)),
        ("postgresql://trader@db.internal/mt5_crs?password=PASSWORD", ("the password",)),
        ("postgresql://trader:s3cret@<host>/mt5_crs", ("host <host>",)),
        ("postgresql://trader:s3cret@db,HOST/mt5_crs", ("host HOST",)),
        ("postgresql://trader:s3cret@db.internal/<database>", ("database <database>",)),
        ("postgresql://trader:password@db.internal/database", ()),
        ("postgresql://user:s3cret@host/mt5_crs", ()),
        ("postgresql://trader:<s3cret@db/mt5_crs>", ()),
    ],
)
def test_placeholders_are_named_and_the_password_is_never_quoted(url, left):
    assert dburl.placeholders(parse(url)) == left


@pytest.mark.parametrize(
    ("url", "tables", "weak"),
    [
        ("postgresql://trader:assets@db/mt5_crs", (), True),
        ("postgresql://trader:market_data_2024@db/mt5_crs", ("market_data_2024",), True),
        ("postgresql://trader:market_data_2024@db/mt5_crs", ("assets",), False),
        ("postgresql://mt5_crs_reader_01:mt5_crs_reader_01@db/x", (), True),
        ("postgresql://trader:Zk3-pQ9vL2x#@db/mt5_crs", ("assets",), False),  # 12: long enough
        ("postgresql://trader@db/mt5_crs", (), False),
        ("postgresql://trader@db/mt5_crs?password=12345678901", (), True),
    ],
)
def test_weak_password(url, tables, weak):
    assert dburl.weak_password(parse(url), tables) is weak


def test_shown_words_without_a_user_or_port():
    assert dburl.shown_words(parse("postgresql://db/x")) == {"db", "x"}


def test_shown_words_are_the_parts_and_their_runs():
    url = parse("postgresql://trader:x@db.internal:6543/mt5_crs")
    assert dburl.shown_words(url, ["market_data"]) == {
        "trader",
        "db.internal",
        "db",
        "internal",
        "6543",
        "mt5_crs",
        "mt5",
        "crs",
        "market_data",
        "market",
        "data",
    }


def test_where_and_target_name_the_servers_for_messages():
    assert parse("postgresql://u@db:5432,[::1]:5433/x").where == "db:5432, [::1]:5433"
    assert parse("postgresql://u@,db/x").where == "the default socket, db"
    assert parse("postgresql://u@/x?host=/var/run/postgresql").where == "/var/run/postgresql"
    assert parse("postgresql://u@db/mt5_crs").target == "'mt5_crs' at db"


# --- exact answers, so a changed message, boundary or spelling cannot pass unnoticed ------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:p@db/x y", "the URL holds a space or other blank: percent-encode it (a space as %20)"),
        ("postgresql://u:p%zz@db/x", "a '%' in the URL does not start a %XX escape: write a literal % as %25"),
        ("postgresql://u:p%ff@db/x", "a %XX escape in the URL does not decode to UTF-8 text: fix the escape"),
        (
            "postgresql://u:p@s@db/x",
            "the user name or password holds a raw '@' or '/': percent-encode them (@ as %40, / as %2F)",
        ),
        ("postgresql://u:p@[::1/x", "cannot read a host in brackets: write IPv6 addresses as [::1]:5432"),
        ("postgresql://u:p@[::1]]:5432/x", "cannot read a host in brackets: write IPv6 addresses as [::1]:5432"),
        (
            "postgresql://u:p@db:0/x",
            "a port is not a number from 1 to 65535 (or the '@' between USER:PASSWORD and the host is missing)",
        ),
        (
            "postgresql://u:p@db/x?sslmod=1",
            "unknown URL parameter 'sslmod' (did you mean 'sslmode'?): libpq would refuse it",
        ),
        ("postgresql://u:p@db/x?zzzzzz=1", "unknown URL parameter 'zzzzzz': libpq would refuse it"),
        ("postgresql://u:p@db/x?sslmode", "URL parameter 'sslmode' has no value: write sslmode=VALUE"),
        (
            "postgresql://u@db/x?password=a&B=1",
            "a URL parameter is not a libpq keyword=VALUE (not shown: it may be part of a password): "
            "percent-encode '&', '@', '/' and '?' in passwords (%26, %40, %2F, %3F)",
        ),
    ],
)
def test_each_refusal_says_exactly_what_to_do(url, message):
    with pytest.raises(DbUrlError) as raised:
        parse(url)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://trader:?secretword=1",
        "postgresql://trader:?secretword",
        "postgresql://trader:abc/x?secretword=y@db/x",
        "postgresql://trader:,db:5432/x?secretword=1",
    ],
)
def test_a_forgotten_at_before_a_question_mark_names_nothing(url):
    """'trader:' reads as a host with no port; what follows '?' is the password, not a parameter to name."""
    with pytest.raises(DbUrlError) as raised:
        parse(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "check"),
    [
        ("postgresql://db?dbname=x", lambda u: (u.user, u.hosts, u.dbname) == (None, (("db", None),), "x")),
        ("postgresql://DBX/x", lambda u: u.hosts == (("DBX", None),)),
        ("postgresql://u:p@db/x?application_name=a@b", lambda u: u.param("application_name") == "a@b"),
        ("postgresql://u:p@db:1/x", lambda u: u.hosts == (("db", 1),)),
        ("postgresql://u:p@db:65535/x", lambda u: u.hosts == (("db", 65535),)),
        ("  postgresql://u:p@db/x ", lambda u: u.raw == "postgresql://u:p@db/x"),
    ],
)
def test_edges_that_parse(url, check):
    assert check(parse(url))


@pytest.mark.parametrize("port", ["0", "65536"])
def test_ports_just_outside_the_range_are_refused(port):
    with pytest.raises(DbUrlError, match="a port is not a number from 1 to 65535"):
        parse(f"postgresql://u:p@db:{port}/x")


def test_secrets_are_exactly_the_spellings_of_the_passwords():
    url = parse("postgresql://u:a:b%2F@h/db?sslmode=require&password=c%2fd=e")
    assert set(url.secrets) == {"a:b/", "a:b%2F", "a%3Ab%2F", "a%3Ab/", "c/d=e", "c%2Fd%3De", "c/d%3De", "c%2fd=e"}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "postgresql://trader:p@ss@localhost/mt5_crs?sslmode=require",
            "postgresql://trader:***@localhost/mt5_crs?sslmode=require",
        ),
        ("at postgresql://trader:pw@db:5432/x now", "at postgresql://trader:***@db:5432/x now"),
        ("postgresql://trader@db:5432/x?password=@000", "postgresql://trader@db:5432/x?password=***"),
        ("//t:a:b@db/x and //u:c@e", "//t:***@db/x and //u:***@e"),
        ("x://t:pw@h", "x://t:***@h"),
        ("postgresql://:pw@h/x", "postgresql://:***@h/x"),
        ("postgresql://trader@h/x", "postgresql://trader@h/x"),
        ("see http://h:8080/path", "see http://h:8080/path"),
        ("postgresql://t:p/w@db//x", "postgresql://t:***@db//x"),
        ("postgresql://:p/w@h/x", "postgresql://:***@h/x"),
        ("postgresql://t:/pw@h/x", "postgresql://t:***@h/x"),
        ("postgresql://t:a:b/c@h/x", "postgresql://t:***@h/x"),
        ("postgresql://trader@db:5432/x?application_name=a@b", "postgresql://trader@db:5432/x?application_name=a@b"),
    ],
)
def test_redact_exactly(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    ("text", "secrets", "masked"),
    [
        ("pass: abcd, abcde", ["abcd"], "pass: ***, abcde"),
        ("Xhunter22 hunter22X hunter22", ["hunter22"], "Xhunter22 hunter22X ***"),
        ("x-abcd", ["-abcd"], "x***"),
        ("abcd-x", ["abcd-"], "***x"),
        ("ab-cd1 xab-cd1", ["ab-cd1"], "*** xab-cd1"),
        ("1ab-cd 1ab-cdx", ["1ab-cd"], "*** 1ab-cdx"),
        ("abc and abcd", ["abc", "abcd"], "abc and ***"),
    ],
)
def test_scrub_exactly(text, secrets, masked):
    assert scrub(text, secrets) == masked


def test_scrub_data_scrubs_every_string_and_keeps_the_shape():
    data = {"a": ["pw hunter22", 1, ("hunter22",)], "b": None, "c": "hunter22"}
    assert dburl.scrub_data(data, ["hunter22"]) == {"a": ["pw ***", 1, ["***"]], "b": None, "c": "***"}


@pytest.mark.parametrize(
    ("raw", "guessed"),
    [
        ("postgresql:/u:a@b@db/x", ("postgresql:/u:a@b@db/x", "/u:a@b", "a@b")),
        ("postgresql//db/x?password='ab cd'", ("postgresql//db/x?password='ab cd'", "ab cd")),
        ("postgresql//db/x?password='Xy zX'", ("postgresql//db/x?password='Xy zX'", "Xy zX")),
        ("postgresql//db:5x/x", ("postgresql//db:5x/x",)),
    ],
)
def test_guess_secrets_exactly(raw, guessed):
    assert dburl.guess_secrets(raw) == guessed


@pytest.mark.parametrize(
    ("parts", "url"),
    [
        (("::1", "5432", "u", "pw", "db"), "postgresql://u:pw@[::1]:5432/db"),
        (("db", None, None, None, "x"), "postgresql://db/x"),
        (("db", None, "u", None, "my db"), "postgresql://u@db/my%20db"),
        (("db", None, "a/b", "c/d", "e/f"), "postgresql://a%2Fb:c%2Fd@db/e%2Ff"),
        (("a/b", "1", "t@x", "p/w:@", "d/b"), "postgresql://t%40x:p%2Fw%3A%40@a%2Fb:1/d%2Fb"),
    ],
)
def test_build_escapes_every_part(parts, url):
    assert dburl.build(*parts) == url


def test_redacted_brackets_ipv6_and_escapes_hosts():
    assert parse("postgresql://u:p@[::1]:5433,db%2Fx/x").redacted == "postgresql://u:***@[::1]:5433,db%2Fx/x"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=bogus", "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full"),
        ("connect_timeout=abc", "connect_timeout must be a whole number"),
        ("connect_timeout=5-", "connect_timeout must be a whole number"),
        ("keepalives_idle=X5", "keepalives_idle must be a whole number"),
        ("target_session_attrs=primary-only", "target_session_attrs must be one of"),
    ],
)
def test_a_keyword_value_libpq_would_refuse_is_a_configuration_error(query, said):
    """Found when DB_URL is read (the .env check names it), not as a connection failure later."""
    with pytest.raises(DbUrlError, match=said):
        parse(f"postgresql://trader:s3cret-pw@db/mt5_crs?{query}")
    assert parse("postgresql://trader:s3cret-pw@db/mt5_crs?sslmode=verify-full&connect_timeout=5").param("sslmode")
    assert parse("postgresql://trader:s3cret-pw@db/mt5_crs?tcp_user_timeout=-1").param("tcp_user_timeout") == "-1", (
        "libpq reads a signed number (strtol): a leading minus is no configuration error"
    )


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgresql://trader:s3cret-pw@127.0.0.1:1/mt5_crs?port=51805", "127.0.0.1:51805"),
        ("postgresql://trader:s3cret-pw@127.0.0.1:1/mt5_crs?host=db.internal", "db.internal:1"),
        ("postgresql://trader:s3cret-pw@a,b/mt5_crs?port=7", "a:7, b:7"),
        ("postgresql://trader@/mt5_crs?host=/var/run/postgresql", "/var/run/postgresql"),
    ],
)
def test_messages_name_the_server_libpq_dials(url, where):
    """``?host=`` and ``?port=`` win over the URL's host part in libpq: messages must say the same."""
    assert parse(url).where == where


@pytest.mark.parametrize("keyword", ["sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"])
def test_every_secret_parameter_is_masked_like_the_password(keyword):
    url = parse(f"postgresql://trader:hunter2-secret@db/mt5_crs?oauth_client_id=app&{keyword}=Qv9-SecretValue")
    assert f"{keyword}=***" in url.redacted and "Qv9-SecretValue" not in url.redacted
    assert "Qv9-SecretValue" in url.secrets
    assert redact(f"connect failed: {keyword}=Qv9-SecretValue host=db") == f"connect failed: {keyword}=*** host=db"
