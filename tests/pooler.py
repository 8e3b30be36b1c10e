"""A real PgBouncer (Debian's package) in front of the test server, for the audit's safety through a pooler.

Each one is started by the test that needs it, in a folder of its own, on a free loopback port, with
``ignore_startup_parameters = options`` (the setting the audit's own advice names), and stopped after.
It logs in to the server with the client's own SCRAM proof (the role's verifier in its auth file): no
password is written anywhere.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra_audit.core import dburl
from infra_audit.sandbox import pgserver

START_DEADLINE_S = 60  # its start-up on a loaded machine; it normally answers within milliseconds
STOP_DEADLINE_S = 30
READY = b"process up"  # its log line once it listens
PORT_TRIES = 3


def binary() -> str:
    """PgBouncer's path (Debian installs it in /usr/sbin, off an ordinary user's PATH); the test is
    skipped with the command that installs it where it is missing (.ci/run installs it)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which("pgbouncer", path=search)
    if found is None:
        pytest.skip("pgbouncer is not installed (Debian/Ubuntu: apt-get install pgbouncer; .ci/run installs it)")
    return found


@dataclass(frozen=True)
class Pooler:
    """A running PgBouncer: where the audit reaches the database through it."""

    host: str
    port: int
    dbname: str  # the name clients ask for: the same as the server's database

    def url(self, user: str, password: str) -> str:
        return dburl.build(self.host, str(self.port), user, password, self.dbname)


@contextmanager
def pgbouncer(server_port: int, dbname: str, user: str, verifier: str, pool_mode: str) -> Iterator[Pooler]:
    """PgBouncer in ``pool_mode`` for ``dbname`` on the server at 127.0.0.1:``server_port``, up to two server
    connections (the audit and its health check at once); one at rest is the next client's."""
    os_user = pgserver.server_os_user()
    folder = Path(tempfile.mkdtemp(prefix="infra-selftest-pgbouncer-"))
    running = None
    try:
        os.chmod(folder, 0o755)  # its OS user reads its files (pgbouncer refuses to run as root)
        (folder / "userlist.txt").write_text(f'"{user}" "{verifier}"\n')
        for attempt in range(PORT_TRIES):  # a free port can be taken before it binds it
            port = pgserver.free_port()
            (folder / "pgbouncer.ini").write_text(
                f"[databases]\n{dbname} = host={pgserver.HOST} port={server_port} dbname={dbname}\n"
                f"[pgbouncer]\nlisten_addr = {pgserver.HOST}\nlisten_port = {port}\nunix_socket_dir =\n"
                f"auth_type = scram-sha-256\nauth_file = {folder / 'userlist.txt'}\npool_mode = {pool_mode}\n"
                "ignore_startup_parameters = options\ndefault_pool_size = 2\nmax_client_conn = 20\n"
            )
            for name in ("userlist.txt", "pgbouncer.ini"):
                os.chmod(folder / name, 0o600)
                os.chown(folder / name, os_user.pw_uid, os_user.pw_gid)
            running = _Running.start(folder, os_user.pw_name)
            if running.up.wait(START_DEADLINE_S) and READY in running.log:
                break
            log = running.stop()
            if "Address already in use" not in log or attempt == PORT_TRIES - 1:
                pytest.fail(f"pgbouncer did not come up within {START_DEADLINE_S} s: {log}")
        yield Pooler(pgserver.HOST, port, dbname)
    finally:
        if running is not None:
            running.stop()
        shutil.rmtree(folder, ignore_errors=True)


class _Running:
    """The process, and a thread that reads its log (so it never blocks on a full pipe) and says when it is up."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.up, self.log = process, threading.Event(), bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @classmethod
    def start(cls, folder: Path, os_user: str) -> _Running:
        command = [binary(), str(folder / "pgbouncer.ini")]
        if pwd.getpwuid(os.geteuid()).pw_name != os_user:
            command = ["runuser", "-u", os_user, "--", *command]
        return cls(
            subprocess.Popen(
                command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )

    def _read(self) -> None:
        for line in self.process.stdout:
            self.log += line
            if READY in line:
                self.up.set()
        self.up.set()  # it ended: whoever waits looks at the process

    def stop(self) -> str:
        """End it (if it still runs) and return its log."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=STOP_DEADLINE_S)
        self.reader.join(timeout=STOP_DEADLINE_S)
        return self.log.decode(errors="replace")
