"""Opening a stream: every step between a request and its running session, in order.

1. admission: who is asking, and which of the served topics they may read (401/403);
2. the request's parameters and resume id (400);
3. where the stream starts, which asks Kafka unless it starts at the live edge;
4. a slot under the concurrency limits, taken last (429/503);
5. the session, written through the transport the server provides.

Every refusal is an `ApiError`, rendered by the view in the one JSON error shape. When
Kafka cannot be asked where to start (it is down, or this process has not reached it
yet), the answer is still a 200 stream, ended at once by a `reconnect` frame that
carries the client's own resume id: browsers' EventSource gives up for good on a
non-200 answer, but reconnects after a `reconnect` frame, and so retries by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest

from crm_events import metrics
from crm_events.config import kafka_config, stream_config
from crm_events.core.stream_frames import unavailable_frames
from crm_events.exceptions import KafkaUnavailable
from crm_events.fanout.hub import EventHub
from crm_events.fanout.registry import hub_get
from crm_events.fanout.subscriber import StreamSubscriber
from crm_events.responses import EventStreamResponse
from crm_events.streams.audit import StreamAudit
from crm_events.streams.body_transport import stream_transport
from crm_events.streams.guard import Admission, GuardedFilter, stream_admit, stream_config_for
from crm_events.streams.positioning import StartPlan, start_plan
from crm_events.streams.request import StreamRequest, stream_request_parse
from crm_events.streams.session import StreamSession

logger = logging.getLogger(__name__)

HUB_READY_WAIT = 2.0
NOT_POSITIONED = "the service has not reached Kafka yet to learn its positions"


async def stream_open(request: HttpRequest) -> EventStreamResponse:
    """The streaming response for a `/crm-events` request; raises `ApiError` to refuse it."""
    requested = time.monotonic()  # before the credentials are read: see fanout/owners.py
    kafka = kafka_config()
    admission = await stream_admit(request, served=kafka.topics)
    wanted = stream_request_parse(
        request.GET, last_event_id=request.headers.get("Last-Event-ID"), served=admission.readable,
        log_topic=kafka.positions_topic,
    )
    config = stream_config_for(admission.principal, stream_config())
    hub = hub_get()
    try:
        plan = await _plan(wanted, hub)
    except KafkaUnavailable as error:
        logger.warning("stream not started: %s", error)
        return EventStreamResponse(_unavailable(str(error), wanted.resume_token, config.retry_ms))
    slot = admission.slot_take(request)
    transport = stream_transport(
        request, limit=config.write_buffer_bytes, send_buffer=config.socket_send_buffer
    )
    subscriber = StreamSubscriber(
        topics=wanted.topics, positions=plan.positions, event_filter=_filter_for(wanted, admission),
        max_frames=config.client_buffer, transport=transport, chunk_bytes=config.write_buffer_bytes,
    )
    _count(wanted, plan)
    audit = StreamAudit.of_request(
        admission.principal, request.GET, topics=wanted.topics, resume_id=wanted.resume_token
    )
    session = StreamSession(
        hub=hub, subscriber=subscriber, slot=slot, kafka=kafka, config=config, gaps=plan.gaps,
        resets=plan.resets, point=plan.point, principal=admission.principal, audit=audit,
        requested=requested,
    )
    return EventStreamResponse(transport.body(session.run()))


async def _plan(wanted: StreamRequest, hub: EventHub) -> StartPlan:
    try:
        async with asyncio.timeout(HUB_READY_WAIT):
            await hub.positions_ready.wait()
    except TimeoutError:
        raise KafkaUnavailable(NOT_POSITIONED) from None
    return await start_plan(wanted, hub)


def _filter_for(wanted: StreamRequest, admission: Admission) -> GuardedFilter:
    return GuardedFilter(wanted.event_filter, admission.principal, show_canary=wanted.show_canary)


def _count(wanted: StreamRequest, plan: StartPlan) -> None:
    if wanted.resume_token:
        metrics.resume_served()
    if plan.gaps or plan.resets:
        metrics.gap_reported(len(plan.gaps) + len(plan.resets))


async def _unavailable(reason: str, token: str | None, retry_ms: int) -> AsyncIterator[bytes]:
    yield unavailable_frames(reason, token, retry_ms)
