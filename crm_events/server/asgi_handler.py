"""Django's ASGI handler, minus the per-request thread for long-lived streams.

Django runs every request inside asgiref's `ThreadSensitiveContext`, which gives the
request an executor thread of its own the first time sync code runs in it (the
`request_started` signal always does) and keeps it until the response ends. For a
stream that lasts an hour, that is one idle OS thread per connected client. Stream
requests skip that
context: their little sync work (signals, a session lookup) runs on asgiref's one
shared thread, as any async code outside a request does. Every other request keeps
Django's behaviour.

A stream also lets go of what it no longer needs once its response exists. Django's
`handle()` keeps the request (its META, GET, session, user, resolver match, messages),
its body file, the response and its headers in the frames of coroutines and generators
that live as long as the stream, so every idle connection would carry them (the
benchmark's memory mode shows how much). `_stream_handle` is Django 5.2's `handle()` (django is bounded
to 5.2.x) step for step, signals alike, except that:
- the response is made and sent in the handler's own task, which the disconnect listener
  cancels if it ends first (Django makes it in a task of its own and waits on both);
- the request and the body file are dropped as soon as the view has answered;
- an `EventStreamResponse` is closed as soon as its start message (status and headers)
  is made, which closes the request and sends `request_finished` (the request is over;
  what follows is its body, which touches no database), and its body is then run alone,
  without the response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, suppress
from typing import Any, cast

import django
from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.asgi import get_script_prefix as scope_script_prefix
from django.http import HttpResponseBase
from django.urls import get_script_prefix, reverse, set_script_prefix

from crm_events.responses import EventStreamResponse

# The SHA-256 of the source of the Django `ASGIHandler.handle()` that `_stream_handle` follows
# step for step (Django 5.2.19): a release that changes it fails a unit test, which says to
# compare the two and record the new digest.
DJANGO_HANDLE_FOLLOWED = "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323"


class StreamAwareASGIHandler(ASGIHandler):
    def __init__(self, stream_url_names: tuple[str, ...]) -> None:
        super().__init__()
        self._stream_url_names = stream_url_names
        self._stream_paths: frozenset[str] | None = None

    def _is_stream(self, scope: dict[str, Any]) -> bool:
        if self._stream_paths is None:
            # Resolved on first use, when the URLconf can be imported safely; compared with
            # the path below any mount point (`root_path`), as Django's `path_info` is.
            prefix = get_script_prefix()
            self._stream_paths = frozenset(
                "/" + reverse(name).removeprefix(prefix) for name in self._stream_url_names
            )
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        return (path.removeprefix(root) if root else path) in self._stream_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._is_stream(scope):
            await self._stream_handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _stream_handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's `handle()`, minus the request and body file once the response exists."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(scope_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django's create_request returns one or the other
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return
        held: dict[str, Any] = {"request": request, "body_file": body_file}  # let go of once answered
        del request, body_file

        def body_close() -> None:
            if "body_file" in held:
                held.pop("body_file").close()

        async def process_request() -> HttpResponseBase | None:
            response = await self.run_get_response(held["request"])
            del held["request"]
            body_close()  # nothing reads it any more
            if isinstance(response, EventStreamResponse):
                start, body = _response_start(response), response.body
                await sync_to_async(response.close)()
                held["finished"] = True  # request_finished is sent
                del response
                with suppress(asyncio.CancelledError):  # the client left
                    await send(start)
                    del start  # Twisted has the headers now
                    await self._event_stream_body(body, send)
                return None
            with suppress(asyncio.CancelledError):  # the client left while the body was being sent
                await self.send_response(response, send)
            return response

        # As Django: a disconnect while the response is made or sent cancels it. Django runs the
        # response in a task of its own beside the listener and waits for either to end; here it
        # runs in this task, which the listener cancels if it ends first: one task and one wait
        # fewer for every stream.
        this = asyncio.current_task()
        assert this is not None
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        on_disconnect = _CancelOnDisconnect(this)
        listening.add_done_callback(on_disconnect)
        client_left = False
        response: HttpResponseBase | None = None
        try:
            response = await process_request()
        except asyncio.CancelledError:
            client_left = on_disconnect.disarm()
            if not client_left or this.cancelling():  # the server cancelled this (too): stop here
                listening.cancel()
                body_close()
                raise
        else:
            on_disconnect.disarm()
        try:
            await _tasks_settle([listening])
        except AssertionError:  # Django's: a message other than a disconnect after the body
            body_close()
            raise
        if client_left:
            if "finished" not in held:
                await signals.request_finished.asend(sender=self.__class__)
        elif response is not None:
            await sync_to_async(response.close)()
        body_close()

    async def _event_stream_body(self, body: AsyncIterator[bytes], send: Any) -> None:
        """The body half of Django's `send_response` for a streaming response."""
        # The body is an async generator (it has aclose()), as Django's own iteration assumes.
        async with aclosing(cast(AsyncGenerator[bytes, None], body)) as content:
            async for part in content:
                for chunk, _ in self.chunk_bytes(part):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body"})


class _CancelOnDisconnect:
    """The listener's done callback: cancels the task that makes and sends the response, while
    it still does (a callback scheduled before `disarm` may run after it)."""

    __slots__ = ("task", "armed", "fired")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task, self.armed, self.fired = task, True, False

    def __call__(self, listener: asyncio.Task[Any]) -> None:
        if self.armed:
            self.fired = True
            self.task.cancel()

    def disarm(self) -> bool:
        """No more cancelling. True if it cancelled the task: that cancellation, now handled
        (caught, or suppressed while sending, as Django does), is withdrawn from the task."""
        self.armed = False
        if self.fired:
            self.task.uncancel()
        return self.fired


async def _tasks_settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Django's: the finished tasks' outcomes (a disconnect is no error), the others cancelled."""
    for task in tasks:
        if task.done():
            with suppress(RequestAborted):
                task.result()
        else:
            task.cancel()  # views may handle their cancellation
            with suppress(asyncio.CancelledError):
                await task


def _response_start(response: HttpResponseBase) -> dict[str, Any]:
    """The `http.response.start` message Django's `send_response` builds."""
    headers = []
    for header, value in response.items():
        name = header.encode("ascii") if isinstance(header, str) else header
        text = value.encode("latin1") if isinstance(value, str) else value
        headers.append((bytes(name), bytes(text)))
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


def stream_aware_asgi_application(stream_url_names: tuple[str, ...]) -> StreamAwareASGIHandler:
    """What `django.core.asgi.get_asgi_application()` does, with the handler above."""
    django.setup(set_prefix=False)
    return StreamAwareASGIHandler(stream_url_names)
