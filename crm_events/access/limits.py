"""Concurrent stream limits: globally, per client address and per token subject.

Counting is in-process: each web process (Daphne) enforces the limits on its own
streams, so with N processes behind a balancer the effective global limit is
N x `SSE_MAX_STREAMS`. Past the global limit the answer is 503 (this process is
full, another may not be); past a client's or subject's limit it is 429. Both
carry `Retry-After`.

The view acquires a `StreamSlot` before it answers, so a refusal can still be a
status code; the body releases it when the stream ends (`async with slot:`). A slot
that is never released explicitly (a client gone before the body started) is
released when it is garbage collected.
"""

from __future__ import annotations

import weakref
from collections import Counter

from django.http import HttpRequest

from crm_events import metrics
from crm_events.access.auth import Principal
from crm_events.access.client_address import client_address
from crm_events.config import LimitsConfig, limits_config
from crm_events.exceptions import StreamLimitReached

LIMIT_GLOBAL = "global"
LIMIT_CLIENT = "client"
LIMIT_SUBJECT = "subject"

SERVER_FULL = "this server has as many streams open as it may; retry later or elsewhere"
CLIENT_FULL = "too many streams open from this address"
SUBJECT_FULL = "too many streams open with these credentials"


class StreamLimiter:
    """Counts the open streams of one process, in total, by client and by subject."""

    def __init__(self) -> None:
        self.total = 0
        self.by_client: Counter[str] = Counter()
        self.by_subject: Counter[str] = Counter()

    def acquire(self, *, client: str, subject: str | None, config: LimitsConfig) -> StreamSlot:
        """Count one more stream, or raise `StreamLimitReached` (and count nothing)."""
        if self.total >= config.max_streams:
            self._refuse(LIMIT_GLOBAL, SERVER_FULL, 503, config)
        if self.by_client[client] >= config.max_per_client:
            self._refuse(LIMIT_CLIENT, CLIENT_FULL, 429, config)
        if subject is not None and self.by_subject[subject] >= config.max_per_subject:
            self._refuse(LIMIT_SUBJECT, SUBJECT_FULL, 429, config)
        self.total += 1
        self.by_client[client] += 1
        if subject is not None:
            self.by_subject[subject] += 1
        metrics.STREAMS_CONNECTED.inc()
        return StreamSlot(self, client=client, subject=subject)

    def _refuse(self, limit: str, message: str, status: int, config: LimitsConfig) -> None:
        metrics.stream_rejected(limit)
        raise StreamLimitReached(message, status=status, retry_after=config.retry_after, limit=limit)

    def _release(self, client: str, subject: str | None) -> None:
        self.total -= 1
        _decrement(self.by_client, client)
        if subject is not None:
            _decrement(self.by_subject, subject)
        metrics.STREAMS_CONNECTED.dec()


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]  # keep the counters as small as the set of current clients


class StreamSlot:
    """One counted stream. `release()` is idempotent; `async with slot:` releases on exit."""

    def __init__(self, limiter: StreamLimiter, *, client: str, subject: str | None) -> None:
        self.client = client
        self.subject = subject
        self._release = weakref.finalize(self, limiter._release, client, subject)

    @property
    def released(self) -> bool:
        return not self._release.alive

    def release(self) -> None:
        self._release()

    async def __aenter__(self) -> StreamSlot:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        self.release()


_limiter = StreamLimiter()


def limiter_get() -> StreamLimiter:
    """This process's limiter."""
    return _limiter


def stream_slot_acquire(request: HttpRequest, principal: Principal) -> StreamSlot:
    """Count a stream for this request's client and principal, or raise `StreamLimitReached`."""
    config = limits_config()
    subject = None if principal.is_anonymous else principal.subject
    client = client_address(request, config.trusted_proxies)
    return _limiter.acquire(client=client, subject=subject, config=config)
