"""Static files (the admin's and the live viewer's) served by WhiteNoise, without a thread hop.

`WhiteNoiseMiddleware` is sync-only: under ASGI, Django would run it, and so every
request after it (SSE streams included), through a worker thread. This subclass is
async: a URL that is not a static file goes straight on to the next handler, and a
static file is read in a thread and answered as one plain body.

The files come from the staticfiles finders (`WHITENOISE_USE_FINDERS`), plus
`STATIC_ROOT` when a `collectstatic` made one; its absence is no cause for a warning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import StaticFile

Handler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def static_response(static_file: StaticFile, request: HttpRequest) -> HttpResponse:
    """WhiteNoise's answer (headers, 304, HEAD, ranges) with the body read into memory."""
    answer = static_file.get_response(request.method, request.META)
    body = b""
    if answer.file is not None:
        with answer.file as file:
            body = file.read()
    response = HttpResponse(body, status=int(answer.status))
    del response["Content-Type"]
    for name, value in answer.headers:
        response[name] = value
    return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    def add_files(self, root: str, prefix: str | None = None) -> None:
        if Path(root).is_dir():
            super().add_files(root, prefix)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:  # DEBUG: look on disk each time, as WhiteNoise does
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        return await sync_to_async(static_response, thread_sensitive=False)(static_file, request)
