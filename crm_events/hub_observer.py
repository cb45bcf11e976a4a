"""Watches every event that reaches this web process's hub, for metrics and the canary.

A `HubObserver` subscribes to the `EventHub` like a client would, so it sees each
event once per process without any change to the hub: it observes the Kafka-to-hub
latency, counts events per topic and remembers when the last canary arrived.
It never queues anything. `hub_observe(hub)` attaches one per hub, idempotently;
`/readyz`, `/metrics` and the stream view call it.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from crm_events import metrics
from crm_events.canary import is_canary

if TYPE_CHECKING:
    from crm_events.fanout import EventHub, LiveEvent


class HubObserver:
    """A subscriber-shaped watcher: `offer()` is called by the hub for every live event."""

    def __init__(self) -> None:
        self.close_reason: str | None = None
        self.last_canary_at: float | None = None  # time.monotonic()

    def offer(self, event: LiveEvent) -> None:
        payload = event.payload
        metrics.event_received(event.topic, payload.get("timestamp"))
        if is_canary(payload):
            self.last_canary_at = time.monotonic()
            sent_ms = payload.get("timestamp")
            if isinstance(sent_ms, int) and sent_ms > 0:
                metrics.CANARY_DELAY.set(max(0.0, time.time() - sent_ms / 1000))

    def close(self, reason: str) -> None:
        # The hub closes its subscribers when it stops; an observer has nothing to release.
        self.close_reason = reason

    def canary_age(self) -> float | None:
        if self.last_canary_at is None:
            return None
        return time.monotonic() - self.last_canary_at

    def metrics_refresh(self) -> None:
        age = self.canary_age()
        metrics.CANARY_AGE.set(float("nan") if age is None else age)


_observers: weakref.WeakKeyDictionary[EventHub, HubObserver] = weakref.WeakKeyDictionary()


def hub_observe(hub: EventHub) -> HubObserver:
    """This hub's observer, subscribed on first call."""
    observer = _observers.get(hub)
    if observer is None:
        observer = _observers[hub] = HubObserver()
        hub.subscribe(observer)  # type: ignore[arg-type]
    return observer
