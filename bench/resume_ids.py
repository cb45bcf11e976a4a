"""Resume ids, before and after the positions log: bytes per frame, and the cost of one resume.

`python -m bench.resume_ids` starts its own Kafka, writes a positions log the way
`consume_events` does (a snapshot, then batches of records spread over the partitions) for a
topic of 3 and one of 2,000 partitions at offsets near ten million, and reports per topic:

- the id a frame carries: version 1 (every partition spelled out) and version 2 (a log point);
- the bytes on the wire of one frame of a 300-byte event with each;
- what resolving an id costs a web process: a version 1 decode, and a version 2 point read from
  the log cold (a new reader: one Kafka fetch) and warm (the records already read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from crm_events.config import KafkaConfig
from crm_events.core.frames import data_frame
from crm_events.core.log_tokens import log_token_encode, resume_id_decode
from crm_events.core.position_log import LogPoint
from crm_events.core.positions import Position
from crm_events.core.tokens import token_encode
from crm_events.ingest.position_log import PositionLogWriter
from crm_events.kafka.position_log import PositionLogReader
from scripts.servers import KafkaServer, free_port
from scripts.topics import topic_create

OFFSET_BASE = 10_000_000
EVENT = json.dumps({"kind": "domain_event", "value": {"type": "deal.won", "pad": "x" * 220}}).encode()[:300]


def _config(bootstrap: str, topic: str) -> KafkaConfig:
    return KafkaConfig(
        brokers=(bootstrap,), topics=(topic,), group=f"bench-{topic}", offset_reset="earliest",
        topic_partitions=1, topic_replication=1, retry_backoff_max=2.0, batch_max_records=500,
        positions_topic=f"{topic}.positions",
    )


async def _log_write(
    config: KafkaConfig, partitions: int, batches: int
) -> tuple[dict[Position, int], LogPoint]:
    """A positions log as a consumer writes it; the positions after it and its last point."""
    topic = config.topics[0]
    positions = {(topic, p): OFFSET_BASE + p for p in range(partitions)}
    writer = PositionLogWriter(config, consumer_id="bench")
    rng = random.Random(2026)

    async def ends(wanted: list[Position]) -> dict[Position, int]:
        return {position: positions[position] for position in wanted}

    point = LogPoint(0)
    try:
        for _ in range(batches):
            items: list[dict[str, Any]] = []
            for partition in sorted(rng.sample(range(partitions), min(partitions, 20))):
                position = (topic, partition)
                event = {"topic": topic, "partition": partition, "offset": positions[position]}
                items.append({"prev": positions[position], "size": 300, "event": event})
            numbered = await writer.append(items, positions.copy, ends=ends)
            assert numbered is not None, "the positions log could not be written"
            for item in items:
                positions[(topic, item["event"]["partition"])] += 1
            point = LogPoint(numbered[0])
    finally:
        await writer.close()
    return positions, point


def _micros(call: Any, repeat: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - started) / repeat * 1e6


async def _measure(bootstrap: str, partitions: int, batches: int) -> dict[str, Any]:
    topic = f"bench-ids-{partitions}-{random.randrange(1 << 30)}"
    config = _config(bootstrap, topic)
    await topic_create(bootstrap, topic, partitions)
    await topic_create(bootstrap, config.positions_topic, 1)
    positions, point = await _log_write(config, partitions, batches)
    v1 = token_encode(positions)
    v2 = log_token_encode(point, log_topic=config.positions_topic)
    cold, warm = [], []
    for _ in range(5):
        reader = PositionLogReader(config)
        try:
            started = time.perf_counter()
            state = await reader.state_at(point, positions)
            cold.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await reader.state_at(point, positions)
            warm.append((time.perf_counter() - started) * 1000)
        finally:
            await reader.close()
        assert state == positions, "the log does not resolve its own point"
    return {
        "partitions": partitions,
        "id_chars": {"v1": len(v1), "v2": len(v2)},
        "frame_bytes": {"v1": len(data_frame(EVENT, event_id=v1)), "v2": len(data_frame(EVENT, event_id=v2))},
        "resolve": {
            "v1_decode_us": round(_micros(lambda: resume_id_decode(v1, (topic,), log_topic="x"), 20), 1),
            "v2_cold_ms": round(statistics.median(cold), 2),
            "v2_warm_ms": round(statistics.median(warm), 3),
        },
    }


async def _run(batches: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-ids-") as folder:
        kafka = KafkaServer(port=free_port(), controller_port=free_port(), data_dir=Path(folder) / "kafka")
        kafka.start()
        try:
            return [await _measure(kafka.bootstrap, partitions, batches) for partitions in (3, 2000)]
        finally:
            kafka.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resume_ids", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--batches", type=int, default=300, help="batches per positions log (default 300)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = asyncio.run(_run(args.batches))
    print(f"{'partitions':>10} {'id v1':>8} {'id v2':>6} {'frame v1':>9} {'frame v2':>9} "
          f"{'v1 decode':>10} {'v2 cold':>9} {'v2 warm':>9}")
    for r in results:
        print(f"{r['partitions']:>10} {r['id_chars']['v1']:>8} {r['id_chars']['v2']:>6} "
              f"{r['frame_bytes']['v1']:>9} {r['frame_bytes']['v2']:>9} "
              f"{r['resolve']['v1_decode_us']:>8}µs {r['resolve']['v2_cold_ms']:>7}ms "
              f"{r['resolve']['v2_warm_ms']:>7}ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
