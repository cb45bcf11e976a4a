"""JSON error responses for the refusals in `crm_events.exceptions`: never a 500, never HTML."""

from __future__ import annotations

from django.http import JsonResponse

from crm_events.exceptions import ApiError, AuthenticationFailed, StreamLimitReached


def error_response(error: ApiError) -> JsonResponse:
    """`{"ok": false, "error": message, "code": code, ...details}` with the error's status.

    `error` holds the human sentence, as in the stream view's 400 and 503 bodies.

    A 401 carries `WWW-Authenticate: Bearer` (RFC 6750); a 429 or 503 carries `Retry-After`.
    """
    body = {"ok": False, "error": error.message, "code": error.code, **error.details}
    response = JsonResponse(body, status=error.status)
    if isinstance(error, AuthenticationFailed):
        response["WWW-Authenticate"] = 'Bearer realm="crm-events"'
    if isinstance(error, StreamLimitReached):
        response["Retry-After"] = str(error.retry_after)
    response["Cache-Control"] = "no-store"
    return response
