"""`/healthz`, `/readyz`, `/status` and `/metrics` for whoever probes or scrapes them, whatever
`DJANGO_ALLOWED_HOSTS` says.

A kubelet asks `http://<pod IP>:9010/readyz`, Prometheus `http://<pod IP>:9010/metrics`, a
compose healthcheck `http://127.0.0.1:9010/readyz`: no such Host is a name the service answers
to in production, and none of them speaks https. So this middleware comes first (only the one
that gives 405 answers their JSON body wraps it) and answers those paths itself, by calling
their views, before Django reads the Host header (CommonMiddleware, the https redirect, CSRF)
or opens a session. Every other request goes on unchanged. The probes' answers hold nothing a
stranger could use (`{"ok": true}`, and for `/readyz` which of this process's checks failed);
`/status` and `/metrics` decide access themselves, by the socket's peer address or the metrics
token (crm_events/ops/scrape_access.py), which no Host header changes. Requests with any other
path still get the check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, get_script_prefix, resolve, reverse

PROBE_URL_NAMES = ("healthz", "readyz", "status", "metrics")

Handler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class ProbeMiddleware:
    """Answers the probe paths with their own views; hands everything else on."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._paths: dict[str, frozenset[str]] = {}  # per URLconf
        markcoroutinefunction(self)

    def probe_paths(self, urlconf: str) -> frozenset[str]:
        """The probes' paths below any mount point (as `path_info` is); none if the URLconf
        has no probes. Resolved on first use, when the URLconf can be imported safely."""
        paths = self._paths.get(urlconf)
        if paths is None:
            found = set()
            for name in PROBE_URL_NAMES:
                try:
                    found.add("/" + reverse(name, urlconf=urlconf).removeprefix(get_script_prefix()))
                except NoReverseMatch:
                    continue
            paths = self._paths[urlconf] = frozenset(found)
        return paths

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        if request.path_info not in self.probe_paths(urlconf):
            return await self.get_response(request)
        match = resolve(request.path_info, urlconf=urlconf)
        return await match.func(request, *match.args, **match.kwargs)
