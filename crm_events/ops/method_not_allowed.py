"""Django's 405 answers in the API's one JSON error shape.

`require_GET` and class-based views answer a method they do not take with
`HttpResponseNotAllowed`: an empty body and an `Allow` header. This middleware, first in
`MIDDLEWARE` so it also sees what the probe middleware answers, gives such an answer the body
of `error_response` and keeps every header the inner layers set on it (`Allow`, CORS, `Vary`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import HttpRequest, HttpResponseBase, HttpResponseNotAllowed
from django.utils.decorators import async_only_middleware

from crm_events.exceptions import MethodNotAllowed
from crm_events.responses import error_response

METHOD_NOT_ALLOWED = "this URL does not answer that method; `allowed` and the Allow header list those it does"

Handler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def method_not_allowed_response(refused: HttpResponseBase) -> HttpResponseBase:
    """The JSON 405 for Django's empty one, with its headers and cookies."""
    allowed = [method.strip() for method in refused.get("Allow", "").split(",") if method.strip()]
    response = error_response(MethodNotAllowed(METHOD_NOT_ALLOWED, allowed=allowed))
    for name, value in refused.items():
        if name not in response:
            response[name] = value
    if "Content-Length" in refused:  # set by CommonMiddleware for the empty body
        response["Content-Length"] = str(len(response.content))
    response.cookies = refused.cookies
    return response


@async_only_middleware
def json_method_not_allowed(get_response: Handler) -> Handler:
    async def middleware(request: HttpRequest) -> HttpResponseBase:
        response = await get_response(request)
        if isinstance(response, HttpResponseNotAllowed):
            return method_not_allowed_response(response)
        return response

    return middleware
