"""Daphne's server, extended by its seams for long-lived streams (`aetherlink-web` runs it).

- `create_application`: every HTTP scope gets a factory for its stream transport
  (`aetherlink.stream_transport`, see daphne_transport.py), so a stream writes into
  its connection directly, with Twisted's flow control; and every connection's
  messages go through an `ApplicationInbox` (inbox.py), not an asyncio.Queue of four deques.
- `kill_all_applications` is Daphne's "before shutdown" trigger: on SIGTERM (Twisted's
  own handler stops the reactor) it first closes every stream, which each send their
  resume id, gives them `SSE_SHUTDOWN_GRACE` seconds, then lets Daphne cancel what is
  left; it returns a Deferred, so Twisted waits for all of it.
- `action_logger`: the access log goes through Python logging (`access_log.py`).
- The HTTP factory builds requests whose server-level errors (a bad header, an
  application that failed) are the API's JSON error body instead of an HTML page, on
  channels that answer a request head over the `WEB_MAX_*` limits with a JSON 414 or 431
  (request_limits.py), where Twisted would close the connection or answer a bare 400.
- `run`: garbage collection tuned for many long-lived objects (`gc_tuning.py`), the
  open-files limit raised to the hard limit (`os_limits.py`, one log line), and the
  start-up probe of what the direct socket writes need from Twisted.
- `endpoints`: each listening socket Daphne opens gets `WEB_LISTEN_BACKLOG` (Twisted's
  default of 50 overflows when thousands of clients reconnect at once). With `reuse_port`
  (`aetherlink-web --reuse-port`, every worker of `--workers N`), the `tcp:` ones are bound
  here with `SO_REUSEPORT` instead (reuse_port.py) and adopted by Twisted through Daphne's
  `ready_callable` argument, the moment before the reactor runs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from functools import partial
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from twisted.internet import defer
from twisted.python.failure import Failure

from crm_events.config import RequestHeadLimits, server_config, stream_config
from crm_events.core.transport import TRANSPORT_EXTENSION
from crm_events.fanout.registry import hubs_close
from crm_events.server.access_log import AccessLog
from crm_events.server.daphne_transport import DaphneTransportFactory
from crm_events.server.direct_send import direct_send_enabled
from crm_events.server.gc_tuning import gc_tune
from crm_events.server.head_refusals import refusals_build
from crm_events.server.inbox import ApplicationInbox
from crm_events.server.os_limits import backlog_add, nofile_raise
from crm_events.server.request_limits import limited_protocol, request_limits_enabled
from crm_events.server.reuse_port import TcpAddress, reuse_port_listen, tcp_endpoint_parse

logger = logging.getLogger(__name__)

ERROR_CODES = {400: "bad_request", 500: "server_error", 503: "unavailable"}
REUSE_PORT_FAILED = "Listen failure: %s:%d with SO_REUSEPORT: %s"


class JsonErrorRequest(WebRequest):
    """Daphne's request, whose own error answers have the API's JSON error shape."""

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        error = {"ok": False, "error": f"{status_text.decode('ascii')}: {body}",
                 "code": ERROR_CODES.get(status, "error")}
        self.handle_reply({
            "type": "http.response.start", "status": status,
            "headers": [(b"Content-Type", b"application/json"), (b"Cache-Control", b"no-store")],
        })
        self.handle_reply({"type": "http.response.body", "body": json.dumps(error).encode()})


class JsonErrorHTTPFactory(HTTPFactory):
    """Daphne's factory; with `limits`, its HTTP/1.1 channels refuse oversized heads in JSON."""

    def __init__(self, server: Server, limits: RequestHeadLimits | None = None) -> None:
        super().__init__(server)
        self.limits = limits
        self.refusals = refusals_build(limits) if limits is not None else None

    def protocol(self) -> Any:
        """Twisted's `Factory.buildProtocol` calls this for each connection."""
        if self.limits is None or self.refusals is None:
            return super().protocol()
        return limited_protocol(self.limits, self.refusals)

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = JsonErrorRequest  # the factory's documented seam (Daphne sets it too)
        return protocol


