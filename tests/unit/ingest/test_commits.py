"""Offsets are committed in batches, never past what was published, and all of them in the end."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from hypothesis import given
from hypothesis import strategies as st

from crm_events.ingest.commits import COMMIT_FAILED_LOG, COMMIT_GIVEN_UP_LOG, Commits

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class Consumer:
    """What `Commits` uses of a consumer: `commit`, recorded (or refused after a rebalance, or
    never answered), and the partitions its metadata lists (None: not known yet)."""

    def __init__(self, *, refuse: bool = False, hang: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse = refuse
        self.hang = hang
        self.refusal = CommitFailedError("rebalanced")
        self.partitions: dict[str, set[int]] = {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse:
            raise self.refusal
        if self.hang:  # as aiokafka retrying a partition that no longer exists
            await asyncio.Event().wait()
        self.commits.append(offsets)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


async def test_published_offsets_wait_for_the_interval_then_go_in_one_commit():
    consumer = Consumer()
    commits = Commits(consumer, interval=3600)
    commits.published({A: 5})
    commits.published({A: 9, B: 2})
    await commits.due()
    assert consumer.commits == []
    commits.interval = 0
    await commits.due()
    assert consumer.commits == [{A: 9, B: 2}]
    await commits.due()
    assert consumer.commits == [{A: 9, B: 2}], "nothing new: no commit"


async def test_revoked_partitions_are_committed_alone_and_the_rest_stays_pending():
    consumer = Consumer()
    commits = Commits(consumer, interval=3600)
    commits.published({A: 5, B: 7})
    await commits.flush([B, TopicPartition("t", 9)])
    assert consumer.commits == [{B: 7}] and commits.pending == {A: 5}
    await commits.flush()
    assert consumer.commits == [{B: 7}, {A: 5}] and commits.pending == {}


async def test_a_commit_refused_after_a_rebalance_is_logged_and_not_retried(caplog):
    consumer = Consumer(refuse=True)
    commits = Commits(consumer, interval=0)
    commits.published({A: 3})
    with caplog.at_level(logging.WARNING):
        await commits.due()
    assert commits.pending == {}
    assert [r.getMessage() for r in caplog.records] == [COMMIT_FAILED_LOG % ({A: 3}, consumer.refusal)]


@given(st.lists(st.tuples(st.sampled_from([A, B]), st.integers(0, 10**6), st.booleans()), max_size=30))
async def test_whatever_the_order_the_last_published_offset_of_each_partition_is_committed(steps):
    consumer = Consumer()
    commits = Commits(consumer, interval=3600)
    last: dict[TopicPartition, int] = {}
    for tp, offset, due in steps:
        commits.published({tp: offset})
        last[tp] = offset
        commits.interval = 0 if due else 3600
        await commits.due()
    await commits.flush()
    committed: dict[TopicPartition, int] = {}
    for offsets in consumer.commits:
        committed.update(offsets)
    assert committed == last and commits.pending == {}


async def test_a_partition_gone_from_the_metadata_is_not_committed():
    consumer = Consumer()
    consumer.partitions["t"] = {0}  # partition 1 deleted (the topic recreated with fewer, say)
    commits = Commits(consumer, interval=0)
    commits.published({A: 4, B: 6})
    await commits.due()
    assert consumer.commits == [{A: 4}] and commits.pending == {}


@pytest.mark.parametrize("error", [
    KafkaConnectionError("connection reset"), NodeNotReadyError("node 1"), RequestTimedOutError(),
    UnknownTopicOrPartitionError(), IllegalStateError("no longer assigned"),
])
async def test_a_commit_failing_with_any_kafka_error_is_given_up_with_a_warning(caplog, error: KafkaError):
    consumer = Consumer(refuse=True)
    consumer.refusal = error
    commits = Commits(consumer, interval=0)
    commits.published({A: 3})
    with caplog.at_level(logging.WARNING):
        await commits.due()
    assert commits.pending == {}
    assert [r.getMessage() for r in caplog.records] == [
        COMMIT_GIVEN_UP_LOG % ({A: 3}, str(error) or type(error).__name__)]


async def test_a_commit_that_never_answers_is_given_up_with_a_warning_and_the_loop_goes_on(caplog):
    consumer = Consumer(hang=True)
    commits = Commits(consumer, interval=0, timeout=0.05)
    commits.published({A: 3})
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(commits.due(), timeout=5)
    assert commits.pending == {}
    assert [r.getMessage() for r in caplog.records] == [COMMIT_GIVEN_UP_LOG % ({A: 3}, "TimeoutError")]
    consumer.hang = False
    commits.published({A: 8})
    await commits.due()
    assert consumer.commits == [{A: 8}]
