"""The in-process broadcast ceiling: per-event sends, no Kafka, no channel layer.

`GET /bench/inproc` is a Django streaming view like the service's `/crm-events`
(same middleware, same StreamingHttpResponse path through Daphne), but its
frames come from a publisher task inside this Daphne process, and each event
is queued to each client and written as its own `http.response.body` send: no
coalescing, no bounded buffer, no backpressure. The frame is encoded once per
event and shared, as in the service. This is the "per-event-send" design the
issue measured (2,000 clients x 10 ev/s: p99 325 ms).

`GET /bench/inproc/publish?run=&rate=&count=&pad=` starts publishing `count`
events at `rate` per second on an absolute schedule (a late tick is sent at
once, not skipped), stamping each with the send time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from bench.events import PARTITIONS, frame_build, payload_build, value_bytes
from crm_events.core.frames import frame_encode, retry_encode

TOPIC = "bench.inproc"
CONNECTED_FRAME = retry_encode(3000) + frame_encode(
    json.dumps({"kind": "connected", "topic": TOPIC, "topics": [TOPIC], "group": "bench"},
               separators=(",", ":"))
)


class InprocBroadcaster:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()
        self.positions = {(TOPIC, partition): 0 for partition in range(PARTITIONS)}
        self.published = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, *, run: str, rate: float, count: int, pad: int) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(run, rate, count, pad))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _publish(self, run: str, rate: float, count: int, pad: int) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(count):
            delay = started + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.broadcast(self._frame(run, seq, pad))

    def _frame(self, run: str, seq: int, pad: int) -> bytes:
        partition = seq % PARTITIONS
        offset = self.positions[(TOPIC, partition)]
        self.positions[(TOPIC, partition)] = offset + 1
        payload = payload_build(TOPIC, partition, offset, value_bytes(run, seq, pad))
        return frame_build(TOPIC, self.positions, payload)

    def broadcast(self, frame: bytes) -> None:
        self.published += 1
        for queue in self.queues:
            queue.put_nowait(frame)

    async def stream(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield CONNECTED_FRAME
            while True:
                yield await queue.get()  # one event, one body send
        finally:
            self.queues.discard(queue)


broadcaster = InprocBroadcaster()


@require_GET
async def inproc_stream(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(broadcaster.stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@require_GET
async def inproc_publish(request: HttpRequest) -> JsonResponse:
    params = request.GET
    broadcaster.start(
        run=params["run"], rate=float(params["rate"]), count=int(params["count"]), pad=int(params["pad"])
    )
    return JsonResponse({"ok": True, "clients": len(broadcaster.queues), "at": time.time()})
