"""The embedded server: start / status / URL / stop round trip in a throwaway data root, and its errors."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from altaviz.serve.db.server import (
    ServerError,
    embedded_status,
    resolve_database_url,
    start_embedded,
    stop_embedded,
)
from altaviz.settings import Settings

URL = re.compile(r"^postgresql://altaviz@127\.0\.0\.1:(\d+)/altaviz$")


def test_start_status_url_stop_round_trip(pg_data_root: Path):
    settings = Settings(data_root=pg_data_root, database_url=None)
    before = embedded_status(settings)
    assert not before.running and before.url is None and before.pid is None
    assert before.pgdata == (pg_data_root / "postgres").resolve()
    assert "not running" in before.describe()

    url = start_embedded(settings)
    assert URL.match(url), url
    status = embedded_status(settings)
    assert status.running and status.url == url and status.pid
    assert str(status.pid) in status.describe() and url in status.describe()
    assert start_embedded(settings) == url  # idempotent: same server, same URL
    assert resolve_database_url(settings) == url
    assert resolve_database_url(settings, start=False) == url

    with psycopg.connect(url) as conn:
        user, db, sync, tz = conn.execute(
            "SELECT current_user, current_database(), current_setting('synchronous_commit'),"
            " current_setting('TimeZone')"
        ).fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert (user, db, sync, tz, fsync) == ("altaviz", "altaviz", "off", "UTC", "on")
    assert {"compressors", "sensor_readings_agg", "alert_history", "data_quality_metrics"} <= tables
    if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster belongs to the unprivileged account
        assert (pg_data_root / "postgres").stat().st_uid != 0

    assert stop_embedded(settings) is True
    after = embedded_status(settings)
    assert not after.running and after.initialized and "not running" in after.describe()
    assert stop_embedded(settings) is False
    with pytest.raises(ServerError, match="expected it running"):
        resolve_database_url(settings, start=False)

    assert start_embedded(settings) == url  # a restart keeps the remembered port while it is free
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM compressors").fetchone()[0] == 0
    assert stop_embedded(settings) is True

    port = int(URL.match(url).group(1))
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old server's TIME_WAITs
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        moved = start_embedded(settings)
    assert URL.match(moved) and moved != url  # the port was taken meanwhile: a new one, remembered
    assert embedded_status(settings).url == moved
    assert stop_embedded(settings) is True


def test_external_url_wins_and_is_migrated(postgres_url: str, pg_data_root: Path):
    settings = Settings(data_root=pg_data_root, database_url=postgres_url)
    assert resolve_database_url(settings) == postgres_url
    assert "ALTAVIZ_DATABASE_URL is set" in embedded_status(settings).describe()
    assert not (pg_data_root / "postgres").exists()  # nothing embedded was created


@pytest.mark.skipif(os.geteuid() != 0, reason="the traversal check applies when the server runs as another user")
def test_untraversable_parent_is_named(tmp_path: Path):
    private = Path(tempfile.mkdtemp(prefix="altaviz-private-"))  # mode 0700, owned by root
    try:
        settings = Settings(data_root=private / "data", database_url=None)
        with pytest.raises(ServerError, match=rf"expected {re.escape(str(private))} to allow that \(o\+x\)"):
            start_embedded(settings)
    finally:
        import shutil

        shutil.rmtree(private, ignore_errors=True)
