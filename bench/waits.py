"""Every wait of the benchmark on another process or a socket ends, and says what did not answer.

Two tools:
  bounded(awaitable, seconds, what)  the awaitable's result, or NoAnswer naming `what`
  task_stop(task, what)              cancel a background task and wait for it to end; cancel it
                                     again if it goes on; NoAnswer if it outlives the deadline

Why cancelling once is not enough: on Python 3.11, `asyncio.wait_for` returns the inner result
instead of raising CancelledError when the cancellation arrives just as the inner future
finishes (CPython gh-86296, fixed in 3.12). redis-py 8 wraps every command's socket write in
`asyncio.wait_for` (its default socket_timeout is 5 s), so a task cancelled in the middle of a
Redis command can simply carry on. A `while True` sampling loop stopped by one `cancel()` then
runs for ever, and whoever awaits it waits for ever. Background loops here therefore also check a
stop flag, and are stopped with `task_stop`.

Both tools wait with `asyncio.wait` on a task of their own rather than with `asyncio.timeout`:
a task that once swallowed a cancellation keeps a non-zero `cancelling()` count, and on 3.11
`asyncio.timeout` in such a task raises CancelledError instead of TimeoutError when it expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from crm_events.core import tasks

T = TypeVar("T")

STOP_SECONDS = 10.0


class NoAnswer(TimeoutError):
    """Something the benchmark waited on did not answer in time; the message says what."""


async def bounded(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """Await `awaitable` for at most `seconds`; NoAnswer("<what> did not answer ...") after that.

    On timeout the awaitable's task is cancelled and left behind (it is not awaited: it may be
    the very thing that does not end). A cancellation of the caller cancels it too.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise NoAnswer(f"{what} did not answer within {seconds:g} s")
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a task nobody will await; whatever it ends with is dropped without a warning."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def task_stop(task: asyncio.Task[Any], what: str, seconds: float = STOP_SECONDS) -> Any:
    """Cancel `task` until it has ended (crm_events.core.tasks, the service's own way of stopping
    its loops); return its result, None if cancelled. An exception it ended with is raised here.
    NoAnswer if it is still running after `seconds`: it is then left running, and the message
    names it."""
    if not await tasks.task_stop(task, deadline=seconds):
        raise NoAnswer(f"{what} was still running {seconds:g} s after it was told to stop")
    if task.cancelled():
        return None
    return task.result()
