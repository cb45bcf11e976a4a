"""`GET /crm-events`: validate the request, position the stream, hand it a session.

Everything that can be refused is decided before the first byte: a bad parameter
or resume token is a 400, Kafka not answering a needed look-up a 503 with
`Retry-After`. After that the response is a `StreamSession` body.
"""

from __future__ import annotations

import asyncio
import logging

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from crm_events.config import kafka_config, stream_config
from crm_events.daphne_integration import WRITE_BUFFER_EXTENSION
from crm_events.exceptions import KafkaUnavailable, StreamRequestError
from crm_events.fanout import EventHub, hub_get
from crm_events.positioning import start_plan
from crm_events.stream_request import stream_request_parse
from crm_events.stream_session import StreamSession
from crm_events.subscriber import StreamSubscriber

logger = logging.getLogger(__name__)

HUB_READY_WAIT = 5.0
RETRY_AFTER_SECONDS = 5
NOT_POSITIONED = "the service has not reached Kafka yet to learn its positions; retry shortly"


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"ok": False, "error": message}, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _hub_ready(hub: EventHub) -> bool:
    try:
        async with asyncio.timeout(HUB_READY_WAIT):
            await hub.positions_ready.wait()
        return True
    except TimeoutError:
        return False


@require_GET
async def crm_events_stream(request: HttpRequest) -> StreamingHttpResponse | JsonResponse:
    kafka = kafka_config()
    try:
        wanted = stream_request_parse(
            request.GET, last_event_id=request.headers.get("Last-Event-ID"), served=kafka.topics
        )
    except StreamRequestError as error:
        return _error(400, str(error))
    hub = hub_get()
    if not await _hub_ready(hub):
        return _error(503, NOT_POSITIONED)
    try:
        plan = await start_plan(wanted, hub)
    except StreamRequestError as error:
        return _error(400, str(error))
    except KafkaUnavailable as error:
        return _error(503, str(error))
    config = stream_config()
    subscriber = StreamSubscriber(
        topics=wanted.topics, positions=plan.positions, event_filter=wanted.event_filter,
        max_frames=config.client_buffer,
    )
    session = StreamSession(
        hub=hub, subscriber=subscriber, kafka=kafka, config=config, gaps=plan.gaps,
        write_buffer=request.scope.get("extensions", {}).get(WRITE_BUFFER_EXTENSION),
    )
    response = StreamingHttpResponse(session.body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
