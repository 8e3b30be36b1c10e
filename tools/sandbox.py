"""A throwaway PostgreSQL seeded like production, so a fresh clone gets a green audit.

    python tools/sandbox.py [start]   # private server in .sandbox/, or --server ADMIN_URL
    python tools/sandbox.py status    # exit 0 when it runs, 1 when not
    python tools/sandbox.py stop      # stop the server and delete .sandbox/

Every failure is one line saying what is wrong and what to do; passwords are never shown.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: import `tools` from this checkout

from tools import _cli  # noqa: E402
from tools.core import db_config, dburl, pgserver, seed  # noqa: E402
from tools.core.errors import ConfigError, DbUrlError, SandboxError  # noqa: E402
from tools.core.pgserver import HOST, write_private  # noqa: E402
from tools.core.text import first_line, last_line  # noqa: E402

DBNAME = "mt5_crs"
ROLE = "trader"
MARKER = "made by tools/sandbox.py"  # comment on the role and database: only these are ever changed
ROLE_COMMENT_SQL = "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s"
DATABASE_COMMENT_SQL = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s"
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT_MS = 15_000
TOOL = "sandbox.py"
FLAGS = {"pg_bin": "--pg-bin DIR, or use an existing server with --server ADMIN_URL",
         "server": "or use an existing server with --server ADMIN_URL"}  # fmt: skip
_DB_URL_LINE = re.compile(r"^\s*(export\s+)?DB_URL\s*=")
SET_ASIDE = "  # set aside by tools/sandbox.py start --force; `sandbox.py stop` restores it"


@dataclass(frozen=True)
class Paths:
    """Where the sandbox keeps things: .sandbox/ (git-ignored) and .env, under the project root."""

    root: Path
    sandbox: Path
    state: Path
    env: Path

    @classmethod
    def under(cls, root: Path) -> Paths:
        box = root / ".sandbox"
        return cls(root, box, box / "state.json", root / ".env")


@dataclass(frozen=True)
class State:
    """What `start` set up, so `status` and `stop` (and a second `start`) know where it is."""

    mode: str  # "local": our own server; "server": a database on someone else's
    host: str
    port: int
    os_user: str | None = None
    pg_bin: str | None = None
    server: str | None = None  # the admin URL, redacted

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Target:
    """The database the audit will use: what DB_URL must point at."""

    host: str
    port: int

    def url(self, password: str) -> str:
        return dburl.build(self.host, str(self.port), ROLE, password, DBNAME)

    def matches(self, url: str) -> bool:
        """Whether an existing DB_URL is this sandbox's (then it is ours to keep or update)."""
        try:
            parsed = dburl.parse(url)
        except DbUrlError:
            return False
        same = (parsed.user, parsed.dbname, parsed.hosts[:1]) == (ROLE, DBNAME, ((self.host, self.port),))
        return same and bool(parsed.password)


class Reporter:
    """Says what happened: a line at a time, or one JSON object at the end with --json."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.facts: dict[str, object] = {}
        self.lines: list[str] = []

    def say(self, line: str, **facts: object) -> None:
        self.facts.update(facts)
        self.lines.append(line)
        if not self.as_json:
            print(line, flush=True)


# ---- pure logic -------------------------------------------------------------------------------


def env_decision(existing: str | None, target: Target | None, force: bool) -> str:
    """What to do with DB_URL in .env: "write" a new one, "keep" ours, or "refuse" to replace another."""
    if existing is None or force:
        return "write"
    if target is not None and target.matches(existing):
        return "keep"
    return "refuse"


def with_db_url(text: str, url: str, set_aside: bool = False) -> str:
    """.env text with DB_URL set to url, every other line kept as it was.

    With ``set_aside`` (``--force`` over somebody else's DB_URL) the old line stays, commented
    out and marked, so that ``stop`` can put it back: nothing the user wrote is lost.
    """
    lines = []
    for line in text.splitlines():
        if not _DB_URL_LINE.match(line):
            lines.append(line)
        elif set_aside:
            lines.append(f"# {line}{SET_ASIDE}")
    return "\n".join([*lines, f"DB_URL={url}"]) + "\n"


def without_db_url(text: str) -> str:
    """.env text with the sandbox's DB_URL line(s) removed and any set-aside DB_URL restored."""
    lines = []
    for line in text.splitlines():
        if line.startswith("# ") and line.endswith(SET_ASIDE):
            lines.append(line[2 : -len(SET_ASIDE)])
        elif not _DB_URL_LINE.match(line):
            lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _cli.Parser(
        prog=TOOL,
        description="A PostgreSQL sandbox seeded like production (mt5_crs), with DB_URL written to .env.",
    )
    parser.add_argument("command", nargs="?", default="start", choices=("start", "stop", "status"))
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the project root (default: the folder above tools/)")  # fmt: skip
    parser.add_argument("--pg-bin", type=Path, help="folder with initdb and pg_ctl (default: pg_config --bindir)")
    parser.add_argument("--server", metavar="ADMIN_URL",
                        help="create the sandbox database on this existing server instead of starting one")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an existing DB_URL in .env")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.add_argument("--market-data-rows", type=int, default=seed.SPEC_MARKET_DATA_ROWS,
                        help="seed size (default: the spec's %(default)s); smaller for a quick try")  # fmt: skip
    parser.add_argument("--assets-rows", type=int, default=seed.SPEC_ASSETS_ROWS, help="default: %(default)s")
    return parser.parse_args(argv)


