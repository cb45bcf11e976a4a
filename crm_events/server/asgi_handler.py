"""Django's ASGI handler, minus the per-request thread for long-lived streams.

Django runs every request inside asgiref's `ThreadSensitiveContext`, which gives the
request an executor thread of its own the first time sync code runs in it (the
`request_started` signal always does) and keeps it until the response ends. For a
stream that lasts an hour, that is one idle OS thread per connected client: 2,000
threads for 2,000 clients, measured by the benchmark. Stream requests skip that
context: their little sync work (signals, a session lookup) runs on asgiref's one
shared thread, as any async code outside a request does. Every other request keeps
Django's behaviour.
"""

from __future__ import annotations

from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler
from django.urls import get_script_prefix, reverse


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
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def stream_aware_asgi_application(stream_url_names: tuple[str, ...]) -> StreamAwareASGIHandler:
    """What `django.core.asgi.get_asgi_application()` does, with the handler above."""
    django.setup(set_prefix=False)
    return StreamAwareASGIHandler(stream_url_names)
