"""Follow /crm-events with httpx and httpx-sse, one JSON frame per line on stdout.

    pip install httpx httpx-sse
    python examples/python/follow.py kind=deal where=deal.stage:won

Arguments are query parameters (docs/stream.md, "Parameters"). CRM_EVENTS_URL is the stream (default
http://localhost:9010/crm-events), CRM_EVENTS_TOKEN a JWT for SSE_AUTH_MODE=jwt, LAST_EVENT_ID
a resume id to start from. Whenever the stream ends (the server's `reconnect` frame, a server
restart, a dropped connection) it waits the server's `retry:` and reconnects with
Last-Event-ID, so nothing is lost or repeated. A refusal (4xx) ends it, but 429/503 (too many
streams), after which it waits `Retry-After`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable

import httpx
from httpx_sse import SSEError, connect_sse

RETRY_AFTER_STATUSES = {429, 503}


class StreamRefused(Exception):
    """The service answered with its JSON error instead of a stream."""


class Follower:
    """One resumable stream: the last id seen and the server's reconnect delay survive every end."""

    def __init__(self, url: str, *, params: Iterable[tuple[str, str]] = (), token: str | None = None,
                 last_event_id: str | None = None) -> None:
        self.url, self.params = url, list(params)
        self.headers = {"Accept": "text/event-stream"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.last_event_id = last_event_id
        self.retry_seconds = 3.0

    def run(self, on_frame: Callable[[dict], None]) -> None:
        """Call `on_frame` with every frame's JSON, for ever, resuming after every end."""
        # The read timeout is far above the server's heartbeat interval (15 s): silence is a dead link.
        with httpx.Client(timeout=httpx.Timeout(10.0, read=60.0)) as client:
            while True:
                try:
                    self._stream(client, on_frame)
                except (httpx.TransportError, SSEError) as error:
                    print(f"stream interrupted ({error!r}); resuming", file=sys.stderr)
                time.sleep(self.retry_seconds)

    def _stream(self, client: httpx.Client, on_frame: Callable[[dict], None]) -> None:
        if self.last_event_id:
            self.headers["Last-Event-ID"] = self.last_event_id
        with connect_sse(client, "GET", self.url, params=self.params, headers=self.headers) as source:
            if source.response.status_code != 200:
                self.retry_seconds = refusal_wait(source.response)
                return
            for sse in source.iter_sse():
                if sse.retry is not None:
                    self.retry_seconds = sse.retry / 1000
                if sse.data and sse.event == "message":  # `event: gap` only repeats a frame
                    on_frame(json.loads(sse.data))
                if sse.id:  # after the frame was handled; heartbeats carry ids too
                    self.last_event_id = sse.id


def refusal_wait(response: httpx.Response) -> float:
    """Seconds to wait after a 429 or 503; any other refusal raises `StreamRefused`."""
    body = response.read().decode(errors="replace")
    if response.status_code not in RETRY_AFTER_STATUSES:
        raise StreamRefused(f"{response.status_code}: {body}")
    print(f"stream refused for now ({body}); retrying", file=sys.stderr)
    return float(response.headers.get("Retry-After", "5"))


def frame_print(frame: dict) -> None:
    print(json.dumps(frame), flush=True)


if __name__ == "__main__":
    Follower(
        os.environ.get("CRM_EVENTS_URL", "http://localhost:9010/crm-events"),
        params=[tuple(argument.split("=", 1)) for argument in sys.argv[1:]],
        token=os.environ.get("CRM_EVENTS_TOKEN"), last_event_id=os.environ.get("LAST_EVENT_ID"),
    ).run(frame_print)
