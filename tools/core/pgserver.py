"""A private PostgreSQL cluster in a folder: initdb, start, stop, on 127.0.0.1 only.

The sandbox runs one for a newcomer. The server listens on loopback only, with scram-sha-256
for TCP and a random superuser password kept in a 0600 file; run as root, it runs as the
unprivileged ``postgres`` user (PostgreSQL refuses root). Every step has a deadline.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.core import dburl
from tools.core.errors import SandboxError
from tools.core.text import last_line

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SERVER_OS_USER = "postgres"  # who runs the server when we are root: PostgreSQL refuses root
PG_CTL_WAIT = 60
MAX_SOCKET_PATH = 107
INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install "
    "postgresql-server; macOS: brew install postgresql), or name the folder holding initdb and pg_ctl"
)


@dataclass(frozen=True)
class Cluster:
    """A cluster in ``folder`` (data/, run/, server.log, superuser.pw), run by ``os_user`` with ``bindir``'s binaries."""

    folder: Path
    bindir: Path
    os_user: str
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def sockets(self) -> Path:
        return self.folder / "run"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def pwfile(self) -> Path:
        return self.folder / "superuser.pw"

    @property
    def where(self) -> str:
        return f"{HOST}:{self.port}"

    def superuser_url(self) -> str:
        """The superuser's URL (it holds the password: never show it, pass it to psycopg only)."""
        return dburl.build(HOST, str(self.port), SUPERUSER, self.pwfile.read_text().strip(), "postgres")

    def is_running(self) -> bool:
        return self.data.is_dir() and self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        done = self._pg_ctl("start", "-w", "-t", str(PG_CTL_WAIT), "-l", str(self.log))
        if done.returncode != 0:
            reason = last_line(self.log.read_text() if self.log.exists() else done.stderr)
            raise SandboxError(f"PostgreSQL did not start on {self.where} ({reason}): see {self.log}")

    def stop(self) -> None:
        """Stop without a shutdown checkpoint (the data is thrown away next), and return once it has exited."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        done = self._pg_ctl("stop", "-m", "immediate", "-w", "-t", str(PG_CTL_WAIT))
        if done.returncode != 0:
            raise SandboxError(f"pg_ctl stop failed ({last_line(done.stderr)}): see {self.log}")
        deadline = time.monotonic() + PG_CTL_WAIT
        while process_exists(pid):  # pg_ctl returns when the pid file is gone, a moment before the exit
            if time.monotonic() > deadline:
                raise SandboxError(f"PostgreSQL (pid {pid}) is still running {PG_CTL_WAIT} s after stop: kill {pid}")
            time.sleep(0.05)

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        return run_as(self.os_user, command, self.folder, timeout=PG_CTL_WAIT + 10)


def init_cluster(folder: Path, bindir: Path, user: pwd.struct_passwd) -> Cluster:
    """initdb into ``folder/data`` with password auth for TCP and a random superuser password.

    ``folder`` must be the caller's own (made by it); ``folder/data`` must not exist yet.
    """
    cluster = Cluster(folder, bindir, user.pw_name, free_port())
    if os.path.lexists(cluster.data):
        raise SandboxError(f"{cluster.data} already exists and was not made by this run: move it away, then retry")
    prepare_folder(folder, user)
    write_private(cluster.pwfile, secrets.token_urlsafe(24) + "\n", (user.pw_uid, user.pw_gid))
    done = run_as(user.pw_name, [str(bindir / "initdb"), "-D", str(cluster.data), "-U", SUPERUSER,
                                 "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={cluster.pwfile}",
                                 "--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync"],
                  folder, timeout=180)  # fmt: skip
    if done.returncode != 0:
        if cluster.data.is_dir():  # it did not exist before initdb: this run made it
            shutil.rmtree(cluster.data, ignore_errors=True)
        raise SandboxError(f"initdb failed: {last_line(done.stderr)}")
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write(server_conf(cluster.port, cluster.sockets))
    return cluster


def find_bindir(pg_bin: Path | None) -> Path:
    """The folder with initdb and pg_ctl, or a SandboxError naming what to install."""
    if pg_bin is None:
        try:
            found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            raise SandboxError(f"PostgreSQL binaries not found (no working pg_config on PATH): {INSTALL_HINT}",
                               setting="pg_bin") from None
        pg_bin = Path(found.stdout.strip())
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (pg_bin / name).is_file()]
    if missing:
        raise SandboxError(f"{pg_bin} has no {', '.join(missing)}: {INSTALL_HINT}", setting="pg_bin")
    return pg_bin


def server_os_user() -> pwd.struct_passwd:
    """Who runs the server: ourselves, or the unprivileged `postgres` user when we are root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise SandboxError(
            f"running as root, but there is no '{SERVER_OS_USER}' OS user to run PostgreSQL: create one "
            f"(useradd --system {SERVER_OS_USER}) or run as an ordinary user"
        ) from None


def run_as(user: str, command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a server command as the server's OS user (runuser when we are root and it is not)."""
    label = Path(command[0]).name
    if pwd.getpwuid(os.geteuid()).pw_name != user:
        if os.geteuid() != 0:
            raise SandboxError(f"this server runs as '{user}': run this command as root (or as {user})")
        command = ["runuser", "-u", user, "--", *command]
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{label} took over {timeout:g} s: see {cwd}") from None


def unreachable_ancestor(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first folder above path that the user (uid, gids) may not enter, if any."""
    for folder in reversed(path.parents):
        mode = folder.stat()
        if mode.st_uid == uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in gids:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def prepare_folder(folder: Path, user: pwd.struct_passwd) -> None:
    """Create the cluster's folder for the server's user, and make sure that user can reach it."""
    blocked = unreachable_ancestor(folder, user.pw_uid, set(os.getgrouplist(user.pw_name, user.pw_gid)))
    if blocked is not None:
        raise SandboxError(
            f"the '{user.pw_name}' user cannot enter {blocked}, so PostgreSQL cannot use {folder}: "
            f"allow it (chmod o+x {blocked}) or use a folder elsewhere",
            setting="server",
        )
    for path in (folder, folder / "run"):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)


def server_conf(port: int, sockets: Path) -> str:
    """Settings appended to postgresql.conf: loopback only, our port, sockets inside the folder.

    A socket path longer than the kernel allows (107 bytes) would stop the server from starting;
    then it listens on TCP only, which is all we use.
    """
    quoted = str(sockets).replace("'", "''") if len(f"{sockets}/.s.PGSQL.{port}") <= MAX_SOCKET_PATH else ""
    return f"\n# tools/core/pgserver.py\nlisten_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{quoted}'\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a file only its owner may read (it holds a password), optionally handing it to owner."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that was already there
    if owner is not None:
        os.chown(path, *owner)


def process_exists(pid: int) -> bool:
    """Whether pid is still running; an exited one that nobody has reaped yet (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill() said it exists
