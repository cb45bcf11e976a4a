"""The benchmark's events: a send-time marker inside a CRM-shaped value, padded to a frame size.

Every event's value is `{"type": "bench.tick", "bench": "<run>:<seq>:<sent_ns>", "pad": "..."}`.
An event meant for one client only (the filtered mode) also carries `"owner": "<owner>"`, its
record key is the owner, and its marker ends in `:<owner>`, so the client that receives it
can tell whether it was meant for it.
The load clients find `"bench":"` in the frames they receive; `sent_ns` is `time.time_ns()`
taken just before the event was handed to Kafka (or, for the in-process baseline, to the
clients' queues), so latency is produce -> receive on this machine's wall clock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from crm_events.core.live_event import LiveEvent
from crm_events.core.records import record_decode
from crm_events.core.tokens import token_encode

EVENT_TYPE = "bench.tick"
FRAME_BYTES = 312
PARTITIONS = 3
_SAMPLE_OFFSET = 10_000  # offsets in a typical run are 4-5 digits long


@dataclass
class _Record:
    """Just what `record_decode` reads, so baseline frames have the Kafka path's exact shape."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes
    key: bytes | None = None
    headers: tuple = ()


def value_bytes(run: str, seq: int, pad: int, sent_ns: int | None = None, owner: str | None = None) -> bytes:
    sent = time.time_ns() if sent_ns is None else sent_ns
    if owner is None:
        value = {"type": EVENT_TYPE, "bench": f"{run}:{seq}:{sent}", "pad": "x" * pad}
    else:
        value = {"type": EVENT_TYPE, "owner": owner, "bench": f"{run}:{seq}:{sent}:{owner}", "pad": "x" * pad}
    return json.dumps(value, separators=(",", ":")).encode()


def owner_of(seq: int, owners: int) -> str:
    """The one client event `seq` is meant for, when events are spread over `owners` clients:
    the client opened as number n (bench/load_client.py) is owner `o<n>`."""
    return f"o{seq % owners}"


def payload_build(topic: str, partition: int, offset: int, value: bytes) -> dict[str, Any]:
    """The client payload the service would build for this record."""
    record = _Record(topic, partition, offset, int(time.time() * 1000), value)
    return record_decode(record)


def frame_build(topic: str, positions: dict[tuple[str, int], int], payload: dict[str, Any]) -> bytes:
    return LiveEvent(payload).frame(token_encode(positions))


def pad_for(topic: str, target: int = FRAME_BYTES) -> int:
    """Pad length that makes a frame on `topic` about `target` bytes long."""
    positions = {(topic, partition): _SAMPLE_OFFSET for partition in range(PARTITIONS)}
    sample = value_bytes("r0", _SAMPLE_OFFSET, 0, sent_ns=time.time_ns())
    frame = frame_build(topic, positions, payload_build(topic, 0, _SAMPLE_OFFSET, sample))
    return max(0, target - len(frame))


def frame_size(topic: str, pad: int) -> int:
    positions = {(topic, partition): _SAMPLE_OFFSET for partition in range(PARTITIONS)}
    sample = value_bytes("r0", _SAMPLE_OFFSET, pad, sent_ns=time.time_ns())
    return len(frame_build(topic, positions, payload_build(topic, 0, _SAMPLE_OFFSET, sample)))
