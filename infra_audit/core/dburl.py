"""PostgreSQL connection URLs: parse and validate them, and keep their password out of sight.

The URL is parsed here, not by libpq, because libpq echoes part of a malformed URL back in its
error text (``missing "=" after "postgresql//user:PASSWORD@..."``). Every message this module
raises is safe to print.

>>> url = parse(build("localhost", "5432", "trader", "s3cret", "mt5_crs"))
>>> url.redacted
'postgresql://trader:***@localhost:5432/mt5_crs'
>>> scrub("login s3cret failed", url.secrets)
'login *** failed'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote
from urllib.parse import unquote as _unquote

from infra_audit.core.errors import DbUrlError

SCHEMES = ("postgresql", "postgres")
MASK = "***"
MIN_BLIND_SECRET = 4
MIN_STRONG_PASSWORD = 12
EXAMPLE = "postgresql://USER:<password>@HOST:5432/DATABASE"

_KEYWORD = re.compile(r"[a-z_]{1,40}|\d+")  # what a libpq keyword (or a port) looks like: safe to name
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_URL_TOKEN = re.compile(r"[^\s\"'<>]*//[^\s\"'<>]*@[^\s\"'<>]*")
# ``//user:...@`` with a quote, blank or ``<>`` before the ``@`` (they end a URL token): masked up to
# that ``@``; the token pass then extends the mask over any further raw ``@`` of the password.
_LOOSE_CREDENTIALS = re.compile(r"(//[^\s/:@\"'<>]*:)(?=[^@\n]*[\s\"'<>])[^@\n]*(?=@)")
# ``//user:...`` with no ``@``: what follows the colon is a port only when it is digits; else it may be
# a password whose ``@`` was forgotten (``trader:secretpw-host:5432``), so it is masked.
_NO_AT = re.compile(r"(//[^\s/:@\"'<>\[]*:)(?!\d*(?:[/,?\s\"'<>]|$))[^\s/\"'<>,?@]+")
# Placeholders of .env.example (and of EXAMPLE): a DB_URL still holding one was never filled in.
# The libpq keywords whose value is a secret (libpq marks the first three as passwords; the scram keys
# are the password's equivalent): masked wherever shown, like the password.
SECRET_KEYWORDS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
PLACEHOLDERS = {"user": ("USER",), "password": ("PASSWORD", "<password>"), "host": ("HOST",), "dbname": ("DATABASE",)}


@dataclass(frozen=True)
class DbUrl:
    """A validated PostgreSQL URL. ``repr`` and ``redacted`` never show the password."""

    raw: str = field(repr=False)
    user: str | None
    password: str | None = field(repr=False)
    hosts: tuple[tuple[str, int | None], ...]
    dbname: str
    params: tuple[tuple[str, str], ...] = field(repr=False)
    scheme: str = "postgresql"
    typed: tuple[str, ...] = field(repr=False, default=())  # the password(s) exactly as written in the URL

    @property
    def redacted(self) -> str:
        """The URL rebuilt from its parts with every password as ``***``: safe for reports.

        Rebuilt, not masked in place, so no quirk of how the URL was typed (quotes, ``?`` or
        lower-case escapes in the password) can leave a piece of the password showing.

        >>> parse("postgres://tr%61der:it's?me@db:5432/mt5_crs?sslmode=require&pass%77ord=x").redacted
        'postgres://trader:***@db:5432/mt5_crs?sslmode=require&password=***'
        """
        auth = ""
        if self.user is not None or self.password is not None:
            auth = quote(self.user or "", safe="") + (f":{MASK}" if self.password is not None else "") + "@"
        hosts = ",".join(_host_text(host, port) for host, port in self.hosts)
        query = "&".join(
            f"{quote(key, safe='')}={MASK if key in SECRET_KEYWORDS else quote(value, safe='/')}"
            for key, value in self.params
            if key != "dbname"
        )
        return f"{self.scheme}://{auth}{hosts}/{quote(self.dbname, safe='')}" + (f"?{query}" if query else "")

    @property
    def servers(self) -> tuple[tuple[str, int | None], ...]:
        """The (host, port) pairs libpq dials: ``?host=`` and ``?port=`` win over the URL's host part,
        as in libpq; one port may serve every host."""
        hosts = self.param("host").split(",") if self.param("host") else [host for host, _ in self.hosts]
        ports: list[int | None] = [port for _, port in self.hosts]
        if self.param("port"):
            ports = [int(p) if p.isascii() and p.isdigit() else None for p in self.param("port").split(",")]
        if len(ports) == 1:
            ports = ports * len(hosts)
        return tuple(zip(hosts, ports + [None] * (len(hosts) - len(ports))))

    @property
    def where(self) -> str:
        """The server(s) for messages: ``localhost:5432``, or the socket folder."""
        return ", ".join(_host_label(host, port) for host, port in self.servers) or "the default socket"

    @property
    def target(self) -> str:
        """The database and its server for messages: ``'mt5_crs' at localhost:5432``."""
        return f"'{self.dbname}' at {self.where}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every spelling of the password (and of the other secret parameters) that could surface in text
        (decoded, encoded, as typed)."""
        found = {p for p in (self.password, *map(self.param, SECRET_KEYWORDS)) if p}
        spelled = {quote(p, safe="") for p in found} | {quote(p) for p in found} | set(filter(None, self.typed))
        return tuple(sorted(found | spelled, key=len, reverse=True))

    def param(self, key: str) -> str | None:
        """The last value of a query parameter, as libpq would read it."""
        values = [value for name, value in self.params if name == key]
        return values[-1] if values else None


