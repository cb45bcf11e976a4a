import asyncio
import contextlib
import gc
import hashlib
import inspect
import threading
import weakref

import pytest
from django.core import signals
from django.core.handlers.asgi import ASGIHandler
from django.http import JsonResponse
from django.test import override_settings
from django.urls import path

from crm_events.responses import EventStreamResponse
from crm_events.server.asgi_handler import DJANGO_HANDLE_FOLLOWED, StreamAwareASGIHandler
from tests.support.processes import async_wait_until


def _thread_name(request):
    return JsonResponse({"name": threading.current_thread().name})


class _Observed:
    """What an event stream's body sees while it runs: is the request still alive, and how
    many request_finished signals have been sent by then."""

    def __init__(self) -> None:
        self.request: weakref.ref | None = None
        self.request_alive_in_body: bool | None = None
        self.finished_before_body = 0
        self.finished = 0
        self.body_closed = False
        self.hold = asyncio.Event()  # set: the body ends

    def on_finished(self, **_: object) -> None:
        self.finished += 1


observed = _Observed()


async def _event_stream(request):
    observed.request = weakref.ref(request)

    async def body():
        try:
            gc.collect()
            observed.request_alive_in_body = observed.request() is not None
            observed.finished_before_body = observed.finished
            yield b"data: one\n\n"
            await observed.hold.wait()
            yield b"data: two\n\n"
        finally:
            observed.body_closed = True

    return EventStreamResponse(body())


urlpatterns = [path("stream", _thread_name, name="a-stream"), path("other", _thread_name, name="other"),
               path("events", _event_stream, name="events")]


async def _call(handler, request_path: str, root_path: str = "", sent: list | None = None,
                leaves: asyncio.Event | None = None) -> bytes:
    scope = {"type": "http", "method": "GET", "path": request_path, "root_path": root_path,
             "query_string": b"", "headers": [], "server": ("testserver", 80)}
    sent = [] if sent is None else sent
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await (leaves or asyncio.Event()).wait()  # without `leaves`, the client never leaves
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await handler(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def _event_stream_running(leaves: asyncio.Event | None = None) -> tuple[asyncio.Task, list]:
    """An event stream request in a task, once its first body chunk is out; and what it sent."""
    handler = StreamAwareASGIHandler(stream_url_names=("events",))
    sent: list = []
    call = asyncio.create_task(_call(handler, "/events", sent=sent, leaves=leaves))
    await async_wait_until(lambda: any(m.get("body") for m in sent), timeout=5, what="the first chunk")
    return call, sent


@pytest.fixture
def watched():
    global observed
    observed = _Observed()
    signals.request_finished.connect(observed.on_finished)
    yield observed
    signals.request_finished.disconnect(observed.on_finished)


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


@pytest.mark.asyncio
@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
async def test_an_event_stream_body_runs_without_the_request_which_finished_once(watched):
    handler = StreamAwareASGIHandler(stream_url_names=("events",))
    sent: list = []
    watched.hold.set()
    body = await _call(handler, "/events", sent=sent)
    assert body == b"data: one\n\ndata: two\n\n"
    start = sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"Content-Type", b"text/event-stream") in start["headers"]
    assert (b"X-Accel-Buffering", b"no") in start["headers"]
    assert sent[-1] == {"type": "http.response.body"}
    assert watched.request_alive_in_body is False, "nothing holds the request once the stream runs"
    assert watched.finished_before_body == 1, "request_finished is sent before the body runs"
    assert watched.finished == 1, "and never again"
    assert watched.body_closed


@pytest.mark.asyncio
@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
async def test_a_client_leaving_an_event_stream_closes_its_body_and_finishes_the_request_once(watched):
    leaves = asyncio.Event()
    call, sent = await _event_stream_running(leaves)
    leaves.set()
    await asyncio.wait_for(call, 5)
    assert watched.body_closed, "the body's finally ran: the stream's slot and subscriber are released"
    assert watched.finished == 1
    assert b"two" not in b"".join(m.get("body", b"") for m in sent)


@pytest.mark.asyncio
@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
async def test_the_server_cancelling_an_event_stream_ends_it_and_closes_its_body(watched):
    call, _ = await _event_stream_running()
    call.cancel()  # what Daphne does to an application at shutdown
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)
    assert call.done()
    assert watched.body_closed
    assert watched.finished == 1
    assert all(task.done() for task in asyncio.all_tasks() if "listen_for_disconnect" in repr(task))


@pytest.mark.asyncio
@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
async def test_a_message_other_than_a_disconnect_during_a_stream_is_an_error_as_in_django(watched):
    handler = StreamAwareASGIHandler(stream_url_names=("events",))
    scope = {"type": "http", "method": "GET", "path": "/events", "root_path": "", "query_string": b"",
             "headers": [], "server": ("testserver", 80)}
    messages = [{"type": "http.request", "body": b""}, {"type": "websocket.receive"}]
    started = asyncio.Event()

    async def receive():
        message = messages.pop(0)
        if message["type"] != "http.request":
            await started.wait()
        return message

    async def send(message):
        if message.get("body"):
            started.set()

    with pytest.raises(AssertionError, match="Invalid ASGI message"):
        await asyncio.wait_for(handler(scope, receive, send), 5)
    assert watched.body_closed


DJANGO_HANDLE_CHANGED = (
    "Django's ASGIHandler.handle() is not the one StreamAwareASGIHandler._stream_handle follows: "
    "compare the two, carry any change over, then record the new digest in DJANGO_HANDLE_FOLLOWED"
)


def test_the_django_handle_that_the_stream_handler_follows_is_the_installed_one():
    source = inspect.getsource(ASGIHandler.handle)
    assert hashlib.sha256(source.encode()).hexdigest() == DJANGO_HANDLE_FOLLOWED, DJANGO_HANDLE_CHANGED
