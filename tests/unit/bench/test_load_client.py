"""The benchmark's load client parses chunked SSE exactly, however the bytes are split."""

from __future__ import annotations

import asyncio
from array import array

from bench.load_client import StreamClient, Worker
from bench.stats import latency_summary, percentile

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n"


def frame(run: str, seq: int, sent_ns: int) -> bytes:
    value = f'{{"type":"bench.tick","bench":"{run}:{seq}:{sent_ns}","pad":"xx"}}'
    return f'id: tok\ndata: {{"kind":"domain_event","value":{value}}}\n\n'.encode()


CONNECTED = b'retry: 3000\n\ndata: {"kind":"connected","topic":"t"}\n\n'
RECONNECT = b'id: tok\ndata: {"kind":"reconnect","reason":"slow"}\n\n'
WIRE = HEAD + chunk(CONNECTED) + chunk(frame("r1", 0, 1) + frame("r1", 1, 2)) + chunk(
    frame("r1", 1, 2) + frame("r2", 0, 3)) + chunk(RECONNECT) + b"0\r\n\r\n"


async def feed_in_pieces(size: int) -> tuple[Worker, StreamClient]:
    worker = Worker()
    client = StreamClient(worker, stall=False)
    for start in range(0, len(WIRE), size):
        client.data_received(WIRE[start:start + size])
    return worker, client


async def test_every_split_of_the_wire_gives_the_same_counts():
    for size in (1, 2, 3, 7, 64, len(WIRE)):
        worker, client = await feed_in_pieces(size)
        assert client.status == 200
        assert client.connected.done() and client.connected.exception() is None
        assert client.close_reason == "slow"
        assert worker.runs[b"r1"].delivered == 2
        assert worker.runs[b"r1"].duplicates == 1
        assert worker.runs[b"r2"].delivered == 1
        assert len(worker.runs[b"r1"].latencies_us) == 2


async def test_an_error_status_fails_the_connection():
    client = StreamClient(Worker(), stall=False)
    client.data_received(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}")
    await asyncio.sleep(0)
    assert isinstance(client.connected.exception(), ConnectionError)


def test_nearest_rank_percentiles():
    ordered = list(range(1, 101))
    assert percentile(ordered, 0.5) == 50
    assert percentile(ordered, 0.99) == 99
    assert percentile([], 0.99) == 0
    summary = latency_summary(array("i", [1000, 2000, 300_000]))
    assert summary["p50_ms"] == 2.0 and summary["max_ms"] == 300.0 and summary["on_time_250ms"] == 2


def owned_frame(run: str, seq: int, owner: str) -> bytes:
    value = f'{{"type":"bench.tick","owner":"{owner}","bench":"{run}:{seq}:1:{owner}","pad":"xx"}}'
    return f'id: tok\ndata: {{"kind":"domain_event","value":{value}}}\n\n'.encode()


async def test_events_meant_for_another_client_count_as_wrong_not_delivered():
    worker = Worker()
    client = StreamClient(worker, stall=False, owner=b"o7")
    body = owned_frame("r1", 7, "o7") + owned_frame("r1", 8, "o8") + owned_frame("r1", 7, "o7")
    client.data_received(HEAD + chunk(CONNECTED) + chunk(body))
    tally = worker.runs[b"r1"]
    assert (tally.delivered, tally.duplicates, tally.wrong_client) == (1, 1, 1)
