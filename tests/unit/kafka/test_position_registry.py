"""Registering positions in the log: once per content, and no waiting on a log that refuses."""

from __future__ import annotations

import asyncio

import pytest

from crm_events.core.position_log import LogRecord, Registered
from crm_events.exceptions import KafkaUnavailable
from crm_events.kafka import position_registry
from crm_events.kafka.position_registry import REGISTRY_PAUSED, PositionRegistry
from tests.support.payloads import serving


class Appender:
    def __init__(self, *, refuse: bool = False) -> None:
        self.records: list[LogRecord] = []
        self.refuse = refuse

    async def append(self, record: LogRecord) -> int:
        self.records.append(record)
        if self.refuse:
            raise KafkaUnavailable("positions log not written: UnknownTopicOrPartitionError")
        return 40 + len(self.records)

    async def close(self) -> None:
        pass


def test_the_same_positions_are_written_once():
    registry = PositionRegistry(serving("t"))
    registry.appender = appender = Appender()  # type: ignore[assignment]

    async def scenario():
        first = await registry.register({("t", 0): 5})
        again = await registry.register({("t", 0): 5})
        other = await registry.register({("t", 0): 6})
        return first, again, other

    assert asyncio.run(scenario()) == (Registered(41), Registered(41), Registered(42))
    assert [record.registered for record in appender.records] == [{("t", 0): 5}, {("t", 0): 6}]


def test_after_a_refusal_registering_fails_at_once_for_a_while():
    registry = PositionRegistry(serving("t"))
    registry.appender = appender = Appender(refuse=True)  # type: ignore[assignment]

    async def scenario():
        with pytest.raises(KafkaUnavailable):
            await registry.register({("t", 0): 5})
        with pytest.raises(KafkaUnavailable) as caught:
            await registry.register({("t", 0): 6})
        return str(caught.value)

    message = asyncio.run(scenario())
    assert len(appender.records) == 1  # Kafka was not asked again
    assert message == REGISTRY_PAUSED.format(
        reason="positions log not written: UnknownTopicOrPartitionError"
    )


class HungProducer:
    """A producer whose broker went away after it started: sends never finish, and stop()
    waits for the unsent record to expire (as aiokafka's does) until `expired` is set."""

    def __init__(self) -> None:
        self.expired = asyncio.Event()
        self.stop_finished = False

    async def send_and_wait(self, *args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        await self.expired.wait()
        self.stop_finished = True


def test_a_failed_write_does_not_wait_for_its_producer_to_stop(monkeypatch):
    monkeypatch.setattr(position_registry, "WRITE_TIMEOUT", 0.05)
    appender = position_registry.PositionLogAppender(serving("t"))
    producer = HungProducer()
    appender._producer = producer  # type: ignore[assignment]

    async def scenario():
        with pytest.raises(KafkaUnavailable):
            await appender.append(LogRecord(consumer="", registered={("t", 0): 5}))
        stopped_when_refused = producer.stop_finished
        producer.expired.set()
        await appender.close()  # waits for the background stop
        return stopped_when_refused

    assert asyncio.run(scenario()) is False
    assert producer.stop_finished