# ---- files --------------------------------------------------------------------------------------


def load_state(paths: Paths) -> State | None:
    try:
        return State(**json.loads(paths.state.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise SandboxError(f"{paths.state} is unreadable ({exc.__class__.__name__}): run `stop` to clear it") from None


def save_state(paths: Paths, state: State) -> None:
    paths.state.write_text(json.dumps(asdict(state), indent=2) + "\n")


def existing_db_url(paths: Paths) -> str | None:
    try:
        return db_config.read_dotenv(paths.env).get("DB_URL")
    except ConfigError as exc:
        raise SandboxError(str(exc)) from None


def write_env(paths: Paths, text: str) -> None:
    """Replace .env atomically; a root run in a user's clone leaves it to that user."""
    temporary = paths.env.with_name(".env.sandbox-tmp")
    root = paths.root.stat()
    write_private(temporary, text, (root.st_uid, root.st_gid) if os.geteuid() == 0 else None)
    os.replace(temporary, paths.env)


def read_env_text(paths: Paths) -> str:
    return paths.env.read_text() if paths.env.exists() else ""


def cluster_of(paths: Paths, state: State) -> pgserver.Cluster:
    return pgserver.Cluster(paths.sandbox, Path(state.pg_bin), state.os_user, state.port)


# ---- the database ---------------------------------------------------------------------------------


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """A connection with deadlines: connecting, and each statement (seeding sets its own)."""
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT,
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}", **kwargs)  # fmt: skip


def ensure_role(admin: psycopg.Connection, password: str) -> str:
    """Create the login role, or set its password again (the .env one, or a new one)."""
    exists = exists_as_ours(admin, "role", ROLE, ROLE_COMMENT_SQL)
    verb = "ALTER" if exists else "CREATE"
    admin.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(password)))  # fmt: skip
    admin.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(ROLE), sql.Literal(MARKER)))
    return f"{'updated' if exists else 'created'} login role {ROLE} (not a superuser)"


def ensure_database(admin: psycopg.Connection) -> str:
    """Create the database, owned by the login role so the seeded tables are its own."""
    if exists_as_ours(admin, "database", DBNAME, DATABASE_COMMENT_SQL):
        return f"database {DBNAME} exists"
    admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DBNAME), sql.Identifier(ROLE)))
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(DBNAME), sql.Literal(MARKER)))
    return f"created database {DBNAME}"


def exists_as_ours(admin: psycopg.Connection, kind: str, name: str, comment_query: str) -> bool:
    """Whether the sandbox's object exists; one of that name we did not make stops everything."""
    row = admin.execute(comment_query, (name,)).fetchone()
    if row is not None and row[0] != MARKER:
        raise SandboxError(f"{kind} '{name}' already exists on that server and is not the sandbox's: "
                           "leave it alone and use another server")  # fmt: skip
    return row is not None


def drop_role_and_database(admin: psycopg.Connection) -> None:
    """Undo ensure_role and ensure_database, for `stop --server`; never drops what we did not make."""
    if exists_as_ours(admin, "database", DBNAME, DATABASE_COMMENT_SQL):
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DBNAME)))
    if exists_as_ours(admin, "role", ROLE, ROLE_COMMENT_SQL):
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def row_counts(conn: psycopg.Connection) -> tuple[int, int] | None:
    """(market_data, assets) exact counts, or None when the tables are not there yet."""
    if conn.execute("SELECT to_regclass('market_data') IS NULL OR to_regclass('assets') IS NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT (SELECT count(*) FROM market_data), (SELECT count(*) FROM assets)").fetchone()


