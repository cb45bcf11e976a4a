"""Whose streams are open in this process, so one access message can end exactly theirs.

A stream registers its subject (`user:NAME`, `jwt:SUB`) and, for a session user, its hashed
session. An access message names subjects and sessions; the hub closes each of their streams
with the message's reason, and each session then writes its `reconnect` frame with its resume
id. Finding them is a dictionary look-up per name, never a scan of every stream.

A stream's credentials are read before it registers (while it finds its start position, say):
a revocation that came in between would miss it. So revocations are remembered for a while,
and a stream registering with the time its request began is closed at once if one of its names
was revoked since: the change was committed before the message was sent, so a request that
began after the message came read the new state, and one that began before it is ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

# How long a revocation is remembered for streams still on their way to registering: far longer
# than opening a stream takes (which waits on Kafka for seconds at most).
REMEMBERED_SECONDS = 300.0


class Closable(Protocol):
    def close(self, reason: str) -> None: ...


class StreamOwners:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_name: dict[str, set[Closable]] = {}
        self._names: dict[Closable, tuple[str, ...]] = {}
        self._revoked: dict[str, tuple[float, str]] = {}  # name: (when, why), the recent ones
        self.clock = clock

    def add(self, stream: Closable, *, subject: str, session: str | None, since: float | None = None) -> None:
        """Register a stream; `since` (this clock's time its request began): close it at once if
        one of its names was revoked from then on."""
        names = (f"subject:{subject}",) + ((f"session:{session}",) if session else ())
        self._names[stream] = names
        for name in names:
            self._by_name.setdefault(name, set()).add(stream)
        if since is not None:
            missed = [self._revoked[n] for n in names if n in self._revoked and self._revoked[n][0] >= since]
            if missed:
                stream.close(max(missed)[1])

    def discard(self, stream: Closable) -> None:
        for name in self._names.pop(stream, ()):
            streams = self._by_name.get(name)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self._by_name[name]

    def revoke(self, *, subjects: Iterable[str], sessions: Iterable[str], reason: str) -> int:
        """Close the streams of these subjects and sessions; how many were closed."""
        names = [f"subject:{s}" for s in subjects] + [f"session:{s}" for s in sessions]
        self._remember(names, reason)
        found = {stream for name in names for stream in self._by_name.get(name, ())}
        for stream in found:
            stream.close(reason)
        return len(found)

    def _remember(self, names: list[str], reason: str) -> None:
        now = self.clock()
        for name in [n for n, (when, _) in self._revoked.items() if now - when > REMEMBERED_SECONDS]:
            del self._revoked[name]
        self._revoked.update((name, (now, reason)) for name in names)

    def __len__(self) -> int:
        return len(self._names)
