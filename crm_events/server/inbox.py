"""A connection's messages to its application, in a fraction of an asyncio.Queue.

Daphne gives every connection an `asyncio.Queue` for the messages its application
`receive()`s (the request body, then `http.disconnect`). A Queue holds four deques (its
items, getters, putters, and the waiters of its `join()` event) that every idle stream
kept, for what carries two messages in its life. Daphne's protocols use only
`put_nowait()` and the truthiness of the queue, and hand `get` to the application as
`receive`; `ApplicationInbox` is that much: unbounded, first in first out, any number of
concurrent getters, and the deque and waiters made only when needed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class ApplicationInbox:
    """As asyncio.Queue: a message stays in the inbox until a getter takes it; a put only
    wakes the longest-waiting getter, so a getter cancelled meanwhile loses nothing."""

    __slots__ = ("_messages", "_getters")

    def __init__(self) -> None:
        self._messages: deque[Any] | None = None  # None when empty: an idle stream holds none
        self._getters: list[asyncio.Future[None]] | None = None  # a list: a deque is 760 B

    def __bool__(self) -> bool:
        return True  # Daphne asks `if self.application_queue:` to mean "has an application"

    def put_nowait(self, message: Any) -> None:
        if self._messages is None:
            self._messages = deque()
        self._messages.append(message)
        self._wake_next()

    async def get(self) -> Any:
        while not self._messages:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if not getter.cancelled():  # woken, then cancelled: the wake-up is someone else's
                    self._wake_next()
                raise
            finally:
                if getter in self._getters:
                    self._getters.remove(getter)
                if not self._getters:
                    self._getters = None
        message = self._messages.popleft()
        if not self._messages:
            self._messages = None
        return message

    def _wake_next(self) -> None:
        for getter in self._getters or ():
            if not getter.done():
                getter.set_result(None)
                return
