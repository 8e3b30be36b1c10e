"""tools/sandbox.py run as a user runs it: real servers, real files, real processes; no mocks."""

from __future__ import annotations

import json
import os
import pwd
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

from tests.support import REPO, clean_env
from tools import sandbox
from tools.core import dburl, pgserver, seed

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


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "sandbox.py"), *args, "--root", str(root)],
        env=clean_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def env_url(root: Path) -> dburl.DbUrl:
    lines = [line for line in (root / ".env").read_text().splitlines() if line.startswith("DB_URL=")]
    assert len(lines) == 1
    return dburl.parse(lines[0].removeprefix("DB_URL="))


def postmaster_pid(root: Path) -> int:
    return int((root / ".sandbox" / "data" / "postmaster.pid").read_text().split()[0])


def process_owner(pid: int) -> str:
    return pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name


def counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url, connect_timeout=5) as conn:
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
    assert "next: pytest infra_tests" in report["log"]
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert counts(url.raw) == (seed.SPEC_MARKET_DATA_ROWS, seed.SPEC_ASSETS_ROWS)
    with psycopg.connect(url.raw, connect_timeout=5) as conn:
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
    (root / ".env").write_text("# mine\nAPI_KEY=abc\nDB_URL=postgresql://me:hunter2@db.example:5432/prod\n")
    refused = cli(root, "start")
    assert_one_line_error(refused, "--force", "postgresql://me:***@db.example:5432/prod")
    assert "hunter2" not in refused.stderr + refused.stdout
    assert "hunter2" in (root / ".env").read_text()

    forced = cli(root, "start", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "hunter2" not in forced.stdout + forced.stderr
    text = (root / ".env").read_text()
    assert text.startswith("# mine\nAPI_KEY=abc\n# DB_URL=postgresql://me:hunter2@db.example:5432/prod  # set aside")
    assert env_url(root).user == "trader", "the sandbox's DB_URL is the one in force"
    assert counts(env_url(root).raw) == (seed.SPEC_MARKET_DATA_ROWS, seed.SPEC_ASSETS_ROWS)


def test_stop_leaves_no_server_and_no_data(started) -> None:
    root, _ = started
    pid, url = postmaster_pid(root), env_url(root).raw
    mine = "KEEP=1\nDB_URL=postgresql://me:hunter2@db.example:5432/prod\n"
    (root / ".env").write_text(sandbox.with_db_url(mine, url, set_aside=True))  # as `start --force` leaves it
    stopped = cli(root, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not pgserver.process_exists(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert not (root / ".sandbox").exists()
    assert (root / ".env").read_text() == mine, "stop gives the user's own DB_URL back, exactly"
    assert cli(root, "status").returncode == 1


def test_missing_binaries_name_what_to_install(root: Path, tmp_path: Path) -> None:
    done = cli(root, "start", "--pg-bin", str(tmp_path))
    assert_one_line_error(done, "initdb", "apt-get install postgresql", "--server")
    assert not (root / ".env").exists()


def test_unreachable_server_is_one_line_without_password(root: Path) -> None:
    closed = pgserver.free_port()
    done = cli(root, "start", "--server", f"postgresql://admin:s3cr3t-pw@127.0.0.1:{closed}/postgres")
    assert_one_line_error(done, "cannot reach the database")
    assert "s3cr3t-pw" not in done.stdout + done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data folder to another user")
def test_folder_the_server_user_cannot_enter_is_named() -> None:
    with tempfile.TemporaryDirectory() as private:  # mode 0700, owned by root
        project = Path(private) / "project"
        project.mkdir()
        done = cli(project, "start", *SMALL)
        assert not (project / ".sandbox").exists()
    assert_one_line_error(done, f"cannot enter {private}", "chmod o+x")


@pytest.fixture
def admin_url(pg_server) -> str:
    return dburl.build(pg_server.host, str(pg_server.port), pg_server.user, pg_server.password, "postgres")


def admin_query(admin_url: str, query: str) -> list[tuple]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        cursor = admin.execute(query)
        return cursor.fetchall() if cursor.description else []


def test_server_mode_creates_seeds_and_drops(root: Path, admin_url: str) -> None:
    started = cli(root, "start", "--server", admin_url, *SMALL)
    assert started.returncode == 0, started.stderr
    url = env_url(root)
    assert url.hosts[0] == (dburl.parse(admin_url).hosts[0][0], dburl.parse(admin_url).hosts[0][1])
    assert counts(url.raw) == (500, 10)
    assert cli(root, "status").returncode == 0

    (root / ".env").unlink()  # the next start must re-password the role and write a working URL
    again = cli(root, "start", "--server", admin_url, *SMALL)
    assert again.returncode == 0, again.stderr
    assert env_url(root).password != url.password and counts(env_url(root).raw) == (500, 10)

    stopped = cli(root, "stop", "--server", admin_url)
    assert stopped.returncode == 0, stopped.stderr
    assert admin_query(admin_url, "SELECT 1 FROM pg_database WHERE datname = 'mt5_crs'") == []
    assert admin_query(admin_url, "SELECT 1 FROM pg_roles WHERE rolname = 'trader'") == []
    assert list(root.iterdir()) == []  # .sandbox/ and the .env it wrote are gone


def test_server_mode_leaves_a_foreign_database_alone(root: Path, admin_url: str) -> None:
    """A server that already has a real mt5_crs must not get it truncated, re-owned or dropped."""
    try:
        admin_query(admin_url, "CREATE DATABASE mt5_crs")
        (root / ".env").write_text("DB_URL=postgresql://trader:pw@127.0.0.1:5432/mt5_crs\n")
        started = cli(root, "start", "--server", admin_url, "--force", *SMALL)
        assert_one_line_error(started, "database 'mt5_crs' already exists", "not the sandbox's")
        stopped = cli(root, "stop", "--server", admin_url)
        assert_one_line_error(stopped, "database 'mt5_crs' already exists")
        assert admin_query(admin_url, "SELECT 1 FROM pg_database WHERE datname = 'mt5_crs'") == [(1,)]
    finally:
        admin_query(admin_url, "DROP DATABASE IF EXISTS mt5_crs")
        admin_query(admin_url, "DROP ROLE IF EXISTS trader")


@pytest.mark.parametrize(
    ("existing", "port", "force", "expected"),
    [
        (None, None, False, "write"),
        ("postgresql://trader:pw@127.0.0.1:5555/mt5_crs", 5555, False, "keep"),
        ("postgresql://trader:pw@127.0.0.1:5555/mt5_crs", 6666, False, "refuse"),
        ("postgresql://trader@127.0.0.1:5555/mt5_crs", 5555, False, "refuse"),  # no password to keep
        ("postgresql://trader:pw@127.0.0.1:5555/mt5_crs", None, False, "refuse"),
        ("postgresql://other:pw@db:5432/x", None, True, "write"),
        ("not a url", 5555, False, "refuse"),
    ],
)
def test_env_decision(existing, port, force, expected) -> None:
    target = sandbox.Target("127.0.0.1", port) if port else None
    assert sandbox.env_decision(existing, target, force) == expected


def test_env_text_keeps_other_lines() -> None:
    text = "A=1\n# note\nexport DB_URL=old\nB=2"
    assert sandbox.with_db_url(text, "new") == "A=1\n# note\nB=2\nDB_URL=new\n"
    forced = sandbox.with_db_url(text, "new", set_aside=True)
    assert forced.endswith("\nB=2\nDB_URL=new\n") and "# export DB_URL=old  # set aside" in forced
    assert sandbox.without_db_url(forced) == "A=1\n# note\nexport DB_URL=old\nB=2\n", "stop restores it exactly"
    assert sandbox.with_db_url("", "new") == "DB_URL=new\n"
    assert sandbox.without_db_url(text) == "A=1\n# note\nB=2\n"
    assert sandbox.without_db_url("DB_URL=x\n") == ""


def test_long_socket_folder_falls_back_to_tcp_only() -> None:
    assert "unix_socket_directories = '/short/run'" in pgserver.server_conf(5432, Path("/short/run"))
    assert "unix_socket_directories = ''" in pgserver.server_conf(5432, Path("/" + "x" * 100))
