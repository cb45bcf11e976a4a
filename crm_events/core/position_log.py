"""The positions log: the consumer's batches, numbered by Kafka, so a resume id can be small.

`consume_events` appends one record to a one-partition topic before it publishes each layer
message, and puts the record's offset in the message as its `batch` number. A record lists
the batch's segments in publishing order, each a run of one partition's records:
(topic, partition, start, end), where `start` is the consumer's position before the run and
`end` the offset after its last record. A record may also carry a snapshot: the consumer's
position, before the batch, in every partition it owns. The consumer writes one when it is
given partitions and every `SNAPSHOT_EVERY` records after that.

So a place in the live stream is a `LogPoint`: record N, and the last record passed in it
(segment j, offset o). The positions it stands for are the latest snapshot value of each
partition, raised by every later segment's end, up to the point (`LogState`). A partition
can only move forward here, as in the hub, which drops a restarted consumer's replays.

Everything read from the log is untrusted: `log_record_decode` refuses what it cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_events.core.positions import MAX_OFFSET, MAX_PARTITION, Position

LOG_RECORD_VERSION = 1
SNAPSHOT_EVERY = 100

LOG_RECORD_UNREADABLE = "positions log record {offset} is not one of ours: {why}"


class LogRecordError(ValueError):
    """A positions-log record that cannot be read (another writer's, or damaged)."""


@dataclass(frozen=True, slots=True)
class Segment:
    topic: str
    partition: int
    start: int
    end: int

    @property
    def position(self) -> Position:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One batch as the positions log holds it; or, with `registered`, positions a web process
    wrote down to name them by the record's offset (no part of any consumer's history)."""

    consumer: str
    segments: tuple[Segment, ...] = ()
    snapshot: Mapping[Position, int] | None = None
    registered: Mapping[Position, int] | None = None


@dataclass(frozen=True, slots=True, order=True)
class LogPoint:
    """After record `batch`, as far as offset `offset` of its segment `segment`; with
    `segment` None, after the whole record."""

    batch: int
    segment: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    """The positions a web process wrote down in the log's record `record`."""

    record: int


Ref = LogPoint | Registered


@dataclass(frozen=True, slots=True)
class Between:
    """A stream caught up partition by partition from `start` to `target`, in the order of
    (topic, partition): at `target` in every partition before (topic, partition), at
    `position` in that one, at `start` in every one after."""

    start: Ref
    target: Ref
    topic: str
    partition: int
    position: int


@dataclass(frozen=True, slots=True)
class Amended:
    """A log point, except in a few partitions, where the stream stands elsewhere (`None`: the
    partition is not the stream's): what a hub is between something the log does not account
    for (a partition added, a batch that came unnumbered) and the log catching up."""

    point: LogPoint
    exceptions: tuple[tuple[Position, int | None], ...]


def amended_state(state: Mapping[Position, int], amended: Amended) -> dict[Position, int]:
    result = dict(state)
    for position, offset in amended.exceptions:
        if offset is None:
            result.pop(position, None)
        else:
            result[position] = offset
    return result


def between_state(
    start: Mapping[Position, int], target: Mapping[Position, int], at: Between
) -> dict[Position, int]:
    here = (at.topic, at.partition)
    state = {}
    for position in sorted(start.keys() | target.keys()):
        if position < here:
            state[position] = target.get(position, start.get(position, 0))
        elif position == here:
            state[position] = at.position
        else:
            state[position] = start.get(position, target.get(position, 0))
    return state


def log_record_encode(record: LogRecord) -> bytes:
    body: dict[str, Any] = {
        "v": LOG_RECORD_VERSION,
        "consumer": record.consumer,
        "segments": [[s.topic, s.partition, s.start, s.end] for s in record.segments],
    }
    if record.snapshot is not None:
        body["snapshot"] = _entries(record.snapshot)
    if record.registered is not None:
        body["positions"] = _entries(record.registered)
    return json.dumps(body, separators=(",", ":")).encode()


def _entries(positions: Mapping[Position, int]) -> list[list[Any]]:
    return [[topic, partition, offset] for (topic, partition), offset in positions.items()]


def _positions_read(entries: object, *, offset: int, what: str) -> dict[Position, int] | None:
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(_position_entry(e, 3) for e in entries):
        raise LogRecordError(LOG_RECORD_UNREADABLE.format(offset=offset, why=f"bad {what}"))
    return {(topic, partition): value for topic, partition, value in entries}


def _is_count(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def _position_entry(entry: object, width: int) -> bool:
    return (
        isinstance(entry, list) and len(entry) == width and isinstance(entry[0], str)
        and _is_count(entry[1], MAX_PARTITION) and all(_is_count(n, MAX_OFFSET) for n in entry[2:])
    )


def log_record_decode(data: bytes | None, *, offset: int) -> LogRecord:
    """The record at `offset` of the positions log; raises `LogRecordError` if unreadable."""
    try:
        body = json.loads(data or b"")
    except (ValueError, UnicodeDecodeError) as error:
        raise LogRecordError(LOG_RECORD_UNREADABLE.format(offset=offset, why="not JSON")) from error
    if not isinstance(body, dict) or body.get("v") != LOG_RECORD_VERSION:
        raise LogRecordError(LOG_RECORD_UNREADABLE.format(offset=offset, why="unknown version"))
    segments = body.get("segments")
    if not isinstance(segments, list) or not all(_position_entry(s, 4) for s in segments):
        raise LogRecordError(LOG_RECORD_UNREADABLE.format(offset=offset, why="bad segments"))
    return LogRecord(
        consumer=str(body.get("consumer", "")),
        segments=tuple(Segment(*entry) for entry in segments),
        snapshot=_positions_read(body.get("snapshot"), offset=offset, what="snapshot"),
        registered=_positions_read(body.get("positions"), offset=offset, what="positions"),
    )


@dataclass
class LogState:
    """Positions as the log says, built by applying records in log order."""

    positions: dict[Position, int] = field(default_factory=dict)

    def snapshot_apply(self, snapshot: Mapping[Position, int]) -> None:
        self.positions.update(snapshot)

    def passed(self, position: Position, offset: int) -> None:
        """A record at `offset` passed (or dropped as already passed)."""
        if offset + 1 > self.positions.get(position, 0):
            self.positions[position] = offset + 1

    def record_apply(self, record: LogRecord, point: LogPoint | None = None) -> None:
        """Apply a whole record, or only as far as `point` (a point in this record)."""
        if record.snapshot is not None:
            self.snapshot_apply(record.snapshot)
        last = None if point is None else point.segment
        for index, segment in enumerate(record.segments):
            if last is not None and index == last:
                if point is not None and point.offset is not None:
                    self.passed(segment.position, min(point.offset, segment.end - 1))
                break
            self.passed(segment.position, segment.end - 1)


def covered_by(records: Iterable[LogRecord]) -> set[Position]:
    """The partitions some snapshot among `records` gives a value for."""
    return {position for record in records if record.snapshot for position in record.snapshot}


def log_state_at(
    records: list[tuple[int, LogRecord]], point: LogPoint, topics: Collection[str]
) -> dict[Position, int] | None:
    """The positions at `point`, from `records` (offset order, ending at `point.batch`), of
    every partition of `topics` that a snapshot among them covers (a partition only seen in
    segments since may have been further along before them); None if `point.batch` is not
    among the records."""
    history = [record for offset, record in records if offset <= point.batch]
    if not history or records[len(history) - 1][0] != point.batch:
        return None
    state = LogState()
    for record in history[:-1]:
        state.record_apply(record)
    state.record_apply(history[-1], point if point.segment is not None else None)
    return {position: state.positions[position] for position in covered_by(history) if position[0] in topics}
