"""The messages `consume_events` sends through the channel layer to web processes.

Every web process keeps one channel in `BROADCAST_GROUP`, so each message reaches
each process once, whatever its number of clients. Records travel in batches, one
per consumer poll: partitions mixed, each partition's records in offset order. Each
record carries `prev`, the consumer's position in its partition before it, so a
receiver can tell a skipped range (records it never got) from offsets that simply
do not exist in Kafka.

Versions, and the rule for rolling deploys. Every message carries `v`, the version
of its shape (`MESSAGE_VERSION`); a message without `v` is version 1 (what consumers
sent before the field existed). A change that only adds fields keeps the version,
and receivers ignore fields they do not know, so any consumer and web process of the
same version interoperate in both directions. A change that removes a field or
changes its meaning raises the version; a receiver handles every version up to its
own and skips (counts, logs) newer ones. So across such a change, web processes are
upgraded first, then consumers. `source` names the Kafka cluster the consumer read,
so a web process ignores a consumer of another deployment that shares its Redis.

A record the layer cannot carry (Redis refuses it for its size, or the serializer
refuses its content) travels by reference: an item with `ref` (its topic, partition,
offset and the reason) instead of `event`, and each receiver reads that record from
Kafka at that position. An additive change: a receiver that does not know `ref` skips
the item as malformed, and the next record's `prev` (or heartbeat's `published`) shows
it the hole, which it repairs from Kafka: the same record, read the same way.

A heartbeat's `stalled` (additive) says the consumer has had records to publish and the
layer accepted none of them for longer than its threshold: how long, and the last reason.
Its `registry` (additive, same shape) says the consumer cannot reach the Schema Registry:
for how long, and why (records that need a schema wait, then go marked).

An access message (`MESSAGE_ACCESS`, sent by a web process when an administrator changes a
grant, or a user logs out) names subjects and hashed sessions whose open streams must end, and
the reason their `reconnect` frame gives. One per change, whatever the number of streams; an
older web process skips it as of an unknown type.

Receivers must treat every message as untrusted input: `record_item_check` and
`heartbeat_check` say what is wrong with one, or None.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from crm_events.core.close_reasons import CloseReason
from crm_events.core.positions import MAX_OFFSET, MAX_PARTITION
from crm_events.core.records import BINARY_FIELD, KIND_DOMAIN_EVENT, REGISTRY_FORMATS, VALUE_FORMATS

BROADCAST_GROUP = "crm-events.broadcast"
MESSAGE_RECORDS = "crm.records"
MESSAGE_HEARTBEAT = "crm.heartbeat"
MESSAGE_ACCESS = "crm.access"
# Names in one access message: a group's members beyond this are sent in several messages.
ACCESS_NAMES_MAX = 1000
# Why an access message ends streams: the `reconnect` frame's reason (a closed set: a metric label).
ACCESS_REASONS = frozenset({CloseReason.GRANTS_CHANGED, CloseReason.LOGGED_OUT})
# 2: keys and header values are null, text or {"base64": ...} (in 1, binary was a "base64:"
# string); batches may carry their positions-log number. A web process of this version reads
# version 1 messages as they are, binary keys as the text they were.
MESSAGE_VERSION = 2

# channels-redis keeps whole messages in Redis: bound them, whatever the record sizes.
BATCH_MAX_BYTES = 1 << 20

# A reason (of a reference, of a stall) is a line for a log and /readyz, never a payload.
MAX_REASON = 1000

# Why a message or a record in it was skipped: the label of the foreign-messages metric.
FOREIGN_NOT_A_DICT = "not_a_dict"
FOREIGN_UNKNOWN_TYPE = "unknown_type"
FOREIGN_TOO_NEW = "too_new"
FOREIGN_OTHER_SOURCE = "other_source"
FOREIGN_MALFORMED = "malformed"
FOREIGN_RECORD_MALFORMED = "record_malformed"
FOREIGN_RECORD_TOPIC = "record_topic_not_served"
FOREIGN_RECORD_UNENCODABLE = "record_unencodable"

# Standard base64 of at least one byte, padded: what `bytes_encode` writes for binary.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})")


def records_message(
    items: list[dict[str, Any]], *, source: str = "", batch: int | None = None,
    snapshot: Mapping[tuple[str, int], int] | None = None,
) -> dict[str, Any]:
    """A batch of records; `batch` is its number in the positions log (see position_log.py),
    and `snapshot` the consumer's positions before it, when the log's record carries them."""
    message = {"type": MESSAGE_RECORDS, "v": MESSAGE_VERSION, "source": source, "records": items}
    if batch is not None:
        message["batch"] = batch
    if snapshot is not None:
        message["snapshot"] = [[topic, partition, offset] for (topic, partition), offset in snapshot.items()]
    return message


def record_item(event: dict[str, Any], *, prev: int, size: int) -> dict[str, Any]:
    """One record in a batch: its client payload, its predecessor position, its size."""
    return {"prev": prev, "size": size, "event": event}


def reference_item(
    *, topic: str, partition: int, offset: int, prev: int, size: int, reason: str
) -> dict[str, Any]:
    """A record by its position, for a receiver to read from Kafka: what the layer could not carry."""
    return {
        "prev": prev, "size": size,
        "ref": {"topic": topic, "partition": partition, "offset": offset, "reason": reason[:MAX_REASON]},
    }


def item_reference(item: dict[str, Any]) -> dict[str, Any] | None:
    """The `ref` of a checked item sent by reference, None for one that carries its event."""
    return item.get("ref")


def item_position(item: dict[str, Any]) -> tuple[str, int, int]:
    """(topic, partition, offset) of a checked item, whichever way it travels."""
    where = item.get("ref") or item["event"]
    return where["topic"], where["partition"], where["offset"]


def batches_split(items: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Cut items into batches of at most BATCH_MAX_BYTES (a larger item travels alone)."""
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    for item in items:
        if batch and batch_bytes + item["size"] > BATCH_MAX_BYTES:
            yield batch
            batch, batch_bytes = [], 0
        batch.append(item)
        batch_bytes += item["size"]
    if batch:
        yield batch


