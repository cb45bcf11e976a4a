"""Publishing records messages so that no refusal stops the records after it.

The rule, by what a failed send means (`refusals.py`):

- An outage (connection refused, reset, timed out; Redis not taking writes for now) is
  waited out with backoff, the message unchanged.
- A refused message (memory or the command itself) of several records is halved, and the
  halves are published in turn, down to single records: a smaller message may fit where a
  larger one did not, and the records that fit are not held up by one that does not.
- A single record refused travels by reference (`messages.reference_item`): a small item
  naming its position and the reason, and every web process reads the record from Kafka.
- A message of at most `SMALL_MESSAGE_BYTES` refused for MEMORY is not refused for its
  size: Redis is full (of other clients' data, say), so it is waited out like an outage,
  unchanged; a reference is such a message. This keeps small records travelling whole
  while Redis is full, at the price of waiting; the `PublishWatch` reports the wait.
- A reference refused for another reason is replaced by the record marked `undecodable`
  with the reason (delivered with its position, counted, logged, dead-lettered by the
  publisher). If that is refused too, the layer refuses every message whatever it holds,
  which is an outage after all: waited out, starting again from the record itself.

Items are changed in place (`ref` instead of `event`, or a marked `event`), so the
publisher sees afterwards how each record travelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.layers import BaseChannelLayer

from crm_events.core import messages as broadcast
from crm_events.core.backoff import Backoff
from crm_events.core.records import undecodable_payload
from crm_events.ingest.publish_watch import PublishWatch
from crm_events.ingest.refusals import MEMORY, OUTAGE, LayerFailure, layer_failure_classify

logger = logging.getLogger(__name__)

# A batch's number in the positions log, and the snapshot its record carries.
Numbered = tuple[int, dict[tuple[str, int], int] | None]

# Below this a message refused for memory means Redis is full, not that the message is too
# big: well above a reference (about two hundred bytes), well below a batch (BATCH_MAX_BYTES).
SMALL_MESSAGE_BYTES = 4096
BACKOFF_INITIAL = 0.5
LAYER_CANNOT_CARRY = "the channel layer cannot carry it: {}"
REDIS_FULL = "Redis is full: {}"


def message_bytes(items: list[dict[str, Any]]) -> int:
    """About what a message of `items` weighs in Redis (a reference: nearly nothing)."""
    return sum(0 if "ref" in item else item["size"] for item in items)


class RecordsSender:
    """Publishes records messages for the consumer, handling every refusal as above."""

    def __init__(
        self, *, layer: BaseChannelLayer, stopping: asyncio.Event, backoff_max: float, watch: PublishWatch,
    ) -> None:
        self.layer = layer
        self.stopping = stopping
        self.backoff_max = backoff_max
        self.watch = watch
        self.source = ""  # the Kafka cluster id, set by the publisher once known

    async def publish(self, items: list[dict[str, Any]], numbered: Numbered | None = None) -> bool:
        """Publish `items` in order, as batch `numbered` of the positions log if given; False if
        told to stop before all were accepted. Parts of a batch that had to be split go
        unnumbered (web processes then read the batch's record from the log)."""
        outcome = await self._send(items, numbered)
        if not isinstance(outcome, LayerFailure):
            return outcome
        if not items:
            return True  # only a snapshot, refused: web processes get one with a later batch
        if len(items) > 1:
            half = len(items) // 2
            return await self.publish(items[:half]) and await self.publish(items[half:])
        return await self._single_publish(items[0], outcome)

    def _backoff(self) -> Backoff:
        return Backoff(initial=min(BACKOFF_INITIAL, self.backoff_max), maximum=self.backoff_max)

    async def _single_publish(self, item: dict[str, Any], failure: LayerFailure) -> bool:
        original = dict(item)
        while True:
            for reform in (_by_reference, _marked):
                reform(item, original, failure.reason)
                outcome = await self._send([item])
                if not isinstance(outcome, LayerFailure):
                    return outcome
                failure = outcome
            # Refused even marked: not this record's fault. Wait, then try it whole again.
            item.clear()
            item.update(original)
            outcome = await self._outage_wait_out(item, failure)
            if not isinstance(outcome, LayerFailure):
                return outcome
            failure = outcome

    async def _outage_wait_out(self, item: dict[str, Any], failure: LayerFailure) -> bool | LayerFailure:
        """Resend `item` as it is, with backoff, while the layer refuses it as it refused every
        form of it; True once accepted, False if stopped, or another refusal (about it, then)."""
        backoff = self._backoff()
        outcome: bool | LayerFailure = failure
        while isinstance(outcome, LayerFailure) and outcome.reason == failure.reason:
            if not await self._wait(backoff, failure, 1):
                return False
            outcome = await self._send([item])
        return outcome

    async def _send(
        self, items: list[dict[str, Any]], numbered: Numbered | None = None
    ) -> bool | LayerFailure:
        """Send one message, waiting out outages and a full Redis: True once accepted, False if
        stopped first, or the failure if the layer refuses this message."""
        batch, snapshot = numbered if numbered is not None else (None, None)
        message = broadcast.records_message(items, source=self.source, batch=batch, snapshot=snapshot)
        backoff = self._backoff()
        while not self.stopping.is_set():
            try:
                await self.layer.group_send(broadcast.BROADCAST_GROUP, message)
            except Exception as error:  # noqa: BLE001 - classified; what is not is re-raised
                failure = layer_failure_classify(error)
                if failure is None:
                    raise
                if failure.kind == MEMORY and message_bytes(items) <= SMALL_MESSAGE_BYTES:
                    failure = LayerFailure(OUTAGE, REDIS_FULL.format(failure.reason))
                if failure.kind != OUTAGE:
                    self.watch.failed(failure.reason)
                    logger.info("the channel layer refused %d records (%s)", len(items), failure.reason)
                    return failure
                if not await self._wait(backoff, failure, len(items)):
                    return False
                continue
            self.watch.accepted()
            return True
        return False

    async def _wait(self, backoff: Backoff, failure: LayerFailure, count: int) -> bool:
        """Sleep the next backoff delay unless told to stop; False if stopped."""
        self.watch.failed(failure.reason)
        delay = backoff.next_delay()
        logger.warning(
            "channel layer unavailable (%s) publishing %d records; retrying in %.1fs",
            failure.reason, count, delay,
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.stopping.wait()
        return not self.stopping.is_set()


def _by_reference(item: dict[str, Any], original: dict[str, Any], reason: str) -> None:
    event = original["event"]
    item.clear()
    item.update(broadcast.reference_item(
        topic=event["topic"], partition=event["partition"], offset=event["offset"],
        prev=original["prev"], size=original["size"], reason=reason,
    ))


def _marked(item: dict[str, Any], original: dict[str, Any], reason: str) -> None:
    event = original["event"]
    item.clear()
    item.update(broadcast.record_item(
        undecodable_payload(
            topic=event["topic"], partition=event["partition"], offset=event["offset"],
            error=LAYER_CANNOT_CARRY.format(reason),
        ),
        prev=original["prev"], size=0,  # what it weighs now: its position and a reason
    ))
