"""rediss+sentinel://: TLS to the sentinels and to the master they name, with the master's
password in the URL, the sentinels' own in REDIS_SENTINEL_PASSWORD and the CA in
REDIS_SSL_CAFILE; real redis-server processes speaking TLS only."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from channels_redis.core import RedisChannelLayer

from crm_events.config import redis_config
from crm_events.ops.readiness import CHECK_OK, REDIS_UNREACHABLE, redis_check
from scripts.nginx import certificate_make
from scripts.servers import LOOPBACK, RedisServer, SentinelServer, free_port
from scripts.servers.redis import TlsFiles
from tests.support.redis_sentinels import MASTER_NAME, PASSWORD, SENTINEL_PASSWORD


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    folder = certificate_make(tmp_path / "tls")  # for 127.0.0.1, its own CA
    return TlsFiles(cert=folder / "fullchain.pem", key=folder / "privkey.pem", ca=folder / "fullchain.pem")


@pytest.fixture
def tls_sentinel(tmp_path: Path, tls_files: TlsFiles) -> Iterator[SentinelServer]:
    master = RedisServer(port=free_port(), data_dir=tmp_path / "master", password=PASSWORD, tls=tls_files)
    sentinel = SentinelServer(
        port=free_port(), data_dir=tmp_path / "sentinel", master_name=MASTER_NAME, master_port=master.port,
        quorum=1, master_password=PASSWORD, password=SENTINEL_PASSWORD, tls=tls_files,
    )
    try:
        master.start()
        sentinel.start()
        yield sentinel
    finally:
        sentinel.stop()
        master.stop()


@pytest.fixture
def tls_settings(settings, tls_sentinel: SentinelServer, tls_files: TlsFiles):
    password = quote(PASSWORD, safe="")
    settings.REDIS_URL = f"rediss+sentinel://:{password}@{LOOPBACK}:{tls_sentinel.port}/{MASTER_NAME}/0"
    settings.REDIS_SENTINEL_PASSWORD = SENTINEL_PASSWORD
    settings.REDIS_SSL_CAFILE = str(tls_files.ca)
    settings.REDIS_PREFIX = f"tls-{uuid.uuid4().hex[:8]}"
    return settings


async def test_the_readiness_probe_and_the_channel_layer_reach_the_master_over_tls(tls_settings):
    assert await redis_check() == CHECK_OK
    options = redis_config().connection_options(socket_timeout=5.0, socket_connect_timeout=5.0)
    layer = RedisChannelLayer(hosts=[options], prefix=tls_settings.REDIS_PREFIX)
    try:
        channel = await layer.new_channel()
        await layer.group_add("tls", channel)
        await layer.group_send("tls", {"type": "probe", "n": 1})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "probe", "n": 1}
    finally:
        await layer.flush()


async def test_without_the_ca_the_sentinels_certificate_is_refused(tls_settings):
    tls_settings.REDIS_SSL_CAFILE = ""
    # Without it the system's CAs are asked, which do not know this one: the TLS is checked.
    assert (await redis_check()).startswith(REDIS_UNREACHABLE.format(""))


async def test_each_readiness_probe_closes_its_connections_to_the_sentinels(tls_settings):
    """The probe runs every few seconds: a client left for the garbage collector each time would
    hold its connections until then (redis-py warns of each one it finds unclosed)."""
    # Collected first, outside the record: channels_redis's layer closes only its master's pool
    # and leaves its sentinel connections to the collector, and an earlier test's layer must not
    # be counted against the probe.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        # Three probes that reached the master; on a loaded machine one may outlast the probe's
        # own timeout, which must close its connections just the same.
        answers: list[str] = []
        deadline = time.monotonic() + 60
        while answers.count(CHECK_OK) < 3 and time.monotonic() < deadline:
            answers.append(await redis_check())
        assert answers.count(CHECK_OK) == 3, answers
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []
