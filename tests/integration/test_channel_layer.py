"""Our channel layer's one-round-trip group send against channels_redis' own, on a real Redis.

Receivers are channels_redis' stock layer: what our `group_send` leaves in Redis must be what
channels_redis' writes, byte for byte after the random prefix, across process-specific and
plain channels, capacity and expiry; it must survive Redis forgetting its script; and where one
script cannot do it (capacities per channel, say) the layer must send as channels_redis does.
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


# What a layer message may hold: msgpack's types, nested (records, heartbeats, foreign messages).
MESSAGE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False) | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# Process-specific channels (several local ones may share a process's key) and plain ones.
MEMBERS = st.lists(
    st.sampled_from(["p1!a", "p1!b", "p1!c", "p2!a", "p3!x", "plain.one", "plain.two"]),
    min_size=0, max_size=7, unique=True,
)


def group_key(layer: StockLayer) -> str:
    """Where channels_redis keeps the group's members."""
    return f"{layer.prefix}:group:{GROUP}"


async def stored(layer: StockLayer, names: list[str]) -> dict[str, list[bytes]]:
    """What each of `names`' keys holds, by name, without the random prefixes."""
    connection = layer.connection(0)
    return {name: [m[12:] for m in await connection.zrange(layer.prefix + name, 0, -1)] for name in names}


@settings(max_examples=40, deadline=None)
@given(members=MEMBERS, fields=st.dictionaries(st.text(max_size=12), MESSAGE_VALUES, max_size=5),
       stale=st.sets(st.integers(min_value=0, max_value=6)))
async def test_what_one_round_trip_stores_is_what_channels_redis_stores(redis_server, members, fields, stale):
    ours, receiver = layers(redis_server.url)  # the receiver reads what ours stores
    stock = StockLayer(hosts=[redis_server.url], prefix=f"{ours.prefix}-stock")
    # p1 is the receiver's process: channels_redis receives only its own specific channels.
    members = [f"specific.{name.replace('p1!', receiver.client_prefix + '!')}" if "!" in name else name
               for name in members]
    keys = sorted({name[:name.find("!") + 1] if "!" in name else name for name in members})
    live = [channel for n, channel in enumerate(members) if n not in stale]
    message = {**fields, "type": "crm.records"}
    try:
        for layer in (ours, stock):
            for n, channel in enumerate(members):
                await layer.group_add(GROUP, channel)
                if n in stale:  # a member that stopped renewing: neither layer sends to it
                    await layer.connection(0).zadd(group_key(layer), {channel: 1.0})
            await layer.group_send(GROUP, message)
        assert await stored(ours, keys) == await stored(stock, keys)
        for layer in (ours, stock):  # and both drop the stale members from the group
            assert len(await layer.connection(0).zrange(group_key(layer), 0, -1)) == len(live)
        for channel in live:
            if channel.startswith(f"specific.{receiver.client_prefix}!") or "!" not in channel:
                assert await receiver.receive(channel) == message, channel
    finally:
        await close(ours, receiver, stock)


async def test_capacities_per_channel_are_kept_by_sending_as_channels_redis(redis_server):
    ours, stock = layers(redis_server.url, capacity=10, channel_capacity={"test.small": 1})
    try:
        await stock.group_add(GROUP, "test.small")
        await stock.group_add(GROUP, "test.large")
        for n in range(3):
            await ours.group_send(GROUP, {"type": "t", "n": n})
        connection = stock.connection(0)
        held = [await connection.zcard(stock.prefix + name) for name in ("test.small", "test.large")]
        assert held == [1, 3]
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