def seed_if_needed(url: str, market_data_rows: int, assets_rows: int, report: Reporter) -> None:
    """Seed as the owning role (so it owns the tables); skip when the counts already match."""
    with connect(url, autocommit=True) as conn:
        if row_counts(conn) == (market_data_rows, assets_rows):
            report.say(f"{DBNAME} already seeded: market_data {market_data_rows:,} rows, assets {assets_rows:,}")
            return
        started = time.monotonic()
        seed.seed(conn, market_data_rows=market_data_rows, assets_rows=assets_rows)
        seconds = time.monotonic() - started
    report.say(f"seeded {DBNAME}: market_data {market_data_rows:,} rows, assets {assets_rows:,} ({seconds:.1f} s)",
               seed_seconds=round(seconds, 2))  # fmt: skip


# ---- commands ---------------------------------------------------------------------------------------


def start(args: argparse.Namespace, paths: Paths, report: Reporter) -> int:
    seed.seed_params(market_data_rows=args.market_data_rows, assets_rows=args.assets_rows, now=None)
    state = load_state(paths)
    existing = existing_db_url(paths)
    if args.server:
        return start_on_server(args, paths, state, existing, report)
    if state is not None and state.mode != "local":
        raise SandboxError(f"the sandbox lives on {state.server}: run `stop` first to use a local server")
    if state is not None and not (cluster_of(paths, state).data / "PG_VERSION").exists():
        state = None  # nothing (or a broken leftover) to reuse: initialise afresh
    target = Target(HOST, state.port) if state else None
    decision = refuse_or(env_decision(existing, target, args.force), existing, paths)
    if state is None:
        state = init_local(args, paths, report)
    cluster = cluster_of(paths, state)
    if cluster.is_running():
        report.say(f"PostgreSQL already running on {state.where}", running=True)
    else:
        cluster.start()
        report.say(f"started PostgreSQL on {state.where} (server runs as {state.os_user})", running=True)
    with connect(cluster.superuser_url(), autocommit=True) as admin:
        return finish_start(args, paths, Target(HOST, state.port), admin, decision, existing, report)


def init_local(args: argparse.Namespace, paths: Paths, report: Reporter) -> State:
    bindir = pgserver.find_bindir(args.pg_bin)
    cluster = pgserver.init_cluster(paths.sandbox, bindir, pgserver.server_os_user())
    state = State("local", HOST, cluster.port, os_user=cluster.os_user, pg_bin=str(bindir))
    save_state(paths, state)
    report.say(f"initialised a PostgreSQL cluster in {cluster.data} ({bindir})", data=str(cluster.data))
    return state


def start_on_server(args: argparse.Namespace, paths: Paths, state: State | None, existing: str | None, report: Reporter) -> int:
    admin_url = parse_url(args.server, "--server")
    if state is not None and state.mode == "local":
        raise SandboxError(f"a local sandbox exists in {paths.sandbox}: run `stop` first to use --server")
    host, port = (admin_url.hosts[0] if admin_url.hosts else (admin_url.param("host") or "localhost", None))
    target = Target(host, port or 5432)
    decision = refuse_or(env_decision(existing, target, args.force), existing, paths)
    with connect(args.server, autocommit=True) as admin:
        paths.sandbox.mkdir(mode=0o700, exist_ok=True)
        save_state(paths, State("server", target.host, target.port, server=admin_url.redacted))
        report.say(f"using the server {admin_url.redacted}", running=True)
        return finish_start(args, paths, target, admin, decision, existing, report)


def refuse_or(decision: str, existing: str | None, paths: Paths) -> str:
    if decision == "refuse":
        raise SandboxError(
            f"{paths.env} already sets DB_URL={dburl.redact(existing)}: pass --force to replace it with the sandbox's"
        )
    return decision


def finish_start(args: argparse.Namespace, paths: Paths, target: Target, admin: psycopg.Connection, decision: str,
                 existing: str | None, report: Reporter) -> int:  # fmt: skip
    """Role, database, seed and .env: the part both modes share."""
    password = dburl.parse(existing).password if decision == "keep" else secrets.token_urlsafe(24)
    report.say(ensure_role(admin, password))
    report.say(ensure_database(admin))
    url = target.url(password)
    seed_if_needed(url, args.market_data_rows, args.assets_rows, report)
    if decision == "keep":
        report.say(f"{paths.env} already points at the sandbox", db_url=dburl.redact(url))
    else:
        foreign = existing is not None and not target.matches(existing)
        write_env(paths, with_db_url(read_env_text(paths), url, set_aside=foreign))
        if foreign:
            report.say(f"set your DB_URL={dburl.redact(existing)} aside in {paths.env}: `stop` restores it")
        report.say(f"wrote DB_URL={dburl.redact(url)} to {paths.env} (mode 0600)", db_url=dburl.redact(url))
    if "DB_URL" in os.environ:
        report.say("note: DB_URL is set in your environment and wins over .env: unset it to use the sandbox")
    report.say("next: pytest infra_tests")
    return 0