class AetherlinkServer(Server):
    def __init__(
        self, application: Any, endpoints: list[str] | None = None, *args: Any, action_logger: Any = None,
        reuse_port: bool = False, **kwargs: Any,
    ) -> None:
        # Daphne's CLI hands its stdout logger when it wants an access log: ours logs instead.
        backlog = server_config().listen_backlog
        endpoints = backlog_add(list(endpoints or []), backlog)
        parsed = [(tcp_endpoint_parse(description, backlog) if reuse_port else None, description)
                  for description in endpoints]
        self.reuse_port_addresses = [address for address, _ in parsed if address is not None]
        if self.reuse_port_addresses:
            kwargs["ready_callable"] = partial(self._reuse_port_adopt, kwargs.get("ready_callable"))
        super().__init__(
            application, endpoints, *args, action_logger=AccessLog() if action_logger else None, **kwargs)
        # Daphne refuses an empty list above; the `tcp:` ones it must not open are ours to bind.
        self.endpoints = [description for address, description in parsed if address is None]
        self.direct_send = direct_send_enabled()
        self.request_head = server_config().request_head if request_limits_enabled() else None
        self.shutdown_grace = stream_config().shutdown_grace

    # Daphne's run() builds its HTTP factory by assigning this attribute: ours is built instead.
    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        ours = isinstance(factory, JsonErrorHTTPFactory)
        self._http_factory = factory if ours else JsonErrorHTTPFactory(self, self.request_head)

    def run(self) -> None:
        nofile_raise()
        gc_tune()
        super().run()

    def _reuse_port_adopt(self, ready_callable: Any) -> None:
        """Daphne calls this once its own endpoints listen, just before the reactor runs."""
        for address in self.reuse_port_addresses:
            if not self._reuse_port_listen(address):
                return
        if ready_callable is not None:
            ready_callable()

    def _reuse_port_listen(self, address: TcpAddress) -> bool:
        from twisted.internet import reactor as installed  # the asyncio reactor Daphne installed

        reactor: Any = installed

        try:
            sock = reuse_port_listen(address)
        except OSError as error:
            logger.critical(REUSE_PORT_FAILED, address.host, address.port, error)
            self.abort_start = True  # the command line exits 1
            reactor.callWhenRunning(reactor.stop)
            return False
        sock.setblocking(False)  # as Twisted's own adopted endpoints do: its accepts must not block
        with sock:  # Twisted listens on a copy of its own
            self.listen_success(reactor.adoptStreamPort(sock.fileno(), sock.family, self.http_factory))
        return True

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> ApplicationInbox | None:
        """Daphne 4.2's, step for step, with the inbox for its queue and the transport factory."""
        assert "application_instance" not in self.connections[protocol]
        if scope.get("type") == "http":
            extensions = scope.setdefault("extensions", {})
            extensions[TRANSPORT_EXTENSION] = DaphneTransportFactory(self, protocol, direct=self.direct_send)
        inbox = ApplicationInbox()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:  # the client left meanwhile
            if inspect.iscoroutine(instance):
                instance.close()  # never to run (Daphne leaves it to warn "never awaited")
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return inbox

    def kill_all_applications(self) -> defer.Deferred[Any]:
        logger.info("stopping: closing streams with their resume ids (up to %.1fs)", self.shutdown_grace)
        goodbyes = defer.Deferred.fromFuture(asyncio.ensure_future(hubs_close(self.shutdown_grace)))
        goodbyes.addBoth(self._kill_the_rest)
        return goodbyes

    def _kill_the_rest(self, outcome: object) -> defer.Deferred[Any]:
        # Whatever went wrong on the way (seen: a broken import), stopping must go on.
        if isinstance(outcome, Failure):
            logger.error("closing streams failed: %s", outcome.getErrorMessage())
        return super().kill_all_applications()
