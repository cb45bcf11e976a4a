"""Django's own error pages (`handler400`, `handler500`) in the API's one JSON error shape.

Django answers some requests before any view of ours runs, or after one failed: too many
query parameters (`TooManyFieldsSent`), a bad `Host`, an unhandled exception. These
handlers give those answers the body of `crm_events.responses.error_response` instead of
Django's HTML page. (With `DEBUG` on, Django shows its technical page instead.)
"""

from __future__ import annotations

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, JsonResponse

from crm_events.exceptions import ApiError, ServerError
from crm_events.responses import error_response

BAD_REQUEST = "the request is malformed (a bad Host header, or similar)"
TOO_MANY_PARAMETERS = "the request has more query parameters than the server accepts"
SERVER_ERROR = "the server failed to answer this request; the failure is logged"


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """`handler400`: the exception's text is Django's, for the log, not for the client."""
    if isinstance(exception, TooManyFieldsSent):  # DATA_UPLOAD_MAX_NUMBER_FIELDS, query included
        return error_response(ApiError(TOO_MANY_PARAMETERS))
    return error_response(ApiError(BAD_REQUEST))


def server_error(request: HttpRequest) -> JsonResponse:
    """`handler500`: Django has logged the exception already."""
    return error_response(ServerError(SERVER_ERROR))
