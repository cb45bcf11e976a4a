"""Publishing through a layer that refuses: halves, references, marks, waits, in order, once each."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import exceptions as redis_errors

from crm_events.core import messages as broadcast
from crm_events.ingest.layer_send import LAYER_CANNOT_CARRY, SMALL_MESSAGE_BYTES, RecordsSender, message_bytes
from crm_events.ingest.publish_watch import PublishWatch
from tests.support.payloads import domain_payload

OOM = "OOM command not allowed when used memory > 'maxmemory'."
Refusal = Callable[[list[dict[str, Any]]], BaseException | None]


class Layer:
    """Accepts what `refuse` lets through, keeping a copy of each accepted message's records."""

    def __init__(self, refuse: Refusal) -> None:
        self.refuse = refuse
        self.accepted: list[list[dict[str, Any]]] = []
        self.attempts = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.attempts += 1
        error = self.refuse(message["records"])
        if error is not None:
            raise error
        self.accepted.append(copy.deepcopy(message["records"]))


def sender_for(layer: Layer, stopping: asyncio.Event | None = None) -> RecordsSender:
    return RecordsSender(
        layer=layer, stopping=stopping or asyncio.Event(), backoff_max=0.001, watch=PublishWatch(45)
    )


def items_of(sizes: list[int]) -> list[dict[str, Any]]:
    return [broadcast.record_item(domain_payload(offset=o), prev=o, size=s) for o, s in enumerate(sizes)]


def travelled(layer: Layer) -> list[tuple[int, str]]:
    """(offset, how) of every record the layer accepted, in order: event, ref or marked."""
    out = []
    for records in layer.accepted:
        for item in records:
            if "ref" in item:
                out.append((item["ref"]["offset"], "ref"))
            else:
                how = "marked" if item["event"]["value_format"] == "undecodable" else "event"
                out.append((item["event"]["offset"], how))
    return out


def over(limit: int) -> Refusal:
    """Redis with `limit` bytes of room: a larger message is refused for memory."""
    return lambda records: redis_errors.OutOfMemoryError(OOM) if message_bytes(records) > limit else None


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 << 20), min_size=1, max_size=40),
    limit=st.integers(SMALL_MESSAGE_BYTES, 2 << 20),
)
async def test_every_record_gets_through_once_in_order_and_only_what_does_not_fit_by_reference(sizes, limit):
    layer = Layer(over(limit))
    assert await sender_for(layer).publish(items_of(sizes))
    expected = [(offset, "ref" if size > limit else "event") for offset, size in enumerate(sizes)]
    assert travelled(layer) == expected


async def test_a_reference_names_the_record_its_predecessor_and_why():
    layer = Layer(over(SMALL_MESSAGE_BYTES))
    event = domain_payload(topic="deals", partition=2, offset=40)
    item = broadcast.record_item(event, prev=37, size=4_500_000)
    assert await sender_for(layer).publish([item])
    assert layer.accepted == [[{
        "prev": 37, "size": 4_500_000,
        "ref": {"topic": "deals", "partition": 2, "offset": 40, "reason": f"OutOfMemoryError: {OOM}"},
    }]]
    assert broadcast.record_item_check(layer.accepted[0][0], served=frozenset({"deals"})) is None


async def test_a_record_the_serializer_refuses_travels_by_reference_like_any_refused_one():
    def msgpack_refuses(records):
        unpackable = any("event" in item and item["event"]["value"] == {"x": {1}} for item in records)
        return TypeError("can not serialize 'set' object") if unpackable else None

    items = items_of([10, 10, 10])
    items[1]["event"]["value"] = {"x": {1}}
    layer = Layer(msgpack_refuses)
    assert await sender_for(layer).publish(items)
    assert travelled(layer) == [(0, "event"), (1, "ref"), (2, "event")]
    assert items[1]["ref"]["reason"] == "TypeError: can not serialize 'set' object"


async def test_a_small_message_refused_for_memory_means_redis_is_full_and_is_waited_out_whole():
    refusals = iter([redis_errors.OutOfMemoryError(OOM)] * 3)
    layer = Layer(lambda records: next(refusals, None))
    sender = sender_for(layer)
    assert await sender.publish(items_of([100, 100]))
    assert travelled(layer) == [(0, "event"), (1, "event")], "neither split nor sent by reference"
    assert layer.attempts == 4


async def test_an_outage_is_waited_out_with_the_message_unchanged():
    refusals = iter([redis_errors.ConnectionError("refused"), redis_errors.TimeoutError("timeout")])
    layer = Layer(lambda records: next(refusals, None))
    assert await sender_for(layer).publish(items_of([5_000_000, 10]))
    assert travelled(layer) == [(0, "event"), (1, "event")] and len(layer.accepted) == 1


async def test_a_reference_the_layer_refuses_too_becomes_the_record_marked_with_the_reason():
    def refuses_events_and_references(records):
        if all("event" in item and item["event"]["value_format"] == "undecodable" for item in records):
            return None
        return redis_errors.ResponseError("Protocol error: invalid bulk length", status_code="ERR")

    items = items_of([10])
    layer = Layer(refuses_events_and_references)
    assert await sender_for(layer).publish(items)
    assert travelled(layer) == [(0, "marked")]
    reason = "ResponseError: Protocol error: invalid bulk length"
    assert items[0]["event"]["error"] == LAYER_CANNOT_CARRY.format(reason)
    assert items[0]["event"]["offset"] == 0 and items[0]["prev"] == 0


async def test_a_layer_that_refuses_every_message_is_an_outage_and_the_record_goes_whole_when_it_is_over():
    refusals = iter([redis_errors.ResponseError("unknown command 'EVAL'", status_code="ERR")] * 7)
    layer = Layer(lambda records: next(refusals, None))
    items = items_of([10])
    assert await sender_for(layer).publish(items)
    assert travelled(layer) == [(0, "event")], "not marked for a refusal that was not about it"
    assert items[0]["event"]["value_format"] == "json"


async def test_told_to_stop_while_waiting_it_returns_false_and_nothing_is_accepted():
    stopping = asyncio.Event()

    def down(records):
        stopping.set()
        return redis_errors.ConnectionError("Connection refused")

    layer = Layer(down)
    assert not await sender_for(layer, stopping).publish(items_of([10]))
    assert layer.accepted == []


async def test_an_error_that_is_none_of_the_layers_propagates():
    layer = Layer(lambda records: KeyError("a bug"))
    with pytest.raises(KeyError):
        await sender_for(layer).publish(items_of([10]))


async def test_what_made_it_wait_is_the_stall_watchs_reason():
    refusals = iter([redis_errors.OutOfMemoryError(OOM), redis_errors.ConnectionError("Connection refused")])
    seen: list = []

    def refuse(records):
        seen.append(sender.watch.stalled())
        return next(refusals, None)

    layer = Layer(refuse)
    sender = sender_for(layer)
    sender.watch.threshold = 0  # any wait is a stall: what it says is under test
    sender.watch.records_waiting()
    assert await sender.publish(items_of([10]))
    assert [stall[1] for stall in seen[1:]] == [
        f"Redis is full: OutOfMemoryError: {OOM}", "ConnectionError: Connection refused",
    ]