def _host_text(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else quote(host, safe="")
    return f"{shown}:{port}" if port else shown


def _host_label(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown or "the default socket"


def parse(url: str) -> DbUrl:
    """Validate ``url`` as libpq would accept it, with a message a person can act on.

    >>> parse("postgresql://trader@db.internal/mt5_crs").hosts
    (('db.internal', None),)
    """
    text = url.strip()
    if not text:
        raise DbUrlError(f"the URL is empty: expected {EXAMPLE}")
    match = _SCHEME.match(text)
    if not match:
        raise DbUrlError(f"not a URL (no '://' after the scheme): expected {EXAMPLE}")
    scheme = match.group(1)
    if scheme.lower() not in SCHEMES:
        raise DbUrlError(f"unsupported scheme '{scheme}': expected {EXAMPLE}")
    if re.search(r"\s", text):
        raise DbUrlError("the URL holds a space or other blank: percent-encode it (a space as %20)")
    userinfo, hostspec, path, query = _split(text[match.end() :])
    user, password = _split_userinfo(userinfo)
    # Without an '@', "trader:?secret=1" reads as host "trader", no port, then a query: name nothing of it.
    named = bool(userinfo) or all(_KEYWORD.fullmatch(h.rpartition(":")[2]) for h in hostspec.split(",") if ":" in h)
    params = _parse_query(query, named)
    hosts = tuple(_parse_host(part) for part in hostspec.split(",")) if hostspec else ()
    dbname = dict(params).get("dbname") or unquote(path)  # a ?dbname= wins over the path, as in libpq
    typed = (userinfo.partition(":")[2], *(value for key in SECRET_KEYWORDS for value in _typed_values(query, key)))
    parsed = DbUrl(text, user, password, hosts, dbname, params, scheme, typed)
    if not any(host for host, _ in hosts) and not parsed.param("host"):
        raise DbUrlError(f"no host: add one ({EXAMPLE}) or name a socket folder with ?host=/var/run/postgresql")
    if not parsed.dbname:
        raise DbUrlError(f"no database name: end the URL with /DATABASE ({EXAMPLE})")
    return parsed


def placeholders(url: DbUrl) -> tuple[str, ...]:
    """The parts of ``url`` still holding .env.example's placeholders (``USER``, ``<password>``,
    ``HOST``, ``DATABASE``, or any ``<...>``): that DB_URL was copied and never filled in, and
    nobody should dial a host named ``HOST``. The password is named as a part, never quoted.

    >>> placeholders(parse(EXAMPLE))
    ('user USER', 'the password', 'host HOST', 'database DATABASE')
    """
    parts = [
        ("user", "user", url.user),
        ("password", "the password", url.password or url.param("password")),
        *(("host", "host", host) for host, _ in url.hosts),
        ("dbname", "database", url.dbname),
    ]
    return tuple(
        label if part == "password" else f"{label} {value}"
        for part, label, value in parts
        if value and (value in PLACEHOLDERS[part] or (value.startswith("<") and value.endswith(">")))
    )


def shown(raw: str, broken: str = "(not shown: not a valid URL)") -> str:
    """A URL for a message: rebuilt with its password masked, or ``broken`` when it does not parse
    (nobody can tell where the password of a broken URL ends, so none of it is echoed)."""
    try:
        return parse(raw).redacted
    except DbUrlError:
        return broken


def words(texts: Iterable[str]) -> frozenset[str]:
    """Each text and its runs of letters and digits (``market_data`` -> ``market``, ``data``)."""
    return frozenset(w for text in texts for w in (text, *re.findall(r"[^\W_]+", text)) if w)


def shown_words(url: DbUrl, extra: Iterable[str] = ()) -> frozenset[str]:
    """Words a report shows for their own sake: the user, hosts, ports and database of ``url``, and
    ``extra`` (the checked tables). A password equal to one cannot be masked there without pointing at it."""
    parts = [url.user or "", url.dbname, *(host for host, _ in url.hosts), *(str(p) for _, p in url.hosts if p)]
    return words([*parts, *extra])


def weak_password(url: DbUrl, extra: Iterable[str] = ()) -> bool:
    """A password under ``MIN_STRONG_PASSWORD`` characters or equal to a word the report shows.

    Callers say only "weak": naming the reason would tell which shown word the password is.
    """
    password = url.password or url.param("password")
    return bool(password) and (
        len(password) < MIN_STRONG_PASSWORD or not shown_words(url, extra).isdisjoint(url.secrets)
    )


def _typed_values(query: str, key: str) -> list[str]:
    """The values of ``key`` in a query string exactly as written (before %-decoding)."""
    return [item.partition("=")[2] for item in query.split("&") if _unquote(item.partition("=")[0]) == key]


def _split(rest: str) -> tuple[str, str, str, str]:
    """``user:pw@hosts/db?query`` split the way libpq splits it, so what we accept is what it reads.

    libpq takes credentials up to the FIRST ``@`` met before any ``/``. A raw ``@`` or ``/`` inside
    a password would make it read another host, so both are refused here, without echoing them.
    """
    stop = next((i for i, char in enumerate(rest) if char in "@/"), len(rest))
    userinfo, rest = (rest[:stop], rest[stop + 1 :]) if rest[stop : stop + 1] == "@" else ("", rest)
    end = next((i for i, char in enumerate(rest) if char in "/?"), len(rest))
    hostspec, tail = rest[:end], rest[end:]
    if "@" in hostspec or "@" in tail.partition("?")[0]:  # an '@' after the host: a password held '@' and '/'
        raise DbUrlError("the user name or password holds a raw '@' or '/': percent-encode them (@ as %40, / as %2F)")
    if not tail.startswith("/"):
        return userinfo, hostspec, "", tail[1:]
    path, _, query = tail[1:].partition("?")
    return userinfo, hostspec, path, query


def unquote(text: str) -> str:
    """Percent-decode strictly, as libpq does: a ``%`` must start a two-digit hex escape."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise DbUrlError("a '%' in the URL does not start a %XX escape: write a literal % as %25")
    try:
        return _unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise DbUrlError("a %XX escape in the URL does not decode to UTF-8 text: fix the escape") from None


def _split_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None  # "u" and "u:" both mean: no password


def _parse_host(part: str) -> tuple[str, int | None]:
    """One ``host[:port]`` entry; IPv6 addresses come in brackets (``[::1]:5432``)."""
    if part.startswith("["):
        host, bracket, tail = part[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise DbUrlError("cannot read a host in brackets: write IPv6 addresses as [::1]:5432")
        port_text = tail[1:]
    else:
        host, _, port_text = part.partition(":")
    return unquote(host), _parse_port(port_text)


def _parse_port(text: str) -> int | None:
    """The port after ``host:``. Never echoed: without an ``@``, "host:port" is really "user:password"."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:  # '²'.isdigit() is True
        raise DbUrlError(
            "a port is not a number from 1 to 65535 (or the '@' between USER:PASSWORD and the host is missing)"
        )
    return int(text)


def _parse_query(query: str, named: bool) -> tuple[tuple[str, str], ...]:
    """``?key=value&...``; keys must be libpq connection keywords, as libpq itself demands.

    A bad item is named only while it cannot be part of a password: never after a ``password=``
    (whose value may hold a raw ``&``), in a query holding an ``@`` (a raw ``/`` in the user info
    moves the password into the query), when ``named`` is False, or unless it looks like a keyword.
    """
    params: list[tuple[str, str]] = []
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        key = unquote(key)
        if sep and key in libpq_keywords():
            params.append((key, _checked_value(key, unquote(value))))
            continue
        after_password = any(name == "password" for name, _ in params)
        if not named or "@" in query or after_password or not _KEYWORD.fullmatch(key):
            raise DbUrlError(
                "a URL parameter is not a libpq keyword=VALUE (not shown: it may be part of a password): "
                "percent-encode '&', '@', '/' and '?' in passwords (%26, %40, %2F, %3F)"
            )
        if not sep:
            raise DbUrlError(f"URL parameter '{key}' has no value: write {key}=VALUE")
        import difflib  # a typo's hint only: not at every start

        hint = difflib.get_close_matches(key, libpq_keywords(), n=1)
        also = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise DbUrlError(f"unknown URL parameter '{key}'{also}: libpq would refuse it")
    return tuple(params)


# Keywords whose values libpq reads only when it connects: checked here, so a typo is a configuration
# error the .env check names, not a connection failure later. (password, host... are free text.)
_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
}
_WHOLE_NUMBERS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)


