"""Watches every event that reaches this web process's hub, for metrics and the canary.

The observer sees each event once per process, as the hub dispatches it (live or
repaired from Kafka): it observes the Kafka-to-hub latency, counts events per
topic and remembers when the last canary arrived. It is not a subscriber, so it
counts in no stream total and never holds the hub's drain at shutdown.

`hub_observe(hub)` attaches one observer per hub (to `hub.observers`), idempotently;
`/readyz`, `/metrics` and the stream view call it.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from crm_events import metrics
from crm_events.core.canary import is_canary

if TYPE_CHECKING:
    from crm_events.fanout.hub import EventHub


class HubObserver:
    def __init__(self) -> None:
        self.last_canary_at: float | None = None  # time.monotonic()

    def event_seen(self, payload: dict[str, Any]) -> None:
        """Called for every event the hub dispatches; never raises for odd payloads."""
        timestamp = payload.get("timestamp")
        metrics.event_received(str(payload.get("topic")), timestamp)
        if is_canary(payload):
            self.last_canary_at = time.monotonic()
            if isinstance(timestamp, int) and timestamp > 0:
                metrics.CANARY_DELAY.set(max(0.0, time.time() - timestamp / 1000))

    def canary_age(self) -> float | None:
        if self.last_canary_at is None:
            return None
        return time.monotonic() - self.last_canary_at

    def metrics_refresh(self) -> None:
        age = self.canary_age()
        metrics.CANARY_AGE.set(float("nan") if age is None else age)


_observers: weakref.WeakKeyDictionary[EventHub, HubObserver] = weakref.WeakKeyDictionary()


def hub_observe(hub: EventHub) -> HubObserver:
    """This hub's observer, attached on first call."""
    observer = _observers.get(hub)
    if observer is None:
        observer = _observers[hub] = HubObserver()
        hub.observers.append(observer.event_seen)
    return observer
