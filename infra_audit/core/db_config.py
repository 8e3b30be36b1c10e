"""Where the database URL comes from: the environment first, then the project's ``.env``.

The environment wins because CI passes secrets that way. When ``DB_URL`` is absent, the spec's
``POSTGRES_HOST/PORT/USER/PASSWORD/DB`` parts are assembled into one. No URL is ever invented:
a missing setting is reported, not papered over with a built-in fallback.
"""

from __future__ import annotations

import contextlib
import io
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra_audit.core import dburl
from infra_audit.core.errors import ConfigError, DbUrlError

COMPONENTS = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
REQUIRED_COMPONENTS = ("POSTGRES_HOST", "POSTGRES_DB")
MAX_ENV_BYTES = 1 << 20  # a FIFO or /dev/zero behind .env must not hang or exhaust the run
FROM_ENVIRONMENT = "the environment (DB_URL)"  # the origin of a DB_URL exported to the process


@dataclass(frozen=True)
class DbUrlSetting:
    """The raw ``DB_URL`` and where it came from, so every message can point at the right file."""

    value: str = field(repr=False)
    origin: str

    @property
    def from_environment(self) -> bool:
        """Whether DB_URL came from the process environment, so no file of the project holds it."""
        return self.origin == FROM_ENVIRONMENT

    @property
    def shown(self) -> str:
        """The URL for a report, password masked; not shown at all when it does not parse."""
        return dburl.shown(self.value, "(not shown: DB_URL is not a valid URL)")

    def parse(self) -> dburl.DbUrl:
        """The validated URL, or a ConfigError that names the origin (and refuses .env.example's placeholders)."""
        try:
            url = dburl.parse(self.value)
        except DbUrlError as exc:
            raise ConfigError(f"DB_URL from {self.origin} is invalid: {exc}") from None
        left = dburl.placeholders(url)
        if left:
            raise ConfigError(
                f"DB_URL from {self.origin} still holds the placeholders of .env.example ({', '.join(left)}): "
                "put your database's user, password, host and name there, e.g. "
                "postgresql://trader:<password>@db.internal:5432/mt5_crs with <password> replaced (percent-encode @ : / in it)"
            )
        return url


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file; a line python-dotenv cannot parse is an error, not skipped."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENV_BYTES:
            kind = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"over {MAX_ENV_BYTES} bytes"
            raise ConfigError(f"{path} is {kind}: .env must be a small text file of KEY=value lines")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.__class__.__name__}: fix its permissions or encoding") from None
    from dotenv import dotenv_values  # only for a project with a .env: the import is most of a run's reading
    from dotenv.parser import parse_stream

    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        lines = ", ".join(map(str, bad))
        raise ConfigError(f"{path}: line {lines} is not KEY=value: fix or comment it out (see .env.example)")
    return {key: value for key, value in dotenv_values(stream=io.StringIO(text)).items() if value is not None}


def resolve_db_url(project_root: Path, environ: Mapping[str, str]) -> DbUrlSetting:
    """Find DB_URL: environment, then ``<root>/.env``, then the ``POSTGRES_*`` parts (environment over file)."""
    env_file = project_root / ".env"
    if "DB_URL" in environ:
        return _non_empty(environ["DB_URL"], FROM_ENVIRONMENT)
    file_values = read_dotenv(env_file)
    if "DB_URL" in file_values:
        return _non_empty(file_values["DB_URL"], f"{env_file} (DB_URL)")
    parts = {key: environ.get(key, file_values.get(key, "")) for key in COMPONENTS}
    if any(parts.values()):
        return _from_components(parts, f"the POSTGRES_* variables (environment and {env_file})")
    where = f"{env_file} does not exist" if not env_file.exists() else f"{env_file} has no DB_URL"
    raise ConfigError(
        f"DB_URL is not set ({where}): copy .env.example to .env and set DB_URL, or export DB_URL",
        setting="local_server",
    )


def _non_empty(value: str, origin: str) -> DbUrlSetting:
    if not value.strip():
        raise ConfigError(f"DB_URL in {origin} is empty: set it to {dburl.EXAMPLE}")
    return DbUrlSetting(value.strip(), origin)


def _from_components(parts: Mapping[str, str], origin: str) -> DbUrlSetting:
    missing = [key for key in REQUIRED_COMPONENTS if not parts[key]]
    if missing:
        raise ConfigError(f"DB_URL is not set and {', '.join(missing)} is missing from {origin}: set DB_URL instead")
    url = dburl.build(
        parts["POSTGRES_HOST"],
        parts["POSTGRES_PORT"] or None,
        parts["POSTGRES_USER"] or None,
        parts["POSTGRES_PASSWORD"] or None,
        parts["POSTGRES_DB"],
    )
    return DbUrlSetting(url, origin)


def known_secrets(project_root: Path, environ: Mapping[str, str], shown: Iterable[str] = ()) -> tuple[str, ...]:
    """Every password a run could print: DB_URL's (even malformed), the POSTGRES_* and libpq ones.

    Except one equal to a word the run shows anyway (``shown``: the checked tables; and DB_URL's
    user, hosts, ports, database): masking it there (``***: 50 rows``) would point at the password.
    Where a password stands as one (``user:PW@``, ``password=``) it is still masked, always.
    """
    found = [environ.get(name, "") for name in ("PGPASSWORD", "POSTGRES_PASSWORD")]
    public = set(dburl.words(shown))
    # Each source on its own: an unreadable .env must not hide the password of an exported DB_URL.
    # What cannot be read holds nothing to hide; the checks report the problem themselves.
    try:
        found.append(read_dotenv(project_root / ".env").get("POSTGRES_PASSWORD", ""))
    except ConfigError:
        pass
    try:
        raw = resolve_db_url(project_root, environ).value
    except ConfigError:
        raw = ""
    found += dburl.guess_secrets(raw) if raw else ()
    with contextlib.suppress(DbUrlError):
        public |= dburl.shown_words(dburl.parse(raw)) if raw else set()
    return tuple(sorted({s for s in found if s and s not in public}, key=len, reverse=True))
