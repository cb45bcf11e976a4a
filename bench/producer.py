"""Producing the benchmark's events at a steady rate, into Kafka or into the in-process baseline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.events import PARTITIONS, owner_of, value_bytes
from bench.waits import bounded

KAFKA_TIMEOUT = 60.0  # start, stop, one send (a full buffer waits), the acks of a batch


class KafkaTicker:
    """Sends `count` events at `rate`/s on an absolute schedule, round-robin over partitions.

    A tick that is late (the machine is busy) is sent at once rather than skipped, so the
    offered count is exact; `late_max_ms` says how far behind schedule the sender fell.
    With `owners`, event `seq` is meant for one client only: its key and `owner` field are
    `owner_of(seq, owners)` (bench/events.py). `headers` go on every record (the peer mode's
    channel header, bench/peer_centrifugo.py).
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)

    async def start(self) -> None:
        await bounded(self.producer.start(), KAFKA_TIMEOUT, f"Kafka at {self.bootstrap} (producer start)")

    async def stop(self) -> None:
        await bounded(self.producer.stop(), KAFKA_TIMEOUT, f"Kafka at {self.bootstrap} (producer stop)")

    async def run(
        self, *, topic: str, run: str, rate: float, count: int, pad: int, stop: asyncio.Event | None = None,
        owners: int = 0, headers: list[tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        late_max = 0.0
        futures = []
        for seq in range(count):
            if stop is not None and stop.is_set():
                count = seq
                break
            delay = started + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late_max = max(late_max, -delay)
            owner = owner_of(seq, owners) if owners else None
            key = owner.encode() if owner else None
            futures.append(await bounded(
                self.producer.send(topic, value_bytes(run, seq, pad, owner=owner), key=key,
                                   partition=seq % PARTITIONS, headers=headers),
                KAFKA_TIMEOUT, f"Kafka at {self.bootstrap} (taking event {seq} of {run})"))
        sending_seconds = loop.time() - started
        await bounded(asyncio.gather(*futures), KAFKA_TIMEOUT,
                      f"Kafka at {self.bootstrap} (acknowledging the {count} events of {run})")
        return {"sent": count, "seconds": round(sending_seconds, 2), "late_max_ms": round(late_max * 1000, 1)}


async def inproc_run(stack: Any, *, run: str, rate: float, count: int, pad: int) -> dict[str, Any]:
    """Ask the bench Daphne to publish in-process; return once its schedule is over."""
    started = time.monotonic()
    status, body = await stack.get(f"/bench/inproc/publish?run={run}&rate={rate}&count={count}&pad={pad}")
    if status != 200:
        raise RuntimeError(f"Daphne answered /bench/inproc/publish with {status}: {body!r:.300}")
    await asyncio.sleep(max(0.0, count / rate - (time.monotonic() - started)))
    return {"sent": count, "seconds": round(time.monotonic() - started, 2)}