def _checked_value(key: str, value: str) -> str:
    """The value of a libpq keyword whose form is known, or a DbUrlError naming the keyword and the forms."""
    if key in _CHOICES and value not in _CHOICES[key]:
        raise DbUrlError(f"URL parameter {key} must be one of {', '.join(_CHOICES[key])}")
    if key in _WHOLE_NUMBERS and not (value.isascii() and value.lstrip("-").isdigit()):
        raise DbUrlError(f"URL parameter {key} must be a whole number of seconds (or a count)")
    return value


# libpq 18's connection keywords: masking must work where psycopg is not installed (the fixer runs
# on any python3, and its error lines are scrubbed too).
_LIBPQ_18_KEYWORDS = frozenset(
    """
    application_name channel_binding client_encoding connect_timeout dbname fallback_application_name
    gssdelegation gssencmode gsslib host hostaddr keepalives keepalives_count keepalives_idle
    keepalives_interval krbsrvname load_balance_hosts max_protocol_version min_protocol_version
    oauth_client_id oauth_client_secret oauth_issuer oauth_scope options passfile password port
    replication require_auth requirepeer scram_client_key scram_server_key service
    ssl_max_protocol_version ssl_min_protocol_version sslcert sslcertmode sslcompression sslcrl sslcrldir
    sslkey sslkeylogfile sslmode sslnegotiation sslpassword sslrootcert sslsni target_session_attrs
    tcp_user_timeout user
""".split()
)