def heartbeat_message(
    *, consumer_id: str, lag: dict[str, int], published: Iterable[tuple[str, int, int]] = (),
    source: str = "", stalled: tuple[float, str] | None = None,
    registry: tuple[float, str] | None = None,
) -> dict[str, Any]:
    """Proof that a consumer is alive and talking to Kafka, with its lag per partition.

    `published` holds (topic, partition, next offset) for every partition the consumer has
    published up to: a receiver whose position is below that lost records on the way (Redis
    restarted, say) even when no later record comes to show the gap by its `prev`.
    `stalled`, (seconds, reason) while publishing has made no progress past the consumer's
    threshold, travels as `{"seconds": ..., "reason": ...}`, else null.
    """
    return {
        "type": MESSAGE_HEARTBEAT,
        "v": MESSAGE_VERSION,
        "source": source,
        "consumer": consumer_id,
        "sent_at": time.time(),
        "lag": lag,
        "published": [list(position) for position in published],
        "stalled": None if stalled is None else {"seconds": stalled[0], "reason": stalled[1][:MAX_REASON]},
        "registry": None if registry is None else {
            "seconds": registry[0], "reason": registry[1][:MAX_REASON],
        },
    }


def access_message(
    *, subjects: Iterable[str] = (), sessions: Iterable[str] = (), reason: str
) -> dict[str, Any]:
    """End the open streams of these subjects (`user:NAME`) and hashed sessions, with `reason`."""
    return {
        "type": MESSAGE_ACCESS, "v": MESSAGE_VERSION, "source": "",
        "subjects": sorted(set(subjects)), "sessions": sorted(set(sessions)), "reason": reason,
    }


def access_check(message: dict[str, Any]) -> str | None:
    """What is wrong with an access message, or None."""
    names = [message.get("subjects"), message.get("sessions")]
    if not all(isinstance(v, list) and len(v) <= ACCESS_NAMES_MAX and all(isinstance(n, str) for n in v)
               for v in names):
        return FOREIGN_MALFORMED
    return None if _is_one_of(message.get("reason"), ACCESS_REASONS) else FOREIGN_MALFORMED


# --- checking what arrives -------------------------------------------------------------------


