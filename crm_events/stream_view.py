"""`GET /crm-events`: the SSE stream.

The view only subscribes a `StreamSubscriber` to this process's hub and turns
what it queues into body chunks; frames are built by the hub, once per event.
Headers go out with the first chunk (the `retry:` hint and the `connected` frame),
so a client knows it is connected before the first event arrives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from crm_events.config import StreamConfig, kafka_config, stream_config
from crm_events.fanout import EventHub, hub_get
from crm_events.sse import comment_encode, frame_encode, retry_encode
from crm_events.subscriber import StreamSubscriber

logger = logging.getLogger(__name__)

KIND_CONNECTED = "connected"
HEARTBEAT = comment_encode("heartbeat")


def connected_frame() -> bytes:
    config = kafka_config()
    payload = {
        "kind": KIND_CONNECTED,
        "topic": config.topics[0],
        "topics": list(config.topics),
        "group": config.group,
    }
    return frame_encode(json.dumps(payload, separators=(",", ":")))


@require_GET
async def crm_events_stream(request: HttpRequest) -> StreamingHttpResponse:
    config = stream_config()
    subscriber = StreamSubscriber(max_frames=config.client_buffer)
    response = StreamingHttpResponse(
        stream_body(hub_get(), subscriber, config), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def stream_body(
    hub: EventHub, subscriber: StreamSubscriber, config: StreamConfig
) -> AsyncIterator[bytes]:
    """Body chunks until the client leaves or the hub closes the subscriber.

    Subscribing here, not in the view, ties it to the `finally` that undoes it: a
    client gone before the body starts leaves nothing subscribed.
    """
    hub.subscribe(subscriber)
    try:
        yield retry_encode(config.retry_ms) + connected_frame()
        while subscriber.close_reason is None:
            chunk = await subscriber.take(timeout=config.heartbeat_interval)
            yield chunk or HEARTBEAT
        logger.info("stream closed: %s", subscriber.close_reason)
    finally:
        hub.unsubscribe(subscriber)
