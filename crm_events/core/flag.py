"""`Flag`: an `asyncio.Event` for one waiter, that costs almost nothing while nobody waits.

Every idle stream holds two such signals (the subscriber's wakeup and the transport's room).
`asyncio.Event` gives each a deque of waiters up front, so every idle connection carried two
empty deques. A `Flag` is two slots; a future exists only while its one
waiter waits.
"""

from __future__ import annotations

import asyncio

SECOND_WAITER = "a Flag has one waiter at a time"


class Flag:
    __slots__ = ("_set", "_waiter")

    def __init__(self, *, is_set: bool = False) -> None:
        self._set = is_set
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is); as `asyncio.Event.wait`, for one waiter."""
        if self._set:
            return
        if self._waiter is not None:
            raise RuntimeError(SECOND_WAITER)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

async def set_within(flag: Flag | asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` for `flag`; True if it is set by then."""
    try:
        # asyncio.timeout, unlike wait_for, starts no task.
        async with asyncio.timeout(timeout):
            await flag.wait()
    except TimeoutError:
        return False
    return True
