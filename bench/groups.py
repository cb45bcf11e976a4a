"""The per-connection-group design, kept runnable as the comparison: `GET /bench/groups`.

Every SSE connection is a Channels consumer with its own channel on the
RedisChannelLayer, and joins the group the real `consume_events` publishes to
(`crm_events.core.messages.BROADCAST_GROUP`). So the path is the service's own
Kafka -> consume_events -> Redis, but the layer now carries each message once
per *connection* instead of once per process, and each connection decodes and
encodes its own frames and writes one body send per event. Built the usual
Channels way (AsyncConsumer dispatch, which also runs `aclose_old_connections`
in a thread for every message, as every stock Channels consumer does).
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from crm_events.core import messages as broadcast
from crm_events.core.frames import frame_encode, retry_encode
from crm_events.core.live_event import LiveEvent
from crm_events.core.tokens import token_encode

HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
CONNECTED_FRAME = retry_encode(3000) + frame_encode('{"kind":"connected","design":"per-connection-group"}')


class GroupStreamConsumer(AsyncConsumer):
    streams = 0  # open streams in this process, for /bench/stats

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.joined = False
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Daphne cancels a consumer still busy 10 s after its client left: leave anyway.
            if self.joined:
                GroupStreamConsumer.streams -= 1
                leave = self.channel_layer.group_discard(broadcast.BROADCAST_GROUP, self.channel_name)
                await asyncio.shield(leave)

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return
        self.positions: dict[tuple[str, int], int] = {}
        await self.channel_layer.group_add(broadcast.BROADCAST_GROUP, self.channel_name)
        GroupStreamConsumer.streams += 1
        self.joined = True
        await self.send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await self.send({"type": "http.response.body", "body": CONNECTED_FRAME, "more_body": True})

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer()  # __call__ leaves the group

    async def crm_records(self, message: dict[str, Any]) -> None:
        for item in message["records"]:
            event = LiveEvent(item["event"])
            self.positions[event.position] = event.offset + 1
            frame = event.frame(token_encode(self.positions))
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})

    async def crm_heartbeat(self, message: dict[str, Any]) -> None:
        """Consumer heartbeats reach every group member too; nothing to send."""


groups_application = GroupStreamConsumer.as_asgi()
