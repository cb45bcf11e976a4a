"""The API's responses: JSON errors for the refusals in `crm_events.exceptions` (never a 500,
never HTML), and the event stream's response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from crm_events.exceptions import ApiError, AuthenticationFailed, MethodNotAllowed, StreamLimitReached


def error_response(error: ApiError) -> JsonResponse:
    """`{"ok": false, "error": message, "code": code, ...details}` with the error's status.

    `error` holds the human sentence, as in the stream view's 400 and 503 bodies.

    A 401 carries `WWW-Authenticate: Bearer` (RFC 6750); a 429 or 503 carries `Retry-After`;
    a 405 carries `Allow`.
    """
    body = {"ok": False, "error": error.message, "code": error.code, **error.details}
    response = JsonResponse(body, status=error.status)
    if isinstance(error, AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="crm-events"'
    if isinstance(error, StreamLimitReached):
        response["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed):
        response["Allow"] = ", ".join(error.allowed)
    response["Cache-Control"] = "no-store"
    return response


View = TypeVar("View", bound=Callable[..., Any])


def get_only(view: View) -> View:
    """`require_GET`, and exempt from the CSRF check: the view changes nothing, so any other
    method is answered 405 (in JSON: crm_events/ops/method_not_allowed.py), not with the CSRF
    check's HTML 403 that would come first."""
    return csrf_exempt(require_GET(view))


class EventStreamResponse(StreamingHttpResponse):
    """A `text/event-stream` response that keeps its body where a handler can run it alone.

    Django's own iteration of a streaming response goes through two generators that each
    hold the response (and, through its closers, the request) for as long as the stream
    lasts. The stream-aware ASGI handler (crm_events/server/asgi_handler.py) sends the
    headers, closes the response and then runs `body` by itself; any other handler
    iterates it as the StreamingHttpResponse it is.
    """

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        super().__init__(body, content_type="text/event-stream")
        self.body = body
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"
