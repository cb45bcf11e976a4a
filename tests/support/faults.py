"""The fault-test harness: steady production, the truth read back from Kafka, the verdict.

A scenario produces numbered events at a steady rate while `BrowserClient`s read, injects
its fault, then reads the topic back from Kafka: what Kafka holds is what was produced (a
producer retry after a lost ack writes a record twice, and both must be delivered). Each
client must have received exactly the records its filter wants, once each, in offset order
per partition. The figures go to `artifacts/faults/<scenario>.json` and one summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tests.support import record_contract
from tests.support.eventsource import BrowserClient, Position

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "faults"
KINDS = ("deal.won", "ticket.opened", "deal.stage_changed", "ticket.resolved")


def typed_value(seq: int) -> bytes:
    """Deal and ticket events in turn, so `kind=` and `where=` filters keep a known part."""
    stage = "won" if seq % 3 else "lost"
    return json.dumps({"type": KINDS[seq % 4], "seq": seq, "deal": {"stage": stage}}).encode()


# --- production ------------------------------------------------------------------------------


class Production:
    """Produces `total` events at about `rate` per second, retrying through broker outages."""

    def __init__(
        self, bootstrap: str, topic: str, *, total: int, rate: float, batch: int = 10,
        value: Callable[[int], bytes] = typed_value, partitions: int = 3,
        key: Callable[[int], bytes | None] | None = None,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.total, self.batch, self.value, self.partitions = total, batch, value, partitions
        self.key = key  # the record key of each event (none by default)
        self.interval = batch / rate
        self.acked: dict[Position, float] = {}  # position -> when Kafka acknowledged it
        self.sent = 0
        self.errors = 0
        self.started = asyncio.Event()  # set once every client is connected

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        await self.started.wait()
        try:
            while self.sent < self.total:
                seqs = range(self.sent, min(self.sent + self.batch, self.total))
                try:
                    producer = producer or await self._producer()
                    await self._send(producer, seqs)
                except (KafkaError, OSError, TimeoutError):
                    self.errors += 1
                    await _producer_close(producer)
                    producer = None
                    await asyncio.sleep(0.5)  # Kafka is away: try the same batch again
                    continue
                self.sent += len(seqs)
                await asyncio.sleep(self.interval)  # pacing, not synchronisation
        finally:
            await _producer_close(producer)

    async def _producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=5000, linger_ms=2
        )
        try:
            await asyncio.wait_for(producer.start(), 10)
        except BaseException:
            await _producer_close(producer)
            raise
        return producer

    async def _send(self, producer: AIOKafkaProducer, seqs: range) -> None:
        futures = [
            await producer.send(
                self.topic, self.value(seq), key=self.key(seq) if self.key else None,
                partition=seq % self.partitions,
            )
            for seq in seqs
        ]
        for metadata in await asyncio.wait_for(asyncio.gather(*futures), 15):
            self.acked[(metadata.partition, metadata.offset)] = time.monotonic()

    async def wait_sent(self, count: int, timeout: float = 120) -> None:
        """Wait until `count` events were acknowledged (to inject a fault mid-stream)."""
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {count} events produced"
            await asyncio.sleep(0.05)


async def _producer_close(producer: AIOKafkaProducer | None) -> None:
    if producer is not None:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(producer.stop(), 10)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> Position:
        return (self.partition, self.offset)

    def json(self) -> Any:
        return json.loads(self.value) if self.value else None


async def topic_records(bootstrap: str, topic: str, partitions: int = 3, timeout: float = 60) -> list[Record]:
    """Every record in the topic's `partitions`, read from their start to their end offsets."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
    )
    await reader.start()
    try:
        async with asyncio.timeout(timeout):
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            records: list[Record] = []
            while any([await reader.position(tp) < ends[tp] for tp in tps]):
                for batch in (await reader.getmany(timeout_ms=1000)).values():
                    records += [
                        Record(r.partition, r.offset, r.key, r.value, tuple(r.headers)) for r in batch
                    ]
            return records
    finally:
        await reader.stop()


# --- the fleet and the verdict ---------------------------------------------------------------


def _everything(record: Record) -> bool:
    return True


