"""`GET /crm-events`: the SSE stream (see `crm_events.streams.service` for how it opens)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from crm_events.exceptions import ApiError
from crm_events.responses import error_response, get_only
from crm_events.streams.service import stream_open


@get_only
async def crm_events_stream(request: HttpRequest) -> StreamingHttpResponse | JsonResponse:
    try:
        return await stream_open(request)
    except ApiError as error:
        return error_response(error)
