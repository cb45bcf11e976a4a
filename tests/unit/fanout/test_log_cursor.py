"""The hub's place in the positions log: given only when the log accounts for its positions."""

from __future__ import annotations

import asyncio

from crm_events.core.position_log import Amended, LogPoint
from crm_events.fanout.log_cursor import LogCursor

P0, P1 = ("deals", 0), ("deals", 1)


def hub_pass(cursor: LogCursor, positions: dict, position, offset: int, segment: int | None) -> None:
    """What the hub does for one item: the cursor hears of it, then the hub moves."""
    cursor.passed(position, offset, segment)
    positions[position] = max(positions[position], offset + 1)
    cursor.compare((position,))


def test_numbered_batches_in_order_give_points_once_a_snapshot_covers_every_partition():
    positions = {P0: 10, P1: 4}
    cursor = LogCursor(positions, {"deals"})
    cursor.batch_begin((7, {P0: 10, P1: 4}))
    hub_pass(cursor, positions, P0, 10, 0)
    assert cursor.point() == LogPoint(7, 0, 10)
    hub_pass(cursor, positions, P1, 4, 1)
    cursor.batch_end()
    assert cursor.point() == LogPoint(7)
    cursor.batch_begin((8, None))
    hub_pass(cursor, positions, P1, 5, 0)
    cursor.batch_end()
    assert cursor.point() == LogPoint(8)


def test_a_skipped_number_an_unnumbered_batch_or_a_repair_give_no_point():
    positions = {P0: 0, P1: 0}
    cursor = LogCursor(positions, {"deals"})
    cursor.batch_begin((1, {P0: 0, P1: 0}))
    cursor.batch_end()
    assert cursor.point() == LogPoint(1)
    cursor.batch_begin((3, None))  # 2 never came
    hub_pass(cursor, positions, P0, 0, 0)
    cursor.batch_end()
    assert cursor.point() is None

    cursor = LogCursor(positions := {P0: 0, P1: 0}, {"deals"})
    cursor.batch_begin((1, {P0: 0, P1: 0}))
    cursor.batch_end()
    positions[P0] = 5  # records read back from Kafka, which the log has not numbered
    cursor.compare((P0,))
    assert cursor.point() is None

    cursor = LogCursor(positions := {P0: 0, P1: 0}, {"deals"})
    cursor.batch_begin((1, {P0: 0, P1: 0}))
    cursor.batch_end()
    cursor.batch_begin(None)  # not in the log: only the differences it makes show
    assert cursor.point() == LogPoint(1)
    hub_pass(cursor, positions, P1, 0, None)
    cursor.batch_end()
    assert cursor.point() is None
    assert cursor.amended({"deals"}, 8) == Amended(LogPoint(1), ((P1, 1),))


def test_a_snapshot_behind_the_hub_gives_no_point_until_the_log_catches_up():
    positions = {P0: 20, P1: 0}
    cursor = LogCursor(positions, {"deals"})
    cursor.batch_begin((1, {P0: 20, P1: 0}))
    cursor.batch_end()
    cursor.batch_begin((2, {P0: 15, P1: 0}))  # a consumer restarted from its last commit
    hub_pass(cursor, positions, P0, 17, 0)  # a replay: the hub drops it
    assert cursor.point() is None
    hub_pass(cursor, positions, P0, 19, 0)
    cursor.batch_end()
    assert cursor.point() == LogPoint(2)


def test_a_rebase_reads_the_log_and_applies_what_came_meanwhile():
    positions = {P0: 0, P1: 0}
    cursor = LogCursor(positions, {"deals"})
    cursor.batch_begin((5, None))  # no snapshot of everything: the view is unknown
    hub_pass(cursor, positions, P0, 0, 0)
    cursor.batch_end()
    assert cursor.point() is None
    arrived = asyncio.Event()

    async def resolve(point, wanted):
        assert point == LogPoint(5)
        await arrived.wait()
        return {P0: 1, P1: 0}

    async def log_end():
        raise AssertionError("the latest batch seen is known")

    async def scenario():
        rebase = asyncio.create_task(cursor.rebase(resolve, log_end))
        await asyncio.sleep(0)
        cursor.batch_begin((6, None))  # arrives while the log is read
        hub_pass(cursor, positions, P1, 0, 0)
        cursor.batch_end()
        arrived.set()
        assert await rebase
        assert cursor.point() == LogPoint(6)

    asyncio.run(scenario())


def test_a_rebase_the_log_cannot_answer_bases_on_a_covering_snapshot_that_came_meanwhile():
    positions = {P0: 0, P1: 0}
    cursor = LogCursor(positions, {"deals"})

    async def resolve(point, wanted):
        raise AssertionError("nothing to resolve in an empty log")

    async def log_end():
        cursor.batch_begin((0, {P0: 0, P1: 0}))  # the consumer's first batch, while the log is read
        hub_pass(cursor, positions, P0, 0, 0)
        cursor.batch_end()
        return 0

    assert asyncio.run(cursor.rebase(resolve, log_end))
    assert cursor.point() == LogPoint(0)
