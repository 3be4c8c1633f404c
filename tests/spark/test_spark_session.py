"""The embedded Sail server's environment: the project's defaults (allocator, batch size, compression) reach the
running server process, and the caller's environment overrides them."""

from __future__ import annotations

import os
from pathlib import Path

from altaviz.engines.spark_engine import get_session, session


def _process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_running_embedded_server_has_the_default_environment():
    get_session()  # the embedded server this test process shares (started now or earlier)
    env = _process_environment(session._sail[0].pid)
    expected = session.sail_environment(os.environ)  # the defaults, unless the caller set one
    assert {k: env.get(k) for k in session.SAIL_ENV} == {k: expected[k] for k in session.SAIL_ENV}


def test_the_callers_environment_overrides_a_default():
    env = session.sail_environment({"MIMALLOC_PURGE_DELAY": "10", "OTHER": "x"})
    assert env["MIMALLOC_PURGE_DELAY"] == "10"
    assert env["OTHER"] == "x"
    assert env["SAIL_EXECUTION__BATCH_SIZE"] == session.SAIL_ENV["SAIL_EXECUTION__BATCH_SIZE"]
