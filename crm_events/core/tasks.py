"""Stopping a background task for certain, on Python 3.11.

`task.cancel()` once, then `await task`, can wait forever there: `asyncio.wait_for`
(which redis-py uses for every command, and aiokafka in places) may swallow a
cancellation that arrives just as the awaited call completes (CPython gh-86296,
fixed in 3.12), and the task's loop then runs on. Measured here: a quarter of
cancelled heartbeat loops kept running when the race was made frequent. So we
cancel again until the task has ended, within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)

RECANCEL_SECONDS = 0.1
STOP_DEADLINE = 5.0


async def task_stop(task: asyncio.Task[Any], *, deadline: float = STOP_DEADLINE) -> bool:
    """Cancel `task` until it ends (at most `deadline` s); True if it ended.

    Whatever it ended with (cancelled, a result, an exception) is consumed here.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline
    while not task.done():
        left = give_up_at - loop.time()
        if left <= 0:
            logger.warning("task %s did not stop within %.1fs", task.get_name(), deadline)
            return False
        task.cancel()
        # asyncio.wait neither raises the task's outcome nor cancels it on timeout.
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, left))
    if not task.cancelled() and task.exception() is not None:
        logger.warning("task %s ended with %r while stopping", task.get_name(), task.exception())
    return True
