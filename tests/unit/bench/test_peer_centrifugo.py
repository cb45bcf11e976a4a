"""The peer mode's Centrifugo pieces: its frames parse in the load client as ours do, its
connection token is the HS256 JWT its docs describe, its config names v6's keys."""

from __future__ import annotations

import json
import urllib.parse

import jwt

from bench.load_client import StreamClient, Worker
from bench.peer_centrifugo import CHANNEL, RECORD_HEADERS, config_build, connection_token, stream_path

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
# As curl printed them from Centrifugo v6.9.1's uni SSE (2026-12-07), the record value inside.
CONNECT = (b'data: {"connect":{"client":"0cc39cd6","version":"0.0.0 OSS","subs":{"bench":{}},'
           b'"ping":25,"session":"1ea17323"}}\n\n')


def publication(run: str, seq: int, sent_ns: int) -> bytes:
    value = f'{{"type":"bench.tick","bench":"{run}:{seq}:{sent_ns}","pad":"xx"}}'
    return f'data: {{"channel":"bench","pub":{{"data":{value}}}}}\n\n'.encode()


def chunk(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n"


WIRE = HEAD + chunk(CONNECT) + chunk(publication("r1", 0, 1) + publication("r1", 1, 2)) + chunk(
    b"data: {}\n\n" + publication("r1", 1, 2) + publication("r2", 0, 3))


async def test_centrifugo_frames_count_as_ours_however_split() -> None:
    for size in range(1, len(WIRE) + 1):  # every split: few enough to try them all
        worker = Worker()
        client = StreamClient(worker, stall=False)
        for start in range(0, len(WIRE), size):
            client.data_received(WIRE[start:start + size])
        assert client.connected.done() and client.connected.exception() is None, size
        assert (worker.runs[b"r1"].delivered, worker.runs[b"r1"].duplicates) == (2, 1), size
        assert worker.runs[b"r2"].delivered == 1, size


def test_the_connection_token_is_an_hs256_jwt_subscribing_to_the_bench_channel() -> None:
    key = "k" * 64
    claims = jwt.decode(connection_token(key), key, algorithms=["HS256"])
    assert claims == {"sub": "bench", "channels": [CHANNEL]}


def test_the_stream_path_carries_the_token_in_cf_connect() -> None:
    path = stream_path("a.b.c")
    prefix, _, query = path.partition("?")
    assert prefix == "/connection/uni_sse"
    assert json.loads(urllib.parse.parse_qs(query)["cf_connect"][0]) == {"token": "a.b.c"}


def test_the_config_consumes_the_topic_in_publication_data_mode_into_uni_sse() -> None:
    config = config_build(port=8123, key="k", brokers="127.0.0.1:1,127.0.0.1:2", topic="t", group="g")
    (consumer,) = config["consumers"]  # type: ignore[misc]
    assert consumer["type"] == "kafka" and consumer["enabled"]
    assert consumer["kafka"] == {
        "brokers": ["127.0.0.1:1", "127.0.0.1:2"], "topics": ["t"], "consumer_group": "g",
        "publication_data_mode": {"enabled": True, "channels_header": RECORD_HEADERS[0][0]}}
    assert config["uni_sse"] == {"enabled": True}
    assert config["client"] == {"token": {"hmac_secret_key": "k"}}
