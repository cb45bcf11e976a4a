"""The one decoder of the Confluent wire format, at the consumer and in replay alike.

Two steps, so nothing blocks an event loop: `prepare(records)` (async) makes sure every schema id
the records name is in the cache, asking the registry in a worker thread; `wire_decode(raw)`
(sync, cheap: a dict look-up and the compiled reader) then decodes each value. Readers are kept
per id (least recently used dropped past `cache_size`): a schema id names one schema forever.

Failures never block and never mislabel:
- an id the registry does not know (a 404), or a schema we cannot read, is remembered for
  `NEGATIVE_TTL` seconds and its records delivered at once as `registry_undecoded`;
- a registry out of reach is asked again with backoff for `retry_seconds` (the batch waits:
  records keep their order, and a registry restarting comes back within it); after that the
  records are delivered marked, and while it stays away each missing id is tried once per
  `PROBE_SECONDS`, so decoding resumes by itself when the registry answers again.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from crm_events import metrics
from crm_events.config import RegistryConfig, registry_config
from crm_events.core.backoff import Backoff
from crm_events.core.records import VALUE_REGISTRY_UNDECODED, KafkaRecord, WireDecoded
from crm_events.core.wire_format import framed_parse
from crm_events.registry.client import RegistryClient, RegistryUnreachable, SchemaUnknown
from crm_events.registry.protobuf_files import SchemaInvalid
from crm_events.registry.schemas import SchemaReader, reader_compile

logger = logging.getLogger(__name__)

NEGATIVE_TTL = 60.0
PROBE_SECONDS = 5.0
BACKOFF_MAX = 5.0

REASON_UNKNOWN = "unknown"
REASON_UNREACHABLE = "unreachable"
REASON_INVALID = "invalid"
REASON_MISMATCH = "mismatch"
NOT_FETCHED = "the schema was not fetched before the record was decoded"
ERROR_FORM = "{reason}: {detail}"


@dataclass(slots=True)
class _Entry:
    schema: dict[str, Any]
    reader: SchemaReader | None = None
    reason: str = ""
    detail: str = ""
    expires: float = float("inf")


class RegistryDecoder:
    """Decodes values in the Confluent wire format with schemas from one registry."""

    def __init__(
        self, config: RegistryConfig, *, client: RegistryClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client if client is not None else (RegistryClient(config) if config.enabled else None)
        self.clock = clock
        self.cache: OrderedDict[int, _Entry] = OrderedDict()
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.unreachable_since: float | None = None
        self.last_error = ""
        self.gave_up = False

    # --- the sync half: per record ----------------------------------------------------------

    def wire_decode(self, raw: bytes | None) -> WireDecoded | None:
        if self.client is None:  # no registry: such values are bytes like any other
            return None
        framed = framed_parse(raw)
        if framed is None or raw is None:
            return None
        entry = self.cache.get(framed.schema_id)
        if entry is None:  # not prepared (no registry configured, or evicted meanwhile)
            entry = _Entry({"id": framed.schema_id, "subject": None, "version": None},
                           reason=REASON_UNREACHABLE, detail=NOT_FETCHED)
        else:
            self.cache.move_to_end(framed.schema_id)
        if entry.reader is None:
            return self._undecoded(raw, entry.schema, entry.reason, entry.detail)
        try:
            value = entry.reader.read(framed.body)
        except Exception as error:  # noqa: BLE001 - a producer's bytes raise anything; never fatal
            return self._undecoded(raw, entry.schema, REASON_MISMATCH, f"{type(error).__name__}: {error}")
        return WireDecoded(value=value, format=entry.reader.format, schema=entry.schema)

    @staticmethod
    def _undecoded(raw: bytes, schema: dict[str, Any], reason: str, detail: str) -> WireDecoded:
        metrics.registry_undecoded(reason)
        return WireDecoded(
            value=base64.b64encode(raw).decode("ascii"), format=VALUE_REGISTRY_UNDECODED,
            schema=schema, error=ERROR_FORM.format(reason=reason, detail=detail),
        )

    # --- the async half: per batch ----------------------------------------------------------

    def missing(self, records: Iterable[KafkaRecord]) -> set[int]:
        """Schema ids the records name that are not cached (or whose failure has expired)."""
        now, ids = self.clock(), set()
        for record in records:
            for raw in (record.value, record.key):
                framed = framed_parse(raw)
                if framed is not None:
                    entry = self.cache.get(framed.schema_id)
                    if entry is None or entry.expires <= now:
                        ids.add(framed.schema_id)
        return ids

    async def prepare(self, records: Iterable[KafkaRecord], *, within: float | None = None) -> None:
        """Fetch the schemas these records need; returns when each is cached or marked failed.
        `within` shortens the retry bound for a caller that has less time (the hub's repair)."""
        if self.client is None:
            return
        bound = self.config.retry_seconds if within is None else min(within, self.config.retry_seconds)
        for schema_id in sorted(self.missing(records)):
            await self._fetch_once(schema_id, bound)

    async def _fetch_once(self, schema_id: int, bound: float) -> None:
        # Streams replaying in the same process share one request per id.
        if (waiting := self.pending.get(schema_id)) is not None:
            await asyncio.shield(waiting)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending[schema_id] = future
        try:
            await self._fetch(schema_id, bound)
        finally:
            del self.pending[schema_id]
            future.set_result(None)

    async def _fetch(self, schema_id: int, bound: float) -> None:
        backoff = Backoff(initial=0.25, maximum=BACKOFF_MAX)
        deadline = self.clock() + (0.0 if self.gave_up else bound)
        while True:
            try:
                entry = await asyncio.to_thread(self._load, schema_id)
            except RegistryUnreachable as error:
                delay = backoff.next_delay()
                if not self._unreachable(str(error), retry=self.clock() + delay < deadline):
                    self._store(schema_id, _Entry(self._bare(schema_id), reason=REASON_UNREACHABLE,
                                                  detail=str(error), expires=self.clock() + PROBE_SECONDS))
                    return
                await asyncio.sleep(delay)
                continue
            self._reachable()
            self._store(schema_id, entry)
            return

    def _load(self, schema_id: int) -> _Entry:
        """Blocking: the schema and its reader (runs in a worker thread)."""
        assert self.client is not None
        try:
            registered = self.client.schema_by_id(schema_id)
        except SchemaUnknown as error:
            metrics.schema_fetched(REASON_UNKNOWN)
            return _Entry(self._bare(schema_id), reason=REASON_UNKNOWN, detail=str(error),
                          expires=self.clock() + NEGATIVE_TTL)
        except RegistryUnreachable:
            metrics.schema_fetched(REASON_UNREACHABLE)
            raise
        subject, version = self.client.subject_of(schema_id)
        schema = {"id": schema_id, "subject": subject, "version": version}
        try:
            reader = reader_compile(registered)
        except SchemaInvalid as error:
            metrics.schema_fetched(REASON_INVALID)
            logger.error("schema %s cannot be read: %s", schema_id, error)
            return _Entry(schema, reason=REASON_INVALID, detail=str(error),
                          expires=self.clock() + NEGATIVE_TTL)
        metrics.schema_fetched("ok")
        return _Entry(schema, reader=reader)

    @staticmethod
    def _bare(schema_id: int) -> dict[str, Any]:
        return {"id": schema_id, "subject": None, "version": None}

    def _store(self, schema_id: int, entry: _Entry) -> None:
        self.cache[schema_id] = entry
        self.cache.move_to_end(schema_id)
        while len(self.cache) > self.config.cache_size:
            self.cache.popitem(last=False)

    def _unreachable(self, error: str, *, retry: bool) -> bool:
        """Record the outage; True while the bounded retry goes on."""
        if self.unreachable_since is None:
            self.unreachable_since = self.clock()
            logger.error("Schema Registry unreachable (%s); retrying", error)
        self.last_error = error
        metrics.schema_registry_unreachable_set(True)
        if not retry and not self.gave_up:
            self.gave_up = True
            logger.error("Schema Registry still unreachable after %gs: delivering records that need it "
                         "marked registry_undecoded until it answers", self.config.retry_seconds)
        return retry

    def _reachable(self) -> None:
        if self.unreachable_since is not None:
            logger.warning("Schema Registry answers again; decoding resumes")
        self.unreachable_since, self.last_error, self.gave_up = None, "", False
        metrics.schema_registry_unreachable_set(False)

    def outage(self) -> tuple[float, str] | None:
        """(seconds, why) while the registry cannot be reached, for the consumer's heartbeat."""
        if self.unreachable_since is None:
            return None
        return self.clock() - self.unreachable_since, self.last_error

    def status(self) -> dict[str, Any]:
        """For /status: whether the registry answers this process, and why not."""
        if self.client is None:
            return {"configured": False}
        since = self.unreachable_since
        return {
            "configured": True, "reachable": since is None, "error": self.last_error or None,
            "unreachable_seconds": None if since is None else round(self.clock() - since, 1),
            "delivering_marked": self.gave_up, "schemas_cached": len(self.cache),
        }


@functools.cache
def registry_decoder() -> RegistryDecoder:
    """This process's decoder (one cache for the consumer loop, or for all of a web process's replays)."""
    return RegistryDecoder(registry_config())
