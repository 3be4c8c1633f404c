"""Spark sessions for the Spark engine: Spark Connect, an embedded Sail server, or JVM PySpark local.

Resolution (`get_session`):
  remote given (`--spark-remote sc://HOST:PORT`) or `SPARK_REMOTE` set  -> Spark Connect to that server
  otherwise                                                               -> an embedded Sail server (`pysail`)
  `kind="jvm"`                                                           -> JVM PySpark local[*] (no Delta here)

The embedded Sail server is started once per process on a free local port and stopped at interpreter exit.
Every session gets the same configuration: UTC session time zone (timestamps are UTC microseconds), adaptive
query execution and Arrow on, ANSI mode off (divisions by zero are rendered explicitly by the engine).
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from altaviz.errors import AltavizError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql import SparkSession

CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "false",
}
# JVM only (static / not settable through Spark Connect on a running server)
JVM_CONF = {
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
}

_lock = threading.Lock()
_sail: tuple[subprocess.Popen, int] | None = None  # the embedded Sail server process and its port
_sessions: dict[str, SparkSession] = {}


class SparkSessionError(AltavizError):
    """A Spark session could not be created."""


# The Spark Connect client parses these as integers before it uploads a local frame; Sail answers '3GB' and the
# like. Plain byte/row counts are set where the server's value is not an integer.
LOCAL_RELATION_CONF = {
    "spark.sql.session.localRelationCacheThreshold": str(1 << 62),  # keep local frames inline, never cached
    "spark.sql.session.localRelationSizeLimit": str(3 << 30),
    "spark.sql.session.localRelationChunkSizeRows": str(1 << 20),
    "spark.sql.session.localRelationChunkSizeBytes": str(64 << 20),
    "spark.sql.session.localRelationBatchOfChunksSizeBytes": str(256 << 20),
}


def _integer_conf(spark: SparkSession) -> None:
    for key, value in LOCAL_RELATION_CONF.items():
        try:
            int(spark.conf.get(key))
        except Exception:  # noqa: BLE001 - missing or not an integer
            spark.conf.set(key, value)


def _configure(spark: SparkSession) -> SparkSession:
    _integer_conf(spark)
    for key, value in CONF.items():
        try:
            spark.conf.set(key, value)
        except Exception:  # noqa: BLE001 - some servers refuse some keys; the engine does not depend on them
            if key == "spark.sql.session.timeZone":
                raise
    return spark


# pysail 0.7 refuses sessions when the PySpark it imports reports a version it does not know (4.3.0 here:
# "unsupported PySpark version"); its Spark Connect protocol serves the 4.3 client fine. The server therefore
# runs in its own process, which reports this version to it; the client process is left untouched.
SAIL_PYSPARK_VERSION = "4.1.1"
_SERVER = """
import sys, pyspark
pyspark.__version__ = sys.argv[2]
from pysail.spark import SparkConnectServer
SparkConnectServer("127.0.0.1", int(sys.argv[1])).start(background=False)
"""


# Defaults for the embedded server's environment (the caller's environment overrides them): errors-only logging,
# and rows per batch: Sail's default 8192 spends more per row in the gold plan's many window operators; 65536 took
# gold from 25.1-26.6 s to 21.3-22.7 s on 1.5 M rows (2 runs each; 262144: 23.5 s, 1048576: 26.9 s), results
# identical. Parquet (staging and Delta files) in snappy, as the Polars engine and Spark write it, instead of Sail's
# zstd(3): cheaper to write and read back (docs/spark.md). Sail allocates with mimalloc, which by default hands
# freed pages back to the OS after a few milliseconds; the next operator then faults them in again. On the 4.5 M-row
# workload that was ~30 of the run's ~135 CPU-s in the kernel. Never purging (`MIMALLOC_PURGE_DELAY=-1`) and
# 2 MiB pages (`MIMALLOC_ALLOW_LARGE_OS_PAGES`) cut the kernel time to ~15 s and Sail's wall time by ~13 %, for ~5 %
# more peak memory (9.0 -> 9.6 GB); the server's memory goes back to the OS when it stops, at the process's exit.
SAIL_ENV = {
    "RUST_LOG": "error",
    "SAIL_EXECUTION__BATCH_SIZE": "65536",
    "SAIL_PARQUET__COMPRESSION": "snappy",
    "MIMALLOC_PURGE_DELAY": "-1",
    "MIMALLOC_ALLOW_LARGE_OS_PAGES": "1",
}


def sail_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The embedded server's environment: `SAIL_ENV`'s defaults under the caller's environment."""
    return {**SAIL_ENV, **environ}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SparkSessionError(f"embedded Sail server: exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SparkSessionError(f"embedded Sail server: not listening on port {port} after {timeout:.0f} s")


def sail_address() -> str:
    """`sc://127.0.0.1:PORT` of the embedded Sail server, started on first use (once per process)."""
    global _sail
    with _lock:
        if _sail is None or _sail[0].poll() is not None:
            try:
                import pysail  # noqa: F401
            except ImportError as exc:
                raise SparkSessionError(f"embedded Spark engine: pysail is not installed ({exc})") from exc
            port = _free_port()
            env = sail_environment(os.environ)
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
                [sys.executable, "-c", _SERVER, str(port), SAIL_PYSPARK_VERSION],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            _wait_listening(proc, port)
            _sail = (proc, port)
            atexit.register(stop_sail)
        return f"sc://127.0.0.1:{_sail[1]}"


def stop_sail() -> None:
    """Stop the embedded Sail server (and forget its sessions); a later call starts a new one."""
    global _sail
    with _lock:
        for key in [k for k in _sessions if k.startswith("sail:")]:
            try:
                _sessions.pop(key).stop()
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        if _sail is not None and _sail[0].poll() is None:
            _sail[0].terminate()
            try:
                _sail[0].wait(timeout=10)
            except subprocess.TimeoutExpired:
                _sail[0].kill()
        _sail = None


def remote_session(url: str) -> SparkSession:
    """A Spark Connect session to `url` (sc://HOST:PORT[/;params])."""
    if not url.startswith("sc://"):
        raise SparkSessionError(f"Spark remote {url!r}: expected a Spark Connect URL like sc://HOST:PORT")
    if url not in _sessions:
        from pyspark.sql import SparkSession

        try:
            _sessions[url] = _configure(SparkSession.builder.remote(url).getOrCreate())
        except Exception as exc:
            raise SparkSessionError(f"Spark remote {url}: cannot connect ({exc})") from exc
    return _sessions[url]


def sail_session() -> SparkSession:
    url = sail_address()
    key = f"sail:{url}"
    if key not in _sessions:
        from pyspark.sql import SparkSession

        _sessions[key] = _configure(SparkSession.builder.remote(url).getOrCreate())
    return _sessions[key]


def jvm_session() -> SparkSession:
    """JVM PySpark local[*] (needs Java 17). Delta is not available unless delta-spark jars are on the classpath."""
    if "jvm" not in _sessions:
        os.environ.pop("SPARK_REMOTE", None)
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master("local[*]").appName("altaviz")
        for key, value in {**JVM_CONF, **CONF}.items():
            builder = builder.config(key, value)
        try:
            _sessions["jvm"] = builder.getOrCreate()
        except Exception as exc:
            raise SparkSessionError(f"JVM Spark local: cannot start ({exc}); is Java 17 installed?") from exc
    return _sessions["jvm"]


def get_session(remote: str | None = None, kind: str | None = None) -> SparkSession:
    """The session the Spark engine runs on (see the module docstring)."""
    if kind == "jvm":
        return jvm_session()
    remote = remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return remote_session(remote)
    if kind not in (None, "sail"):
        raise SparkSessionError(f"Spark session kind {kind!r}: unknown (expected 'sail' or 'jvm')")
    return sail_session()
