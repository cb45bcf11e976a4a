"""Centrifugo, the peer the benchmark's `peer` mode measures AetherLink against (docs/benchmarks.md
"Peers"): built once per machine from the Go module proxy, configured as its documentation says
for the same job as ours (its Kafka async consumer feeding unidirectional SSE), run as a plain
process on a free port.

    python -m bench.peer_centrifugo build     # or `make centrifugo`; never part of `make test`

Configuration (Centrifugo v6 key names, checked against its `internal/configtypes`):
- `consumers[]` of type `kafka` with `brokers`, `topics`, `consumer_group`, and
  `publication_data_mode` enabled: each record's value is published as is into the channels
  its `centrifugo-channels` header names (the producer sets that header, see `RECORD_HEADERS`);
- `uni_sse.enabled`: GET /connection/uni_sse?cf_connect={"token": ...}; the connection token
  (HS256, `client.token.hmac_secret_key`) carries `channels`, Centrifugo's server-side
  subscriptions, so every client is subscribed to the bench channel when it connects.
Its first frame is `{"connect": {...}}`, then `{"channel": ..., "pub": {"data": <the record's
JSON value>, ...}}` per publication: the record's value is embedded verbatim, so the load client
finds the same `"bench":"` marker in it as in AetherLink's frames (bench/load_client.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import sys
import urllib.parse
from pathlib import Path

from scripts.processes import ServiceProcess, http_status_or_none, wait_until
from scripts.servers import cache_dir, free_port
from scripts.servers.go_build import go_tool_ensure

CENTRIFUGO_VERSION = "v6.9.1"
CENTRIFUGO_MODULE = f"github.com/centrifugal/centrifugo/v6@{CENTRIFUGO_VERSION}"
CHANNEL = "bench"
RECORD_HEADERS = [("centrifugo-channels", CHANNEL.encode())]
NOT_BUILT = (f"Centrifugo {CENTRIFUGO_VERSION} is not built on this machine: `make centrifugo` "
             "(or `python -m bench.peer_centrifugo build`) builds it once into ~/.cache/aetherlink")
READY_TIMEOUT = 60.0


def centrifugo_path() -> Path:
    return cache_dir() / f"centrifugo-{CENTRIFUGO_VERSION}" / "centrifugo"


def centrifugo_find() -> Path | None:
    """The cached Centrifugo binary, or None when this machine has not built it."""
    binary = centrifugo_path()
    return binary if binary.exists() else None


def centrifugo_build() -> Path:
    return go_tool_ensure(CENTRIFUGO_MODULE, centrifugo_path(), tool="Centrifugo")


def connection_token(key: str, subject: str = "bench") -> str:
    """An HS256 connection JWT subscribing its holder to the bench channel (`channels` claim)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps({"sub": subject, "channels": [CHANNEL]}).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def stream_path(token: str) -> str:
    """The uni SSE URL path of a client connecting with `token`."""
    connect = json.dumps({"token": token}, separators=(",", ":"))
    return "/connection/uni_sse?cf_connect=" + urllib.parse.quote(connect, safe="")


def config_build(*, port: int, key: str, brokers: str, topic: str, group: str) -> dict[str, object]:
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "client": {"token": {"hmac_secret_key": key}},
        "http_api": {"key": secrets.token_hex(16)},
        "health": {"enabled": True},
        "uni_sse": {"enabled": True},
        "consumers": [{
            "name": "bench", "enabled": True, "type": "kafka",
            "kafka": {"brokers": brokers.split(","), "topics": [topic], "consumer_group": group,
                      "publication_data_mode": {"enabled": True, "channels_header": RECORD_HEADERS[0][0]}},
        }],
    }


class Centrifugo:
    """One Centrifugo process consuming `topic`, on a free port, with its config in `folder`."""

    def __init__(self, binary: Path, folder: Path, env: dict[str, str], *, brokers: str, topic: str,
                 group: str) -> None:
        self.port = free_port()
        self.key = secrets.token_hex(32)
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path = folder / "centrifugo.json"
        config = config_build(port=self.port, key=self.key, brokers=brokers, topic=topic, group=group)
        self.config_path.write_text(json.dumps(config, indent=2))
        self.binary, self.folder, self.env = binary, folder, env
        self.process: ServiceProcess | None = None

    @property
    def path(self) -> str:
        return stream_path(connection_token(self.key))

    def start(self) -> ServiceProcess:
        self.process = ServiceProcess("centrifugo", [str(self.binary), "--config", str(self.config_path)],
                                      self.env, self.folder)
        process = self.process
        wait_until(lambda: not process.is_running() or http_status_or_none(self.port, "/health") == 200,
                   timeout=READY_TIMEOUT, what="Centrifugo /health")
        if not process.is_running():
            raise RuntimeError(f"centrifugo exited:\n{process.log_text()[-3000:]}")
        return process


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python -m bench.peer_centrifugo build")
    print(f"centrifugo: {centrifugo_build()}")