@lru_cache(maxsize=1)
def libpq_keywords() -> frozenset[str]:
    """The connection keywords libpq knows (``sslmode``, ``host``, ...): libpq 18's, and the installed one's."""
    try:
        from psycopg import pq

        return _LIBPQ_18_KEYWORDS | {opt.keyword.decode() for opt in pq.Conninfo.get_defaults()}
    except ImportError:  # no psycopg, or no libpq for it
        return _LIBPQ_18_KEYWORDS


def redact(text: str) -> str:
    """Mask passwords in URLs and conninfo strings within ``text``, even malformed ones.

    >>> redact("postgresql://trader:p@ss@localhost/mt5_crs?sslmode=require")
    'postgresql://trader:***@localhost/mt5_crs?sslmode=require'
    >>> redact('missing "=" after "postgresql//trader:pw@db/x" in connection info string')
    'missing "=" after "postgresql//trader:***@db/x" in connection info string'
    >>> redact("host=db password='x y' dbname=z")
    'host=db password=*** dbname=z'
    >>> redact("postgresql://trader:it's <me>@db/x?password=Zebra&Pw-4411&sslmode=require")
    'postgresql://trader:***@db/x?password=***&sslmode=require'
    >>> redact("postgresql://trader:secretpw-db:5432/x, not postgresql://db:5432,[::1]:5433/x")
    'postgresql://trader:***/x, not postgresql://db:5432,[::1]:5433/x'
    """
    text = _password_param().sub(lambda m: m.group(1) + MASK, text)  # first: its value may hold an '@'
    text = _LOOSE_CREDENTIALS.sub(lambda m: m.group(1) + MASK, text)
    text = _URL_TOKEN.sub(lambda m: _mask_userinfo(m.group(0)), text)
    return _NO_AT.sub(lambda m: m.group(1) + MASK, text)


