"""A throwaway PostgreSQL 15 cluster for tests and benchmarks, on 127.0.0.1 only.

    with PgCluster() as cluster:              # initdb + pg_ctl start, in a temp dir
        url = cluster.create_database("t1")   # postgresql://postgres@127.0.0.1:PORT/t1
        cluster.terminate_backends("ygg-daemon")
        cluster.restart()                     # pg_ctl restart -m immediate
        cluster.halt(); cluster.resume()      # down (pg_ctl stop -m fast), then up again

The binaries are Debian's (`/usr/lib/postgresql/15/bin`, package postgresql-15). PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` user (else `nobody`).
Durability against an OS crash is off (fsync, full_page_writes): a test cluster trades it for
speed. A server crash (`restart("immediate")`) loses nothing acknowledged, though: with fsync off,
synchronous_commit costs next to nothing, while turning it off loses the last ~200 ms of commits
to an immediate shutdown (their WAL is still in shared memory), which fault tests would count as
lost work. `PgCluster(synchronous_commit=False)` has that mode when a test wants it.

The cluster is stopped by stop(), by an atexit hook, and, should this process die without
either (SIGKILL, os._exit), by a small guard process that waits for this one to go away.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import psycopg
from psycopg import sql

# YGG_PG_BIN points elsewhere (another install; or nowhere, to see the tier skip or fail).
PG_BIN = Path(os.environ.get("YGG_PG_BIN") or "/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
CTL_TIMEOUT_S = 60  # pg_ctl's own wait for start, stop and restart
COMMAND_TIMEOUT_S = 90.0  # our wait for pg_ctl and initdb, a little beyond theirs
CONNECT_TIMEOUT_S = 10
TERMINATE_WAIT_MS = 5000  # pg_terminate_backend's wait for each backend to exit
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
    "logging_collector": "off",
    "log_min_messages": "warning",
}
HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
# The guard: blocks on a pipe from the test process; EOF means that process is gone (or done),
# and whatever postmaster is still recorded in the data dir gets an immediate shutdown.
GUARD = """
import os, signal, sys, time, shutil
signal.signal(signal.SIGINT, signal.SIG_IGN)
data, root = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
try:
    pid = int(open(os.path.join(data, "postmaster.pid")).readline())
except (OSError, ValueError):
    pid = 0
for sig, wait_s in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
    if not pid:
        break
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        break
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid = 0
            break
        time.sleep(0.05)
shutil.rmtree(root, ignore_errors=True)
"""


class PgClusterError(RuntimeError):
    """initdb or pg_ctl failed; the message carries its output and the server log's tail."""


@dataclass(frozen=True)
class Backend:
    """One client connection as pg_stat_activity shows it."""

    pid: int
    application_name: str
    datname: str | None
    usename: str | None
    state: str | None
    client_port: int | None = None  # the client's TCP port: which process holds it


BackendFilter = str | Callable[[Backend], bool] | None


def missing_binaries(bin_dir: Path = PG_BIN) -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    for name in ("initdb", "pg_ctl", "postgres"):
        if not os.access(bin_dir / name, os.X_OK):
            return f"{bin_dir / name} is missing (apt-get install postgresql-15)"
    if os.geteuid() == 0 and _run_as() is None:
        return "running as root and neither a `postgres` nor a `nobody` user exists"
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _matches(backend: Backend, which: BackendFilter) -> bool:
    if which is None:
        return True
    if isinstance(which, str):
        return backend.application_name == which
    return which(backend)


