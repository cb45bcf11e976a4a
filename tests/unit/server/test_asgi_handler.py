import asyncio
import threading

import pytest
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

from crm_events.server.asgi_handler import StreamAwareASGIHandler


def _thread_name(request):
    return JsonResponse({"name": threading.current_thread().name})


urlpatterns = [path("stream", _thread_name, name="a-stream"), path("other", _thread_name, name="other")]


async def _call(handler, request_path: str, root_path: str = "") -> bytes:
    scope = {"type": "http", "method": "GET", "path": request_path, "root_path": root_path,
             "query_string": b"", "headers": [], "server": ("testserver", 80)}
    sent = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client never leaves; Django cancels this when done

    async def send(message):
        sent.append(message)

    await handler(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.asyncio
@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
async def test_stream_requests_run_sync_code_on_the_shared_thread_others_on_their_own():
    handler = StreamAwareASGIHandler(stream_url_names=("a-stream",))
    stream_threads = {await _call(handler, "/stream") for _ in range(3)}
    other_threads = {await _call(handler, "/other") for _ in range(3)}
    assert len(stream_threads) == 1, "every stream request shares asgiref's one thread"
    assert len(other_threads) == 3, "other requests keep Django's thread per request"
    assert stream_threads.isdisjoint(other_threads)
    # Mounted under a sub-path, the stream is still recognised by its path below the mount.
    assert await _call(handler, "/base/stream", root_path="/base") in stream_threads