def parse_url(url: str, origin: str) -> dburl.DbUrl:
    try:
        return dburl.parse(url)
    except DbUrlError as exc:
        raise SandboxError(f"{origin}: {exc}") from None


def status(args: argparse.Namespace, paths: Paths, report: Reporter) -> int:
    state = load_state(paths)
    if state is None:
        report.say(f"no sandbox in {paths.sandbox}: run `python tools/sandbox.py start`", running=False)
        return 1
    if state.mode == "local":
        cluster = cluster_of(paths, state)
        running = cluster.is_running()
        where = f"PostgreSQL on {state.where}, data in {cluster.data}, server user {state.os_user}"
    else:
        running = reachable(existing_db_url(paths))
        where = f"database {DBNAME} on {state.server}"
    report.say(f"{'running' if running else 'not running'}: {where}", running=running, where=state.where)
    return 0 if running else 1


def reachable(url: str | None) -> bool:
    if url is None:
        return False
    try:
        connect(url).close()
    except psycopg.Error:
        return False
    return True


def stop(args: argparse.Namespace, paths: Paths, report: Reporter) -> int:
    state = load_state(paths)
    if state is not None and state.mode == "local" and cluster_of(paths, state).is_running():
        cluster_of(paths, state).stop()
        report.say(f"stopped PostgreSQL on {state.where}")
    if state is not None and state.mode == "server":
        stop_on_server(args, state, report)
    forget_db_url(paths, state, report)
    if paths.sandbox.exists():
        remove_folder(paths.sandbox)
        report.say(f"removed {paths.sandbox}")
    elif state is None:
        report.say("no sandbox to stop")
    report.facts["running"] = False
    return 0


def stop_on_server(args: argparse.Namespace, state: State, report: Reporter) -> None:
    if not args.server:
        report.say(f"left database {DBNAME} and role {ROLE} on {state.server}: `stop --server ADMIN_URL` drops them")
        return
    parse_url(args.server, "--server")
    with connect(args.server, autocommit=True) as admin:
        drop_role_and_database(admin)
    report.say(f"dropped database {DBNAME} and role {ROLE} on {state.server}")


def forget_db_url(paths: Paths, state: State | None, report: Reporter) -> None:
    """Take the sandbox's DB_URL out of .env: it would point at nothing. Anyone else's stays."""
    existing = existing_db_url(paths)
    if state is None or existing is None or not Target(state.host, state.port).matches(existing):
        return
    rest = without_db_url(read_env_text(paths))
    if rest:
        write_env(paths, rest)
    else:
        paths.env.unlink()
    report.say(f"removed the sandbox's DB_URL from {paths.env}")


def remove_folder(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise SandboxError(f"cannot remove {folder} ({exc.strerror}): run `stop` as the user who ran `start`") from None


COMMANDS = {"start": start, "stop": stop, "status": status}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = Reporter(args.json)

    def work() -> _cli.Result:
        try:
            code = COMMANDS[args.command](args, Paths.under(args.root.resolve()), report)
        except (psycopg.Error, ValueError) as exc:  # the CLI's edge: one clear line, never a traceback
            raise SandboxError(dburl.redact(describe(exc))) from None
        except KeyboardInterrupt:
            report.say("interrupted: run `python3 tools/sandbox.py stop` to clean up")
            raise
        return _cli.Result(code, {**report.facts, "log": report.lines})

    return _cli.run(TOOL, work, as_json=args.json, secrets=lambda: dburl.guess_secrets(args.server or ""),
                    setting_names=FLAGS)


def describe(exc: Exception) -> str:
    """One line for any failure: ours say what to do; others at least say what broke."""
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"not allowed: {last_line(str(exc))}: the --server role needs CREATEROLE and CREATEDB"
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return f"cannot reach the database: {first_line(str(exc))}"
    if isinstance(exc, psycopg.Error):
        return f"database error: {last_line(str(exc))}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return f"unexpected {exc.__class__.__name__}: {last_line(str(exc))}"


if __name__ == "__main__":
    sys.exit(main())
