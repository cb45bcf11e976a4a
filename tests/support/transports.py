"""A stream transport for unit tests: records what is written, with room set by the test."""

from __future__ import annotations

import asyncio


class RecordingTransport:
    def __init__(self, *, room: bool = True) -> None:
        self.chunks: list[bytes] = []
        self.closed = False
        self._room = asyncio.Event()
        self.room = room

    @property
    def room(self) -> bool:
        return self._room.is_set()

    @room.setter
    def room(self, value: bool) -> None:
        if value:
            self._room.set()
        else:
            self._room.clear()

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def has_room(self) -> bool:
        return self.room

    async def writable(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._room.wait()
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        """Everything written since the last take, as one byte string."""
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


async def delivered(hub, message) -> None:
    """Handle `message` and write what it queued now, whatever the self-clocking would defer
    (a busy machine can make one round of writes look long; that is tested on its own)."""
    await hub.message_handle(message)
    hub.flush_all()
