"""Our channel layer's two-round-trip group send against channels_redis' own, on a real Redis.

Receivers are channels_redis' stock layer: what our `group_send` leaves in Redis must be read
exactly as what channels_redis' writes, across process-specific and plain channels, capacity
and expiry; and it must survive Redis forgetting its script.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer as StockLayer
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import OutOfMemoryError

from crm_events.channel_layer import RedisChannelLayer
from scripts.servers import RedisServer, free_port
from tests.integration.conftest import started

GROUP = "crm-events.broadcast"

pytestmark = pytest.mark.integration


def layers(url: str, **config) -> tuple[RedisChannelLayer, StockLayer]:
    prefix = f"layer-test-{uuid.uuid4().hex[:8]}"
    return (RedisChannelLayer(hosts=[url], prefix=prefix, **config),
            StockLayer(hosts=[url], prefix=prefix, **config))


async def close(*all_layers: StockLayer) -> None:
    for layer in all_layers:
        await layer.flush()


async def test_every_member_receives_each_message_once_in_order_as_from_channels_redis(redis_server):
    ours, stock = layers(redis_server.url)
    receivers = [await stock.new_channel(), await stock.new_channel(), "test.plain"]
    try:
        for channel in receivers:
            await stock.group_add(GROUP, channel)
        for n in range(3):
            await ours.group_send(GROUP, {"type": "crm.records", "n": n, "by": "ours"})
            await stock.group_send(GROUP, {"type": "crm.records", "n": n, "by": "stock"})
        for channel in receivers:
            got = [await stock.receive(channel) for _ in range(6)]
            assert [(m["by"], m["n"]) for m in got] == [
                (by, n) for n in range(3) for by in ("ours", "stock")], channel
    finally:
        await close(ours, stock)


@settings(max_examples=12, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=4), sent=st.integers(min_value=0, max_value=6))
async def test_a_full_channel_drops_what_is_over_capacity_like_channels_redis(redis_server, capacity, sent):
    # Plain channels: each its own key in Redis (a process's specific channels share one).
    ours, stock = layers(redis_server.url, capacity=capacity)
    try:
        await stock.group_add(GROUP, "test.ours")
        await stock.group_add(GROUP + "-stock", "test.stock")
        for n in range(sent):
            await ours.group_send(GROUP, {"type": "t", "n": n})
            await stock.group_send(GROUP + "-stock", {"type": "t", "n": n})
        connection = stock.connection(0)
        held = [await connection.zcard(stock.prefix + channel) for channel in ("test.ours", "test.stock")]
        assert held == [min(sent, capacity)] * 2
        for channel in ("test.ours", "test.stock"):
            got = [(await stock.receive(channel))["n"] for _ in range(min(sent, capacity))]
            assert got == list(range(min(sent, capacity))), channel
    finally:
        await close(ours, stock)


async def test_a_redis_that_forgot_the_script_is_sent_it_again(redis_server):
    ours, stock = layers(redis_server.url)
    channel = await stock.new_channel()
    try:
        await stock.group_add(GROUP, channel)
        await ours.group_send(GROUP, {"type": "t", "n": 1})
        await ours.connection(0).script_flush()
        await ours.group_send(GROUP, {"type": "t", "n": 2})
        assert [(await stock.receive(channel))["n"] for _ in range(2)] == [1, 2]
    finally:
        await close(ours, stock)


async def test_an_empty_group_is_no_error(redis_server):
    ours, stock = layers(redis_server.url)
    try:
        await ours.group_send(GROUP, {"type": "t"})
    finally:
        await close(ours, stock)


async def test_an_expired_message_is_neither_counted_against_the_capacity_nor_kept(redis_server):
    ours, stock = layers(redis_server.url, capacity=1, expiry=60)
    key = stock.prefix + "test.expiring"
    try:
        await stock.group_add(GROUP, "test.expiring")
        await stock.connection(0).zadd(key, {b"an expired message": 1.0})
        await ours.group_send(GROUP, {"type": "t", "n": 1})
        assert await stock.connection(0).zcard(key) == 1
        assert (await stock.receive("test.expiring"))["n"] == 1
    finally:
        await close(ours, stock)


TIGHT = 3 * 1024 * 1024


@pytest.fixture
def tight_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = started(
        lambda n: RedisServer(port=free_port(), data_dir=tmp_path / f"redis{n}", maxmemory=TIGHT))
    yield server
    server.stop()


async def test_a_full_redis_refuses_a_message_too_big_for_it_as_it_refuses_channels_redis(tight_redis):
    """Found by the Redis refusal fault test: a script's first write is the one Redis checks
    against maxmemory, so expiring old messages first let any message in."""
    ours, stock = layers(tight_redis.url)
    big = {"type": "t", "blob": "b" * (TIGHT + TIGHT // 2)}
    try:
        await stock.group_add(GROUP, "test.big")
        for layer in (stock, ours, ours):  # ours twice: loading the script, then by its digest
            with pytest.raises(OutOfMemoryError):
                await layer.group_send(GROUP, big)
        assert await stock.connection(0).zcard(stock.prefix + "test.big") == 0
    finally:
        await close(ours, stock)
