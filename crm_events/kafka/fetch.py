"""Fetching records so that one the Kafka client cannot parse never blocks its partition.

aiokafka parses a fetched batch as it hands out records, and a record it cannot
parse (a header name that is not UTF-8, which librdkafka producers can write)
raises out of `getmany()` for the whole poll, every time: the partition is stuck
and, worse, the records of other partitions drained in that call are consumed
but never returned. So on such a failure every partition is rewound to where the
caller knows it stands, and read again one record at a time; the record that
fails is replaced by an `UnparseableRecord` at the position the consumer could
not get past, and reading goes on after it.

The client parses a record batch as a whole, from its first record, whatever
offset a fetch starts at: so the records after an unparseable one IN THE SAME
BATCH cannot be read either, and each is delivered marked as well (those before
it arrive whole). Only positions are known from the client's public API: right
after a compaction or transaction hole, the position reported is the hole's
first offset rather than the record's own (both are past everything delivered
before, and nothing after is skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from crm_events.core.records import UnparseableRecord

logger = logging.getLogger(__name__)

# Longer than a fetch's long poll (aiokafka's fetch_max_wait_ms, 500 ms): a fetch for the
# rewound partition goes out only after the one in flight returns.
PROBE_TIMEOUT_MS = 1500

Fetched = dict[TopicPartition, list[ConsumerRecord | UnparseableRecord]]


async def records_fetch(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], *,
    next_offsets: Mapping[TopicPartition, int], timeout_ms: int, max_records: int,
) -> Fetched:
    """`consumer.getmany(*tps)`, but a record that cannot be parsed comes back as an
    `UnparseableRecord` instead of failing the poll. `next_offsets` is where the caller
    stands in each of `tps` (after the last record it has taken)."""
    try:
        return await consumer.getmany(*tps, timeout_ms=timeout_ms, max_records=max_records)
    except (KafkaError, OSError):
        raise
    except Exception as error:  # noqa: BLE001 - the client failed to parse a record: read around it
        # DEBUG: every replay over such a record comes here; consume_events reports it once.
        logger.debug("a fetch hit a record the Kafka client cannot parse (%r): reading around it", error)
    fetched: Fetched = {}
    for tp in tps:
        records = await _partition_read_around(consumer, tp, next_offsets[tp], max_records)
        if records:
            fetched[tp] = records
    return fetched


async def _partition_read_around(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, max_records: int
) -> list[ConsumerRecord | UnparseableRecord]:
    consumer.seek(tp, start)  # also drops what the failed poll had fetched for it
    records: list[ConsumerRecord | UnparseableRecord] = []
    while len(records) < max_records and not await _at_end(consumer, tp):
        try:
            got = await consumer.getmany(tp, timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
        except (KafkaError, OSError):
            raise
        except Exception as error:  # noqa: BLE001 - this partition's next record is the one
            offset = await consumer.position(tp)
            logger.debug(
                "record %s:%s@%s cannot be parsed by the Kafka client (%r); delivering it marked",
                tp.topic, tp.partition, offset, error,
            )
            reason = f"the Kafka client cannot parse it: {type(error).__name__}: {error}"
            records.append(UnparseableRecord(tp.topic, tp.partition, offset, error=reason))
            consumer.seek(tp, offset + 1)
            continue
        if not got.get(tp):
            break
        records.extend(got[tp])
    return records


async def _at_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    """Whether `tp` has been read up to the end Kafka last reported (no need to wait for more)."""
    end = consumer.highwater(tp)
    return end is not None and await consumer.position(tp) >= end