# Filters by kind and field decide on the frame's `type` and strict-JSON value, so a record
# that is not strict JSON (type null) is never owed to them (tests/support/record_contract.py).


def _deals(record: Record) -> bool:
    return (record_contract.event_type(record) or "").startswith("deal.")


def _deals_won(record: Record) -> bool:
    return record_contract.event_type(record) == "deal.won"


def _won_tickets(record: Record) -> bool:
    value = record_contract.json_value(record)
    deal = value.get("deal") if isinstance(value, dict) else None
    stage = deal.get("stage") if isinstance(deal, dict) else None
    return (record_contract.event_type(record) or "").startswith("ticket.") and stage == "won"


def _partitions_1_2(record: Record) -> bool:
    return record.partition in (1, 2)


FLEET = [  # query, what it lets through, whether its connections get cut now and then
    ("", _everything, True),
    ("", _everything, False),
    ("", _everything, True),
    ("", _everything, False),
    ("kind=deal", _deals, True),
    ("kind=ticket&where=deal.stage:won", _won_tickets, False),
    ("partition=1&partition=2", _partitions_1_2, True),
    ("kind=deal.won", _deals_won, False),
]


def fleet(
    ports: list[int], *, seed: int, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1",
    headers: dict[str, str] | None = None, idle_timeout: float = 15.0,
) -> list[BrowserClient]:
    """Eight browsers spread over the web processes, half filtered, half cut five times early on."""
    rng = random.Random(seed)
    return [
        BrowserClient(
            f"client-{i}", ports, query, wants, seed=seed + i,
            cuts=[rng.randint(1, 30_000) for _ in range(5)] if cut else None, tls=tls, host=host,
            headers=headers, idle_timeout=idle_timeout,
        )
        for i, (query, wants, cut) in enumerate(FLEET)
    ]


# Given the production and the browsers, breaks something mid-stream; returns when it healed.
Fault = Callable[["Production", list[BrowserClient]], Awaitable[tuple[float, dict[str, Any]]]]


async def scenario_run(
    name: str, *, bootstrap: str, topic: str, ports: list[int], fault: Fault, capsys: Any,
    rate: float = 60.0, tail: int = 300, timeout: float = 240.0, seed: int = 7,
    tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", headers: dict[str, str] | None = None,
    idle_timeout: float = 15.0,
) -> Figures:
    """Browsers read while events flow; `fault` waits for a moment mid-stream, breaks something,
    and returns when it healed (with its own figures); then `tail` more events, and the verdict.
    With `tls` the browsers speak https to `ports` (a proxy in front of the web processes), on
    `host`, with `headers` on every request (a virtual server's Host, a session cookie);
    `idle_timeout` is the browsers' watchdog (longer than the service's heartbeat interval)."""
    clients = fleet(ports, seed=seed, tls=tls, host=host, headers=headers, idle_timeout=idle_timeout)
    deadline = time.monotonic() + timeout
    tasks = [asyncio.create_task(client.run(deadline), name=client.name) for client in clients]
    production = Production(bootstrap, topic, total=1 << 62, rate=rate)
    producing = asyncio.create_task(production.run(), name="production")
    try:
        await clients_connected(clients)
        production.started.set()
        healed_at, extra = await fault(production, clients)
        production.total = min(production.total, production.sent + tail)
        await producing
        records = await topic_records(bootstrap, topic)
        await clients_finish(clients, tasks, records)
    finally:
        for task in [*tasks, producing]:
            task.cancel()
        await asyncio.gather(*tasks, producing, return_exceptions=True)
    figures = figures_count(
        name, clients, len(records), recovery_s=recovery_time(clients, production.acked, healed_at),
        producer_errors=production.errors, **extra,
    )
    report(figures, capsys)
    return figures