class PgCluster:
    """One PostgreSQL cluster in its own temp dir; see the module's docstring."""

    def __init__(
        self,
        bin_dir: Path = PG_BIN,
        base_dir: Path | None = None,
        *,
        synchronous_commit: bool = True,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.synchronous_commit = synchronous_commit
        self.settings = dict(settings or {})  # beyond SETTINGS, e.g. to load an extension
        self.port = 0
        self.root: Path | None = None
        self._user = _run_as() if os.geteuid() == 0 else None
        self._guard: subprocess.Popen[bytes] | None = None

    # -- paths and addresses

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "sock"

    @property
    def log_path(self) -> Path:
        return self._root() / "server.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _root(self) -> Path:
        if self.root is None:
            raise PgClusterError("the cluster has not been started")
        return self.root

    # -- life cycle

    def start(self) -> PgCluster:
        """initdb, then start the server on a free port; waits until it accepts connections."""
        if self.root is not None:
            raise PgClusterError("the cluster is already started")
        reason = missing_binaries(self.bin_dir)
        if reason is not None:
            raise PgClusterError(reason)
        self.root = Path(tempfile.mkdtemp(prefix="ygg-pg-", dir=self.base_dir))
        atexit.register(self.stop)
        try:
            self._make_dirs()
            self._start_guard()
            self._initdb()
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops the server (fast, then immediate, then SIGKILL) and removes its temp dir."""
        atexit.unregister(self.stop)
        if self.root is None:
            return
        try:
            self._stop_server()
        finally:
            self._end_guard()
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def restart(self, mode: str = "immediate") -> None:
        """`pg_ctl restart -m MODE`: immediate is a crash, recovered from the WAL at start."""
        self._ctl("restart", "-m", mode, "-l", str(self.log_path))

    def halt(self) -> None:
        """`pg_ctl stop -m fast`, keeping the data: the server is down until resume()."""
        self._ctl("stop", "-m", "fast")

    def resume(self) -> None:
        """Starts a halted server again, on the same port."""
        if self.postmaster_pid() is None:
            self._ctl("start", "-l", str(self.log_path))

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (OSError, PgClusterError):
            return None
        return int(first) if first.strip().isdigit() else None

    def server_processes(self) -> list[psutil.Process]:
        """The postmaster and its children (backends, checkpointer, …) now running."""
        pid = self.postmaster_pid()
        if pid is None:
            return []
        try:
            main = psutil.Process(pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- SQL helpers (psycopg 3, autocommit, as the superuser)

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url_for(dbname), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **kwargs
        )

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its URL."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE name WITH (FORCE): its connections are terminated first."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def backends(self) -> list[Backend]:
        """Client connections other than the one asking."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT pid, application_name, datname, usename, state, client_port"
                " FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchall()
        return [Backend(*row) for row in rows]

    def terminate_backends(self, application_name: BackendFilter = None) -> int:
        """pg_terminate_backend for every client connection that matches; how many ended.

        `application_name` is a name to match exactly, a predicate on Backend, or None for
        every client connection but the one doing it. Waits for each backend to exit.
        """
        pids = [b.pid for b in self.backends() if _matches(b, application_name)]
        if not pids:
            return 0
        with self.connect(application_name="ygg-pg-support") as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid, %s) FROM unnest(%s::int[]) AS pid",
                (TERMINATE_WAIT_MS, pids),
            ).fetchall()
        return sum(1 for (ended,) in rows if ended)

    # -- the steps

    def _make_dirs(self) -> None:
        root = self._root()
        root.chmod(0o755)  # the server user must reach its data dir and socket through it
        for sub in (self.data_dir, self.socket_dir):
            sub.mkdir(mode=0o700)
        self.log_path.touch()
        self._check_reachable(root)
        if self._user is not None:
            for path in (root, self.data_dir, self.socket_dir, self.log_path):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _check_reachable(self, root: Path) -> None:
        """Every parent of the temp dir must be searchable by the server's user."""
        if self._user is None:
            return
        for parent in root.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001 and parent.stat().st_uid != self._user.pw_uid:
                raise PgClusterError(
                    f"{parent} is not searchable by user {self._user.pw_name}; "
                    "set base_dir (or TMPDIR) to a folder under /tmp"
                )

    def _start_guard(self) -> None:
        self._guard = subprocess.Popen(
            [sys.executable, "-c", GUARD, str(self.data_dir), str(self._root())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to our process group must not take it first
        )

    def _end_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is None:
            return
        if guard.stdin is not None:
            guard.stdin.close()
        try:
            guard.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            guard.kill()
            guard.wait()

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        (self.data_dir / "pg_hba.conf").write_text(HBA)

    def _configure(self, port: int) -> None:
        settings = {
            **SETTINGS,
            "port": str(port),
            "synchronous_commit": "on" if self.synchronous_commit else "off",
            "unix_socket_directories": f"'{self.socket_dir}'",
            **self.settings,
        }
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "postgresql.auto.conf").write_text(text)

    def _start_on_free_port(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            self._configure(self.port)
            try:
                self._ctl("start", "-l", str(self.log_path))
                return
            except PgClusterError:
                if attempt == START_ATTEMPTS or "could not bind" not in self._log_tail():
                    raise

    def _stop_server(self) -> None:
        if self.postmaster_pid() is None:
            return
        processes = self.server_processes()
        for mode in ("fast", "immediate"):
            with contextlib.suppress(PgClusterError, subprocess.TimeoutExpired):
                self._ctl("stop", "-m", mode)
                break
        for proc in processes:  # whatever outlived pg_ctl; root may signal the server's user
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(processes, timeout=10)
        # A pid file left by a killed server must not lead the guard to a recycled pid.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def _ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data_dir), "-w", "-t", str(CTL_TIMEOUT_S), *args)

    def _run(self, program: str, *args: str) -> None:
        """Runs one binary as the server's user; output goes to a file, never to a pipe that
        the server it starts could inherit and hold open."""
        out_path = self._root() / f"{program}.out"
        with out_path.open("wb") as out:
            if self._user is not None:
                os.chown(out_path, self._user.pw_uid, self._user.pw_gid)
            done = subprocess.run(
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._root(),
                env=self._env(),
                timeout=COMMAND_TIMEOUT_S,
                **self._as_user(),
            )
        if done.returncode != 0:
            output = out_path.read_text(errors="replace").strip()
            raise PgClusterError(
                f"{program} {' '.join(args)} exited {done.returncode}:\n{output}\n"
                f"--- server log (tail) ---\n{self._log_tail()}"
            )

    def _as_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self._user is not None:
            env["HOME"] = str(self._root())
        return env

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, PgClusterError):
            return ""
        return "\n".join(text.splitlines()[-lines:])
