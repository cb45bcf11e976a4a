import asyncio

from aiokafka import TopicPartition

from crm_events.config import kafka_config
from crm_events.kafka import replay


class StartsForever:
    """A consumer whose start() never finishes, like one reaching a slow broker."""

    def __init__(self) -> None:
        self.starting = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        self.starting.set()
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


async def test_a_reader_cancelled_while_starting_gives_its_slot_back_and_stops_its_consumer(monkeypatch):
    consumer = StartsForever()
    monkeypatch.setattr(replay, "reader_create", lambda config: consumer)
    monkeypatch.setattr(replay, "readers_running", asyncio.Semaphore(1))

    async def read() -> None:
        async with replay.ReplayReader(kafka_config(), {TopicPartition("t", 0): 0}):
            pass

    task = asyncio.create_task(read())
    await consumer.starting.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert consumer.stopped
    assert not replay.readers_running.locked()  # the next reader can start