async def clients_connected(clients: list[BrowserClient], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(client.connected for client in clients):
        assert time.monotonic() < deadline, "not every client got its first frame"
        await asyncio.sleep(0.05)


async def clients_finish(
    clients: list[BrowserClient], tasks: list[asyncio.Task], records: list[Record]
) -> None:
    """Tell each client what it must get, then let it read until it has it (or its deadline)."""
    for client in clients:
        client.expected = {record.position for record in records if client.wants(record)}
    await asyncio.gather(*tasks)


@dataclass
class Figures:
    scenario: str
    produced: int
    clients: int
    expected: int  # deliveries owed: per client, the produced events its filter lets through
    delivered: int  # of those, how many arrived
    lost: int
    duplicated: int
    unexpected: int  # events a client got that its filter should have kept away
    out_of_order: int
    recovery_s: float | None
    reconnects: int
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        recovery = "n/a" if self.recovery_s is None else f"{self.recovery_s:.1f}s"
        return (
            f"FAULTS {self.scenario}: produced={self.produced} delivered={self.delivered}/{self.expected} "
            f"lost={self.lost} duplicated={self.duplicated} unexpected={self.unexpected} "
            f"out_of_order={self.out_of_order} recovery={recovery} reconnects={self.reconnects}"
        )

    def write(self) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.scenario}.json"
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    def assert_exact(self) -> None:
        faults = (self.lost, self.duplicated, self.unexpected, self.out_of_order)
        assert faults == (0, 0, 0, 0), self.summary()
        assert self.delivered == self.expected > 0, self.summary()


def figures_count(
    scenario: str, clients: list[BrowserClient], produced: int, *, recovery_s: float | None,
    **extra: Any,
) -> Figures:
    expected = delivered = lost = duplicated = unexpected = out_of_order = 0
    for client in clients:
        got = [(event["partition"], event["offset"]) for event in client.received]
        wanted = client.expected or set()
        expected += len(wanted)
        delivered += len(wanted & set(got))
        lost += len(wanted - set(got))
        duplicated += len(got) - len(set(got))
        unexpected += len(set(got) - wanted)
        out_of_order += _order_breaks(got)
    extra.setdefault("stalls", sum(client.stalls for client in clients))
    extra.setdefault("statuses", dict(sum((client.statuses for client in clients), start=Counter())))
    extra.setdefault("farewells", dict(sum((client.farewells for client in clients), start=Counter())))
    return Figures(
        scenario=scenario, produced=produced, clients=len(clients), expected=expected,
        delivered=delivered, lost=lost, duplicated=duplicated, unexpected=unexpected,
        out_of_order=out_of_order, recovery_s=recovery_s,
        reconnects=sum(max(0, client.connections - 1) for client in clients), extra=extra,
    )


def _order_breaks(got: list[Position]) -> int:
    last: dict[int, int] = {}
    breaks = 0
    for partition, offset in got:
        if offset <= last.get(partition, -1):
            breaks += 1
        last[partition] = max(offset, last.get(partition, -1))
    return breaks


def recovery_time(clients: list[BrowserClient], acked: dict[Position, float], healed_at: float) -> float:
    """Seconds from `healed_at` until every client had every event it wants that was produced
    up to the first event Kafka acknowledged after `healed_at` (the backlog, then live again),
    or every event at all when none was produced after."""
    cutoff = min((at for at in acked.values() if at >= healed_at), default=float("inf"))
    latest = healed_at
    for client in clients:
        for position in client.expected or ():
            if acked.get(position, 0.0) <= cutoff and position in client.arrivals:
                latest = max(latest, client.arrivals[position])
    return round(latest - healed_at, 2)


def report(figures: Figures, capsys: Any) -> None:
    """Write the figures and print the summary line past pytest's capture."""
    figures.write()
    with capsys.disabled():
        print("\n" + figures.summary())


# --- watching a web process ------------------------------------------------------------------


class HealthProbe:
    """Asks `/healthz` every `every` seconds from its own thread; records each latency."""

    def __init__(self, port: int, every: float = 0.1, timeout: float = 10.0) -> None:
        self.port, self.every, self.timeout = port, every, timeout
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="healthz-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status != 200:
                    self.failures.append(f"status {response.status}")
            except OSError as error:
                self.failures.append(repr(error))
            self.latencies.append(time.monotonic() - started)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "healthz_probes": len(ordered),
            "healthz_max_s": round(ordered[-1], 3) if ordered else None,
            "healthz_p99_s": round(ordered[int(len(ordered) * 0.99)], 3) if ordered else None,
            "healthz_failures": len(self.failures),
        }


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
