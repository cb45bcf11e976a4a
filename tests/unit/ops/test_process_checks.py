"""/readyz: only what is wrong with this process (joining, restarting, shutting down, full).
A layer lost after the first join is upstream's state: /status says it, /readyz does not."""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from crm_events.core import messages as broadcast
from crm_events.fanout.hub import EventHub
from crm_events.ops.process_checks import (
    AT_CAPACITY,
    SHUTTING_DOWN,
    capacity_check,
    hub_ready_check,
    process_checks,
    shutdown_check,
)
from crm_events.ops.readiness import CHECK_OK, HUB_JOINING, HUB_NOT_SUBSCRIBED, hub_check
from tests.support.payloads import serving
from tests.support.processes import async_wait_until


class LosableLayer(InMemoryChannelLayer):
    """A layer that can be taken away: group_add and receive raise while it is."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def group_add(self, group, channel):
        if self.down:
            raise RedisConnectionError("Redis is away")
        await super().group_add(group, channel)

    async def receive(self, channel):
        if self.down:
            raise RedisConnectionError("Redis is away")
        return await super().receive(channel)


async def test_a_hub_is_unready_until_it_first_joins_and_stays_ready_when_the_layer_goes():
    layer = LosableLayer()
    layer.down = True
    hub = EventHub(layer, serving("t"))
    assert hub_ready_check(hub) == HUB_JOINING  # never joined
    hub.start()
    try:
        await async_wait_until(lambda: hub.subscription.last_error, timeout=5, what="a failed join")
        assert hub_ready_check(hub) == HUB_JOINING
        layer.down = False
        await async_wait_until(lambda: hub.subscription.connected, timeout=10, what="joined")
        assert hub_ready_check(hub) == CHECK_OK == hub_check(hub)
        layer.down = True
        await layer.group_send(broadcast.BROADCAST_GROUP, {"type": "crm.heartbeat"})  # wake the receive
        await async_wait_until(lambda: not hub.subscription.connected, timeout=10, what="the layer lost")
        assert hub_check(hub) == HUB_NOT_SUBSCRIBED.format("ConnectionError: Redis is away")  # /status
        assert hub_ready_check(hub) == CHECK_OK  # /readyz: upstream's trouble, this process still serves
    finally:
        await hub.stop()


def test_shutting_down_and_capacity():
    assert shutdown_check(False) == CHECK_OK
    assert shutdown_check(True) == SHUTTING_DOWN
    assert capacity_check(1999, 2000) == CHECK_OK
    assert capacity_check(2000, 2000) == AT_CAPACITY.format(streams=2000, limit=2000)
    assert capacity_check(2001, 2000) == AT_CAPACITY.format(streams=2001, limit=2000)


async def test_the_checks_are_named_as_readyz_reports_them():
    hub = EventHub(InMemoryChannelLayer(), serving("t"))
    checks = process_checks(hub, shutting_down=True, streams=3, max_streams=3)
    assert checks == {
        "hub": HUB_JOINING, "shutdown": SHUTTING_DOWN, "capacity": AT_CAPACITY.format(streams=3, limit=3),
    }
