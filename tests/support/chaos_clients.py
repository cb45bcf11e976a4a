"""The chaos run's browsers: the fault scenarios' fleet plus a `key=` and a `where=` client,
behind a balancer that picks a web process for every connection, keeping little of each frame."""

from __future__ import annotations

import base64
import json
import random
import urllib.parse
from collections import Counter
from typing import Any

from tests.support import record_contract
from tests.support.chaos_injections import HOSTILE_RECORDS
from tests.support.eventsource import BrowserClient, Position
from tests.support.faults import FLEET, Record

CUT_MAX = 600_000  # body bytes: cut clients lose a connection every 300 kB or so, mid-frame


class ChaosClient(BrowserClient):
    """A `BrowserClient` behind a balancer that picks a web process for every connection.

    A long run delivers hundreds of thousands of frames, so it keeps of each only its position,
    and the whole `data:` text only of frames that are not the production's ordinary events
    (hostile records, forgeries), for the contract check. A `domain_event` of another topic or
    with a position that is not two integers goes to `aliens`, as does a frame that is not JSON.
    """

    def __init__(self, *args: Any, topic: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topic = topic
        self.kept: dict[Position, str] = {}
        self.aliens: list[str] = []
        self.kinds: Counter[str] = Counter()

    async def _connect(self):
        self.port = self.rng.choice(self.ports)
        return await super()._connect()

    def _event(self, event: Any, now: float) -> None:
        if event.retry is not None:
            self.retry_ms = event.retry
        if not event.data or event.event is not None:
            return
        try:
            payload = json.loads(event.data)
        except ValueError:
            self.aliens.append(event.data[:300])
            return
        kind = payload.get("kind") if isinstance(payload, dict) else None
        self.kinds[str(kind)] += 1
        if kind == "reconnect":
            self.farewells[str(payload.get("reason", "?"))] += 1
        if kind != "domain_event":
            return
        position = (payload.get("partition"), payload.get("offset"))
        if payload.get("topic") != self.topic or not all(type(n) is int for n in position):
            self.aliens.append(event.data[:300])
            return
        self.received.append({"partition": position[0], "offset": position[1]})
        self.arrivals.setdefault(position, now)
        if not _ordinary(payload):
            self.kept.setdefault(position, event.data)


def _ordinary(payload: dict[str, Any]) -> bool:
    value = payload.get("value")
    return (
        payload.get("value_format") == "json" and isinstance(value, dict)
        and isinstance(value.get("seq"), int) and "chaos" not in value
    )


BINARY_KEY = HOSTILE_RECORDS["binary-key"].key
KEYS_WANTED = (b"acct-3", BINARY_KEY)
# A text key by its text, the binary one by its bytes in URL-safe base64 (docs/stream.md, "Parameters").
KEY_QUERY = urllib.parse.urlencode(
    [("key", "acct-3"), ("key_base64", base64.urlsafe_b64encode(BINARY_KEY).decode().rstrip("="))]
)


def _keyed(record: Record) -> bool:
    return record.key in KEYS_WANTED


def _stage_won(record: Record) -> bool:
    value = record_contract.json_value(record)
    deal = value.get("deal") if isinstance(value, dict) else None
    return isinstance(deal, dict) and deal.get("stage") == "won"


CHAOS_FLEET = [*FLEET, (KEY_QUERY, _keyed, True), ("where=deal.stage:won", _stage_won, False)]


def chaos_fleet(ports: list[int], topic: str, *, seed: int, seconds: float) -> list[ChaosClient]:
    """The fault scenarios' eight browsers plus a `key=` and a `where=` one; half are cut
    mid-frame again and again for the whole run, not only at its start."""
    rng = random.Random(seed)
    return [
        ChaosClient(
            f"client-{i}", ports, query, wants, seed=seed + i, topic=topic,
            cuts=[rng.randint(1, CUT_MAX) for _ in range(int(seconds // 5) + 5)] if cut else None,
        )
        for i, (query, wants, cut) in enumerate(CHAOS_FLEET)
    ]
