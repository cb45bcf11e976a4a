"""The consumer's own HTTP server: `/metrics` (Prometheus) and `/livez` (liveness).

prometheus_client's `start_http_server` serves the metrics on every path from a thread; the
same WSGI server here answers `/livez` from the consume loop's progress, so a stuck loop is
seen even though this thread keeps answering. No authentication: it listens on loopback
unless CONSUMER_METRICS_ADDRESS says otherwise.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from crm_events.ingest.liveness import LoopProgress

LIVEZ_PATH = "/livez"
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Probes every few seconds are no news: no line per request on stderr."""


def _server_class(address: str) -> type[_ThreadingServer]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return type("ConsumerMetricsServer", (_ThreadingServer,), {"address_family": family})


def consumer_app(progress: LoopProgress, max_age: float) -> WsgiApp:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != LIVEZ_PATH:
            return metrics(environ, start_response)
        stale = progress.stale(max_age)
        body = json.dumps({"ok": stale is None, **({"error": stale} if stale else {})}).encode()
        start_response("200 OK" if stale is None else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def consumer_http_serve(address: str, port: int, progress: LoopProgress, max_age: float) -> WSGIServer:
    """Serve `/metrics` and `/livez` on address:port from a daemon thread; OSError if it cannot bind."""
    app = consumer_app(progress, max_age)
    server = make_server(address, port, app, _server_class(address), _QuietHandler)
    threading.Thread(target=server.serve_forever, name="consumer-metrics", daemon=True).start()
    return server
