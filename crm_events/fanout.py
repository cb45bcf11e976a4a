"""The per-process fan-out: one channel-layer subscription feeding every SSE client.

Each web process runs one `EventHub`. It holds a single channel in the broadcast
group, so the layer carries one message per batch of events per process however
many clients are connected. For every event it encodes the frame once and offers
those bytes to each connected `StreamSubscriber`.

The hub also keeps, per partition, the next offset it expects: a record below it
is a replay (a restarted consumer) and is dropped, so clients get each event once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from redis.exceptions import RedisError

from crm_events import broadcast
from crm_events.retry import Backoff
from crm_events.sse import frame_encode
from crm_events.subscriber import CLOSE_SHUTDOWN, StreamSubscriber

logger = logging.getLogger(__name__)

# Redis forgets group members after `group_expiry`, and all of them when it restarts.
GROUP_REFRESH_SECONDS = 30.0


@dataclass(slots=True, frozen=True)
class LiveEvent:
    """An event as the hub hands it to clients: its payload and its frame, built once."""

    topic: str
    partition: int
    offset: int
    payload: dict[str, Any]
    frame: bytes


def live_event_build(payload: dict[str, Any]) -> LiveEvent:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return LiveEvent(
        topic=payload["topic"],
        partition=payload["partition"],
        offset=payload["offset"],
        payload=payload,
        frame=frame_encode(data),
    )


class EventHub:
    """Receives broadcast messages for this process and fans them out in-process."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.subscribers: set[StreamSubscriber] = set()
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.last_heartbeat_at: float | None = None
        self.consumer_lag: dict[str, dict[str, int]] = {}
        self.channel_name: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close(CLOSE_SHUTDOWN)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def subscribe(self, subscriber: StreamSubscriber) -> None:
        self.subscribers.add(subscriber)

    def unsubscribe(self, subscriber: StreamSubscriber) -> None:
        self.subscribers.discard(subscriber)

    def heartbeat_age(self) -> float | None:
        """Seconds since a consumer heartbeat reached this process, None if none did."""
        if self.last_heartbeat_at is None:
            return None
        return time.monotonic() - self.last_heartbeat_at

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._subscribe()
                backoff.reset()
                await self._receive_forever()
            except (RedisError, OSError) as error:
                delay = backoff.next_delay()
                logger.warning("channel layer lost (%s); resubscribing in %.1fs", error, delay)
                await asyncio.sleep(delay)

    async def _subscribe(self) -> None:
        if self.channel_name is None:
            self.channel_name = await self.layer.new_channel("crm-events-hub.")
        await self.layer.group_add(broadcast.BROADCAST_GROUP, self.channel_name)
        logger.info("event hub subscribed as %s", self.channel_name)

    async def _receive_forever(self) -> None:
        refresher = asyncio.create_task(self._refresh_membership())
        try:
            while True:
                self.message_handle(await self.layer.receive(self.channel_name))
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)

    async def _refresh_membership(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            await self.layer.group_add(broadcast.BROADCAST_GROUP, self.channel_name)

    def message_handle(self, message: dict[str, Any]) -> None:
        if message.get("type") == broadcast.MESSAGE_RECORDS:
            for item in message["records"]:
                self.record_handle(item)
        elif message.get("type") == broadcast.MESSAGE_HEARTBEAT:
            self.last_heartbeat_at = time.monotonic()
            self.consumer_lag[message["consumer"]] = message["lag"]

    def record_handle(self, item: dict[str, Any]) -> None:
        payload = item["event"]
        position = (payload["topic"], payload["partition"])
        expected = self.next_offsets.get(position)
        if expected is not None and payload["offset"] < expected:
            return  # a restarted consumer replaying what clients already have
        if expected is not None and item["prev"] > expected:
            logger.warning(
                "missed records %s:%s offsets %s..%s on the live path",
                *position, expected, item["prev"] - 1,
            )
        self.next_offsets[position] = payload["offset"] + 1
        event = live_event_build(payload)
        for subscriber in self.subscribers:
            subscriber.offer(event)


_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}


def hub_get() -> EventHub:
    """This process's hub, started on first use in the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = EventHub(get_channel_layer())
        hub.start()
    return hub
