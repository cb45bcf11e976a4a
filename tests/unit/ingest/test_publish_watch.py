"""The stall watch on a fake clock: stalled only while records wait and nothing is accepted."""

from __future__ import annotations

import logging

from crm_events.ingest.publish_watch import NO_REASON, PublishWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_consumer_is_never_stalled() -> None:
    clock = Clock()
    watch = PublishWatch(45, clock=clock)
    clock.now += 3600
    assert watch.stalled() is None


def test_records_waiting_past_the_threshold_with_nothing_accepted_is_a_stall_with_its_reason(caplog) -> None:
    caplog.set_level(logging.INFO, logger="crm_events.ingest.publish_watch")
    clock = Clock()
    watch = PublishWatch(45, clock=clock)
    watch.records_waiting()
    watch.failed("OutOfMemoryError: OOM command not allowed")
    clock.now += 45
    assert watch.stalled() is None, "at the threshold, not past it"
    clock.now += 1
    assert watch.stalled() == (46, "OutOfMemoryError: OOM command not allowed")
    clock.now += 10
    assert watch.stalled() == (56, "OutOfMemoryError: OOM command not allowed")
    assert caplog.text.count("publishing stalled for 46 s: OutOfMemoryError") == 1, "logged once"
    watch.accepted()
    assert watch.stalled() is None
    assert "publishing resumed after a stall of 56 s" in caplog.text


def test_each_accepted_message_is_progress_and_a_new_wait_starts_from_it() -> None:
    clock = Clock()
    watch = PublishWatch(45, clock=clock)
    watch.records_waiting()
    clock.now += 40
    watch.accepted()
    clock.now += 40
    assert watch.stalled() is None, "40 s since the last accepted message"
    watch.idle()
    clock.now += 100
    watch.records_waiting()
    clock.now += 46
    assert watch.stalled() == (46, NO_REASON)
