"""`/healthz` and `/readyz` for whoever probes them, whatever `DJANGO_ALLOWED_HOSTS` says.

A kubelet asks `http://<pod IP>:9010/readyz`, a compose healthcheck `http://127.0.0.1:9010/readyz`:
neither Host is a name the service answers to in production, and neither speaks https. So
this middleware comes first and answers those two paths itself, by calling their views,
before Django reads the Host header (CommonMiddleware, the https redirect, CSRF) or opens a
session. Every other request goes on unchanged. The probes' answers hold nothing a stranger
could use (`{"ok": true}`, and for `/readyz` which dependency failed), so skipping the Host
check for them costs nothing; requests with any other path still get the check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.urls import resolve, reverse

PROBE_URL_NAMES = ("healthz", "readyz")

Handler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class ProbeMiddleware:
    """Answers the probe paths with their own views; hands everything else on."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._paths: frozenset[str] | None = None
        markcoroutinefunction(self)

    def _probe_paths(self) -> frozenset[str]:
        if self._paths is None:  # the URLconf can be imported once requests arrive
            self._paths = frozenset(reverse(name) for name in PROBE_URL_NAMES)
        return self._paths

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path not in self._probe_paths():
            return await self.get_response(request)
        match = resolve(request.path_info)
        return await match.func(request, *match.args, **match.kwargs)
