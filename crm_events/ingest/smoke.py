"""End-to-end checks of a running stack, for `manage.py smoke`.

Each check returns a short detail or raises `SmokeFailure` with the reason; the
run stops at the first failure. The last check sends a probe event into Kafka
and waits for it on `/crm-events`, so a pass proves the whole path works.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiokafka.errors import KafkaError

from crm_events.config import KafkaConfig
from crm_events.kafka.clients import admin_create, producer_create

PROBE_TYPE = "smoke.probe"
READY_POLL_SECONDS = 0.5


class SmokeFailure(Exception):
    """A check failed; the message says why."""


class SmokeRun:
    def __init__(self, *, base_url: str, config: KafkaConfig, timeout: float, insecure: bool = False) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SmokeFailure(f"--url must look like http://host:port or https://host, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        # https: verified against the system's CAs unless --insecure (a self-signed certificate).
        self.tls = _tls_context(insecure) if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        self.config = config
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("healthz", self.check_healthz),
            ("service info", self.check_info),
            ("readyz", self.check_readyz),
            ("topics exist", self.check_topics),
            ("probe event delivered", self.check_probe),
        ]

    def _get_json(self, path: str) -> tuple[int, Any]:
        connection = self._connection()
        try:
            connection.request("GET", self.prefix + path)
            response = connection.getresponse()
            body = response.read()
        except OSError as error:
            raise SmokeFailure(f"GET {path} failed: {error}") from error
        finally:
            connection.close()
        try:
            return response.status, json.loads(body)
        except ValueError as error:
            raise SmokeFailure(f"GET {path} returned non-JSON: {body[:200]!r}") from error

    def check_healthz(self) -> str:
        status, body = self._get_json("/healthz")
        if status != 200 or body != {"ok": True}:
            raise SmokeFailure(f"/healthz answered {status} {body}")
        return "200 {'ok': true}"

    def check_info(self) -> str:
        status, body = self._get_json("/")
        if status != 200 or body.get("service") != "crm-events":
            raise SmokeFailure(f"/ answered {status} {body}")
        return f"topics={body.get('topics')} group={body.get('group')}"

    def check_readyz(self) -> str:
        """Ready within the timeout: a stack that just started needs a heartbeat or two."""
        deadline = time.monotonic() + self.timeout
        while True:
            status, body = self._get_json("/readyz")
            if status == 200:
                return ", ".join(f"{name} {result}" for name, result in body["checks"].items())
            if time.monotonic() > deadline:
                raise SmokeFailure(f"/readyz answered {status}: {body.get('checks')}")
            time.sleep(READY_POLL_SECONDS)

    def check_topics(self) -> str:
        existing = asyncio.run(_topics_list(self.config))
        missing = [topic for topic in self.config.topics if topic not in existing]
        if missing:
            raise SmokeFailure(f"topics missing in Kafka: {missing}")
        return ",".join(self.config.topics)

    def check_probe(self) -> str:
        probe_id = uuid.uuid4().hex
        connection = self._connection()
        try:
            connection.request("GET", self.prefix + "/crm-events")
            response = connection.getresponse()
            if response.status != 200:
                raise SmokeFailure(f"/crm-events answered {response.status}")
            _wait_for_frame(response, lambda data: data.get("kind") == "connected", self.timeout)
            started = time.monotonic()
            asyncio.run(_probe_produce(self.config, probe_id))
            _wait_for_frame(response, lambda data: _is_probe(data, probe_id), self.timeout)
            return f"arrived in {(time.monotonic() - started) * 1000:.0f} ms"
        except OSError as error:
            raise SmokeFailure(f"stream failed: {error}") from error
        finally:
            connection.close()


def _tls_context(insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _is_probe(data: dict[str, Any], probe_id: str) -> bool:
    value = data.get("value")
    return isinstance(value, dict) and value.get("probe_id") == probe_id


def _wait_for_frame(
    response: http.client.HTTPResponse, wanted: Callable[[dict[str, Any]], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = response.readline()
        if not line:
            raise SmokeFailure("the stream ended before the expected frame")
        if line.startswith(b"data: ") and wanted(json.loads(line[6:])):
            return
    raise SmokeFailure(f"no matching frame within {timeout:.0f}s")


async def _topics_list(config: KafkaConfig) -> set[str]:
    admin = admin_create(config)
    try:
        await admin.start()
        return set(await admin.list_topics())
    except KafkaError as error:
        raise SmokeFailure(f"Kafka unreachable at {config.brokers_redacted}: {error}") from error
    finally:
        await admin.close()


async def _probe_produce(config: KafkaConfig, probe_id: str) -> None:
    producer = producer_create(config)
    try:
        await producer.start()
        value = {"type": PROBE_TYPE, "probe_id": probe_id}
        await producer.send_and_wait(config.topics[0], json.dumps(value).encode())
    except KafkaError as error:
        raise SmokeFailure(f"could not produce the probe: {error}") from error
    finally:
        await producer.stop()
