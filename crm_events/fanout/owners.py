"""Whose streams are open in this process, so one access message can end exactly theirs.

A stream registers its subject (`user:NAME`, `jwt:SUB`) and, for a session user, its hashed
session. An access message names subjects and sessions; the hub closes each of their streams
with the message's reason, and each session then writes its `reconnect` frame with its resume
id. Finding them is a dictionary look-up per name, never a scan of every stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Closable(Protocol):
    def close(self, reason: str) -> None: ...


class StreamOwners:
    def __init__(self) -> None:
        self._by_name: dict[str, set[Closable]] = {}
        self._names: dict[Closable, tuple[str, ...]] = {}

    def add(self, stream: Closable, *, subject: str, session: str | None) -> None:
        names = (f"subject:{subject}",) + ((f"session:{session}",) if session else ())
        self._names[stream] = names
        for name in names:
            self._by_name.setdefault(name, set()).add(stream)

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
        found = {stream for name in names for stream in self._by_name.get(name, ())}
        for stream in found:
            stream.close(reason)
        return len(found)

    def __len__(self) -> int:
        return len(self._names)
