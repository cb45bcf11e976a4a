"""`GET /crm-events`: validate the request, position the stream, hand it a session.

A bad parameter or resume token is refused before the first byte with a 400; every
refusal has the one JSON error shape of `crm_events.responses.error_response`. When
Kafka cannot be asked where to start (it is down, or this process has not reached
it yet), the answer is still a 200 stream, ended at once by a `reconnect` frame that
carries the client's own resume id: browsers' EventSource gives up for good on a
non-200 answer, but reconnects after a `reconnect` frame, and so retries by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from crm_events import metrics
from crm_events.config import kafka_config, stream_config
from crm_events.exceptions import ApiError, KafkaUnavailable, StreamRequestError
from crm_events.fanout.hub import EventHub, hub_get
from crm_events.fanout.observer import hub_observe
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.responses import error_response
from crm_events.server.daphne_integration import (
    BODY_WRITE_EXTENSION,
    SEND_BUFFER_EXTENSION,
    WRITE_BUFFER_EXTENSION,
)
from crm_events.streams.guard import GuardedFilter, body_guarded, stream_admit, stream_config_for
from crm_events.streams.positioning import start_plan
from crm_events.streams.request import stream_request_parse
from crm_events.streams.session import StreamSession, unavailable_body

logger = logging.getLogger(__name__)

HUB_READY_WAIT = 2.0
NOT_POSITIONED = "the service has not reached Kafka yet to learn its positions"


def _event_stream(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
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
        admission = await stream_admit(request, served=kafka.topics)
    except ApiError as error:
        return error_response(error)
    try:
        wanted = stream_request_parse(
            request.GET, last_event_id=request.headers.get("Last-Event-ID"), served=admission.readable
        )
    except StreamRequestError as error:
        return error_response(error)
    config = stream_config_for(admission.principal, stream_config())
    hub = hub_get()
    hub_observe(hub)
    try:
        if not await _hub_ready(hub):
            raise KafkaUnavailable(NOT_POSITIONED)
        plan = await start_plan(wanted, hub)
    except StreamRequestError as error:
        return error_response(error)
    except KafkaUnavailable as error:
        logger.warning("stream not started: %s", error)
        return _event_stream(unavailable_body(str(error), wanted.resume_token, config))
    try:
        slot = admission.slot_take(request)
    except ApiError as error:
        return error_response(error)
    subscriber = StreamSubscriber(
        topics=wanted.topics, positions=plan.positions,
        event_filter=GuardedFilter(wanted.event_filter, admission.principal, show_canary=wanted.show_canary),
        max_frames=config.client_buffer,
    )
    if wanted.resume_token:
        metrics.resume_served()
    if plan.gaps or plan.resets:
        metrics.gap_reported(len(plan.gaps) + len(plan.resets))
    extensions = request.scope.get("extensions", {})
    if send_buffer := extensions.get(SEND_BUFFER_EXTENSION):
        send_buffer(config.socket_send_buffer)
    session = StreamSession(
        hub=hub, subscriber=subscriber, kafka=kafka, config=config, gaps=plan.gaps, resets=plan.resets,
        write_buffer=extensions.get(WRITE_BUFFER_EXTENSION), body_write=extensions.get(BODY_WRITE_EXTENSION),
    )
    return _event_stream(body_guarded(session.body(), slot, lambda: subscriber.close_reason))
