"""consume_events' one-line status every CONSUMER_STATUS_INTERVAL seconds: records since the
last line and in total, rate, lag (from the last heartbeat). The number of web processes is not
something the consumer can know: the channel layer does not say who receives a group message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from crm_events.core.tasks import task_stop
from crm_events.ingest.publisher import EventPublisher

logger = logging.getLogger(__name__)

WEB_PROCESSES_UNKNOWN = "web processes: unknown to the consumer (see each one's /readyz)"


def status_line(*, since: int, total: int, seconds: float, lag: dict[str, int] | None) -> str:
    lag_text = "lag unknown (no heartbeat yet)" if lag is None else f"lag {sum(lag.values())}"
    rate = since / seconds if seconds > 0 else 0.0
    return f"status: {since} records in the last {seconds:.0f}s ({total} in total), {rate:.1f}/s, " \
           f"{lag_text}, {WEB_PROCESSES_UNKNOWN}"


async def status_report_forever(publisher: EventPublisher, interval: float) -> None:
    reported, last = 0, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        now, total = time.monotonic(), publisher.consumed
        try:
            logger.info("%s", status_line(since=total - reported, total=total, seconds=now - last,
                                          lag=publisher.last_lag))
        except Exception:  # noqa: BLE001 - a status line never stops the consumer, nor its own loop
            logger.exception("consume_events' status line failed; the next one comes in %.0fs", interval)
        reported, last = total, now


async def with_status(run: Awaitable[None], publisher: EventPublisher, interval: float) -> None:
    """Await `run` (the publisher's run) with the status line beside it; 0: no status line."""
    if not interval:
        await run
        return
    status = asyncio.create_task(status_report_forever(publisher, interval), name="consumer-status")
    try:
        await run
    finally:
        await task_stop(status)
