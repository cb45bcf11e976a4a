"""This web process's hub: one per event loop, started on first use; and closing them all
(from then on the process is shutting down: `/readyz` says so)."""

from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer

from crm_events.config import kafka_config
from crm_events.core.close_reasons import CloseReason
from crm_events.fanout.hub import EventHub

logger = logging.getLogger(__name__)

_hubs: dict[asyncio.AbstractEventLoop, EventHub] = {}
_closing = asyncio.Event()  # set once, by the first hubs_close(): never cleared


def hub_get() -> EventHub:
    """This process's hub, started on first use in the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = EventHub(get_channel_layer(), kafka_config())
        hub.start()
    return hub


def hubs() -> list[EventHub]:
    """The hubs of this process (one per event loop that served a stream: one under Daphne)."""
    return list(_hubs.values())


def shutting_down() -> bool:
    """Whether this process has begun to close its streams (SIGTERM)."""
    return _closing.is_set()


async def hubs_close(grace: float) -> None:
    """Send every stream of this process away with its resume id; wait up to `grace`."""
    _closing.set()
    for hub in _hubs.values():
        hub.close_all(CloseReason.SHUTDOWN)
    try:
        async with asyncio.timeout(grace):
            for hub in _hubs.values():
                await hub.drained.wait()
    except TimeoutError:
        left = sum(hub.stream_count for hub in _hubs.values())
        logger.warning("%s streams did not finish within %.1fs", left, grace)