def _is_int(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def _is_one_of(value: object, names: frozenset[str]) -> bool:
    # Checked for str first: a list from a foreign sender is not even hashable.
    return isinstance(value, str) and value in names


def _is_optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_reason(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_REASON


def envelope_check(message: object, *, source: str) -> str | None:
    """What makes a message unusable to this receiver as a whole, or None."""
    if not isinstance(message, dict):
        return FOREIGN_NOT_A_DICT
    if message.get("type") not in (MESSAGE_RECORDS, MESSAGE_HEARTBEAT, MESSAGE_ACCESS):
        return FOREIGN_UNKNOWN_TYPE
    version = message.get("v", 1)
    if type(version) is not int or version < 1:
        return FOREIGN_MALFORMED
    if version > MESSAGE_VERSION:
        return FOREIGN_TOO_NEW
    sent_by = message.get("source") or ""
    if sent_by and source and sent_by != source:
        return FOREIGN_OTHER_SOURCE
    return None


def _is_encoded_bytes(value: object) -> bool:
    """A key or header value as `bytes_encode` writes it: null, text, or `{"base64": ...}`."""
    if value is None or isinstance(value, str):
        return True
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    data = value.get(BINARY_FIELD)
    return isinstance(data, str) and _BASE64.fullmatch(data) is not None


def _headers_valid(headers: object) -> bool:
    if not isinstance(headers, dict):
        return False
    for name, value in headers.items():
        if not isinstance(name, str):
            return False
        if isinstance(value, list):  # a repeated name: two values or more
            if len(value) < 2 or not all(_is_encoded_bytes(v) for v in value):
                return False
        elif not _is_encoded_bytes(value):
            return False
    return True


def _key_valid(event: dict[str, Any]) -> bool:
    """A key as `bytes_encode` writes it, or any JSON when it was decoded with its schema."""
    if "key_format" in event:
        return _is_one_of(event["key_format"], REGISTRY_FORMATS)
    return _is_encoded_bytes(event.get("key"))


def record_item_check(item: object, *, served: frozenset[str]) -> str | None:
    """What is wrong with one record of a records message, or None.

    The value itself is checked by encoding it (the hub does that once anyway). An item
    carries exactly one of `event` and `ref`.
    """
    if not isinstance(item, dict) or not _is_int(item.get("prev"), MAX_OFFSET):
        return FOREIGN_RECORD_MALFORMED
    if "ref" in item:
        return _reference_check(item, served=served)
    event = item.get("event")
    if not isinstance(event, dict) or event.get("kind") != KIND_DOMAIN_EVENT:
        return FOREIGN_RECORD_MALFORMED
    if not (
        _is_int(event.get("partition"), MAX_PARTITION) and _is_int(event.get("offset"), MAX_OFFSET)
        and type(event.get("timestamp")) is int and _key_valid(event)
        and _is_optional_str(event.get("type")) and _is_one_of(event.get("value_format"), VALUE_FORMATS)
        and _headers_valid(event.get("headers")) and isinstance(event.get("topic"), str)
    ):
        return FOREIGN_RECORD_MALFORMED
    if event["topic"] not in served:
        return FOREIGN_RECORD_TOPIC
    return None


def _reference_check(item: dict[str, Any], *, served: frozenset[str]) -> str | None:
    ref = item["ref"]
    if "event" in item or not isinstance(ref, dict):
        return FOREIGN_RECORD_MALFORMED
    if not (
        isinstance(ref.get("topic"), str) and _is_int(ref.get("partition"), MAX_PARTITION)
        and _is_int(ref.get("offset"), MAX_OFFSET) and _is_reason(ref.get("reason"))
        and item["prev"] <= ref["offset"]
    ):
        return FOREIGN_RECORD_MALFORMED
    if ref["topic"] not in served:
        return FOREIGN_RECORD_TOPIC
    return None


def records_of(message: dict[str, Any]) -> list[Any] | None:
    """The records list of a records message, or None if it has none."""
    records = message.get("records")
    return records if isinstance(records, list) else None


def heartbeat_check(message: dict[str, Any]) -> str | None:
    """What is wrong with a heartbeat, or None. Topics this receiver does not serve may
    appear in `published` (a consumer may serve more): the receiver ignores them."""
    lag, published = message.get("lag"), message.get("published", [])
    if not isinstance(message.get("consumer"), str) or not isinstance(lag, dict):
        return FOREIGN_MALFORMED
    if not all(isinstance(k, str) and type(v) is int for k, v in lag.items()):
        return FOREIGN_MALFORMED
    if not isinstance(published, list) or not _stalled_valid(message.get("stalled")):
        return FOREIGN_MALFORMED
    if not _stalled_valid(message.get("registry")):
        return FOREIGN_MALFORMED
    for entry in published:
        if not (
            isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
            and _is_int(entry[1], MAX_PARTITION) and _is_int(entry[2], MAX_OFFSET)
        ):
            return FOREIGN_MALFORMED
    return None


def batch_number_of(message: dict[str, Any]) -> tuple[int, dict[tuple[str, int], int] | None] | None:
    """A records message's number in the positions log and the snapshot it carries; None if it
    has no number, or one this receiver cannot use (then it is handled as unnumbered)."""
    batch, snapshot = message.get("batch"), message.get("snapshot")
    if type(batch) is not int or not 0 <= batch <= MAX_OFFSET:
        return None
    if snapshot is None:
        return batch, None
    if not isinstance(snapshot, list) or not all(
        isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
        and _is_int(e[1], MAX_PARTITION) and _is_int(e[2], MAX_OFFSET) for e in snapshot
    ):
        return None
    return batch, {(topic, partition): offset for topic, partition, offset in snapshot}


def segment_of(item: dict[str, Any]) -> int | None:
    """The index of a record's run in its numbered batch, if it says one."""
    seg = item.get("seg")
    return seg if _is_int(seg, MAX_PARTITION) else None


def _stalled_valid(stalled: object) -> bool:
    if stalled is None:
        return True
    if not isinstance(stalled, dict) or not _is_reason(stalled.get("reason")):
        return False
    seconds = stalled.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return False
    return math.isfinite(seconds) and seconds >= 0
