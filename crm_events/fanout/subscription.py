"""A web process's one channel in the broadcast group, kept alive across Redis trouble.

Redis forgets group members after `group_expiry`, and all of them when it restarts,
so membership is renewed periodically and after every reconnect. Messages sent
while this process was not a member are lost to it; the hub notices the hole in
the offsets and reads it from Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer
from redis.exceptions import RedisError

from crm_events.core.backoff import Backoff
from crm_events.core.tasks import task_stop

logger = logging.getLogger(__name__)

GROUP_REFRESH_SECONDS = 30.0
# Short: while this process is out of the group, live events reach it only through repairs.
RESUBSCRIBE_BACKOFF_MAX = 3.0

MessageHandler = Callable[[Any], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class LayerSubscription:
    def __init__(
        self, layer: BaseChannelLayer, group: str, handle: MessageHandler, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.layer = layer
        self.group = group
        self.handle = handle
        self.channel_name: str | None = None
        self.connected = False
        self.last_error: str | None = None  # why the layer was last lost, for /status
        self.joined_once = False  # joined the group since the process started: /readyz
        self._sleep = sleep  # a test's fake clock; asyncio.sleep otherwise

    async def run(self) -> None:
        """Receive and handle messages forever, resubscribing after a layer failure."""
        backoff = Backoff(maximum=RESUBSCRIBE_BACKOFF_MAX)
        while True:
            try:
                await self._join()
                backoff.reset()
                await self._receive_forever()
            except (RedisError, OSError) as error:
                self.connected = False
                self.last_error = f"{type(error).__name__}: {error}"
                delay = backoff.next_delay()
                logger.warning("channel layer lost (%s); resubscribing in %.1fs", error, delay)
                await self._sleep(delay)
            except BaseException:
                self.connected = False  # the supervisor restarts run(); until then, not receiving
                raise

    async def _join(self) -> None:
        if self.channel_name is None:
            self.channel_name = await self.layer.new_channel("crm-events-hub.")
        await self.layer.group_add(self.group, self.channel_name)
        self.connected, self.last_error, self.joined_once = True, None, True
        logger.info("subscribed to %s as %s", self.group, self.channel_name)

    async def _receive_forever(self) -> None:
        # Renewal runs beside receiving, never by cancelling a receive: a receive
        # cancelled at the wrong moment can drop the message it was taking.
        renewal = asyncio.create_task(self._renew_forever())
        try:
            while True:
                await self.handle(await self.layer.receive(self.channel_name))
        finally:
            await task_stop(renewal)

    async def _renew_forever(self) -> None:
        # A failed renewal must not end the renewals: the membership would expire a day later.
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            try:
                await self.layer.group_add(self.group, self.channel_name)
            except (RedisError, OSError) as error:
                logger.warning("renewing the group membership failed (%s); trying again later", error)