@lru_cache(maxsize=1)
def _password_param() -> re.Pattern[str]:
    """``password=VALUE`` in a query or conninfo string. The value runs over a raw ``&`` unless a libpq
    keyword follows it, so the tail of ``?password=Zebra&Pw-4411`` is masked with the rest."""
    keywords = "|".join(map(re.escape, sorted(libpq_keywords(), key=len, reverse=True)))
    value = rf"'(?:[^'\\]|\\.)*'|[^\s&]*(?:&(?!(?:{keywords})=)[^\s&]*)*"
    return re.compile(
        rf"((?:password|oauth_client_secret|scram_client_key|scram_server_key)\s*=\s*)({value})", re.IGNORECASE
    )  # "password" also ends "sslpassword"


def _password_span(token: str) -> tuple[int, int] | None:
    """Where the password sits in ``scheme://user:password@host...``: after the first ``:`` before the
    first ``@``, up to the LAST ``@`` of the token, so raw ``@``, ``/`` or ``?`` in it stay covered."""
    start = token.find("//") + 2
    at = token.rfind("@", start)
    colon = token.find(":", start, token.find("@", start))
    return (colon + 1, at) if at > 0 and colon >= 0 else None


def _mask_userinfo(token: str) -> str:
    span = _password_span(token)
    return token if span is None else token[: span[0]] + MASK + token[span[1] :]


def guess_secrets(raw: str) -> tuple[str, ...]:
    """What to scrub for a DB_URL that may not even parse: its password, however it is spelled.

    For a broken URL nobody can tell where the password ends, so every reading counts: the
    text after each ``:`` up to the last ``@``, any ``password=`` value, and the whole value.

    >>> sorted(guess_secrets("postgresql:/trader:hunter2@db/x"))
    ['/trader:hunter2', 'hunter2', 'postgresql:/trader:hunter2@db/x']
    """
    try:
        return parse(raw).secrets
    except DbUrlError:
        head = raw[: raw.rfind("@")] if "@" in raw else ""
        found = {raw.strip(), *(head[i + 1 :] for i, char in enumerate(head) if char == ":")}
        found.update(m.group(2).strip("'") for m in _password_param().finditer(raw))
        return tuple(sorted(filter(None, found), key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Mask passwords in ``text``: the last line of defence before text is shown.

    Passwords in credential positions (``user:PASSWORD@``, ``password=...``) are always masked,
    whatever they are (``redact``). Beyond those, each secret of ``MIN_BLIND_SECRET`` characters
    or more is masked wherever it stands as a whole token: one that starts or ends with a letter
    or digit is not matched inside a longer word or number, so ``postgres`` does not eat
    ``postgresql://``. Shorter secrets are not hunted through free text, where ``1`` or ``a``
    would shred every number and word of a report.

    >>> scrub("host=db password=1 url postgresql://u:1@127.0.0.1/db, 120 rows", ["1"])
    'host=db password=*** url postgresql://u:***@127.0.0.1/db, 120 rows'
    >>> scrub("FATAL: hunter22 and hunter222", ["hunter22"])
    'FATAL: *** and hunter222'
    """
    for secret in sorted((s for s in secrets if len(s) >= MIN_BLIND_SECRET), key=len, reverse=True):
        before = r"(?<![0-9A-Za-z])" if secret[0].isalnum() else ""
        after = r"(?![0-9A-Za-z])" if secret[-1].isalnum() else ""
        text = re.sub(before + re.escape(secret) + after, MASK, text)
    return redact(text)  # after: redact's masks must not break up a secret spelled out whole (a broken URL)


def scrub_data(data: object, secrets: tuple[str, ...] | list[str]) -> object:
    """``scrub`` every string inside JSON-like data, so the serialized result stays valid JSON."""
    if isinstance(data, str):
        return scrub(data, secrets)
    if isinstance(data, dict):
        return {key: scrub_data(value, secrets) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub_data(value, secrets) for value in data]
    return data


def build(host: str, port: str | None, user: str | None, password: str | None, dbname: str) -> str:
    """A URL from the spec's ``POSTGRES_*`` parts, escaping what needs it."""
    shown_host = f"[{host}]" if ":" in host else quote(host, safe="")
    auth = ""
    if user:
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    return f"postgresql://{auth}{shown_host}{':' + port if port else ''}/{quote(dbname, safe='')}"
