"""Requests Twisted refuses before Daphne sees them, answered in the API's JSON error shape.

Twisted's HTTP/1.1 channel closes the connection without a word on a request line or header
line longer than its `MAX_LENGTH` (16 KiB), and answers a head over `totalHeadersSize` or
`maxHeaders`, or one it cannot parse, with a bare `400 Bad Request`. `LimitedHTTPChannel`
checks the configured limits (`RequestHeadLimits`) on each line first, with Twisted's own set
above them so they never trip first, and answers 414 (request line) or 431 (one header, all
headers, their number), and 400 for what Twisted cannot parse, each a complete response with
`Connection: close` made once per server (head_refusals.py).

After the answer the channel shuts its sending side and reads (and drops) whatever the client
still sends, until the client closes or `LINGER_SECONDS` pass: closing a socket that has
unread data makes the kernel reset the connection, and a client still sending its 1 MB cookie
would then lose the answer (nginx's "lingering close"). Over TLS it just closes.

The channel overrides what Twisted calls on its subclasses (`lineReceived`,
`lineLengthExceeded`, `dataReceived`) and one private method, `_respondToBadRequestAndDisconnect`;
the factory wraps it in Twisted's private `_GenericHTTPChannelProtocol`, which switches to
HTTP/2 when TLS negotiates it. `request_limits_missing` checks at start that Twisted still has
these; if not, the server keeps Twisted's own channel and says so (daphne_server.py).
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import tcp
from twisted.internet.base import DelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

from crm_events import metrics
from crm_events.config import RequestHeadLimits
from crm_events.server.head_refusals import MALFORMED_LIMIT, Refusals

logger = logging.getLogger(__name__)

LINGER_SECONDS = 5.0  # how long a refused client may go on sending before it is cut off
LIMITS_OFF = (
    "request head limits are off: this Twisted (%s) lacks %s; oversized requests get Twisted's own "
    "answers (a closed connection or a bare 400) instead of a JSON 414 or 431"
)

# What the channel and its factory rely on: (the class, its attributes).
CHANNEL_ATTRIBUTES = ("lineReceived", "lineLengthExceeded", "dataReceived", "clearLineBuffer",
                      "connectionLost", "_respondToBadRequestAndDisconnect", "MAX_LENGTH",
                      "totalHeadersSize", "maxHeaders", "callLater")
HTTP_MODULE_ATTRIBUTES = ("_GenericHTTPChannelProtocol",)


def request_limits_missing(channel_class: type = http.HTTPChannel, http_module: Any = http) -> list[str]:
    """What the channel needs that the installed Twisted lacks, checked on the real class."""
    missing = [f"{channel_class.__name__}.{name}" for name in CHANNEL_ATTRIBUTES
               if not hasattr(channel_class, name)]
    return missing + [f"twisted.web.http.{name}" for name in HTTP_MODULE_ATTRIBUTES
                      if not hasattr(http_module, name)]


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with the server's head limits and JSON refusals."""

    def __init__(self, limits: RequestHeadLimits, refusals: Refusals) -> None:
        super().__init__()
        self.limits = limits
        self.refusals = refusals
        # Twisted's own limits, beyond ours (it counts the request line into its total).
        self.MAX_LENGTH = max(limits.request_line, limits.header)
        self.totalHeadersSize = limits.request_line + limits.headers_total
        self.maxHeaders = limits.headers + 1
        self.at_request_line = True
        self.head_bytes = 0
        self.head_count = 0
        self.refused = False
        self.linger: DelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if not self.refused:  # after a refusal, what the client still sends is dropped
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        exceeded = self.head_line_check(line)
        if exceeded is not None:
            self.refuse(exceeded)
            return
        super().lineReceived(line)

    def head_line_check(self, line: bytes) -> str | None:
        """The limit `line` exceeds, or None; keeps count of this request's head."""
        if self.at_request_line:
            self.at_request_line = not line  # Twisted skips an empty line before a request
            return "request_line" if len(line) > self.limits.request_line else None
        if not line:  # the head's end: the next line in line mode starts the next request
            self.at_request_line, self.head_bytes, self.head_count = True, 0, 0
            return None
        self.head_bytes += len(line)
        self.head_count += line[:1] not in (b" ", b"\t")  # a folded line continues a header
        if len(line) > self.limits.header:
            return "header"
        if self.head_bytes > self.limits.headers_total:
            return "headers_total"
        return "headers" if self.head_count > self.limits.headers else None

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line over `MAX_LENGTH`, whole or still arriving."""
        self.refuse("request_line" if self.at_request_line else "header")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's bare 400 for a head or body framing it cannot parse."""
        self.refuse(MALFORMED_LIMIT)

    def refuse(self, limit: str) -> None:
        if self.refused:
            return
        self.refused = True
        metrics.REQUESTS_REFUSED.labels(limit).inc()
        self.clearLineBuffer()  # ends LineReceiver's loop over lines already received
        self.setTimeout(None)
        transport: Any = self.transport  # zope's ITransport: mypy cannot type its methods
        transport.write(self.refusals[limit])
        if isinstance(transport, tcp.Server):  # plain TCP: half-close, read on (see the docstring)
            transport.loseWriteConnection()
            self.linger = self.callLater(LINGER_SECONDS, transport.abortConnection)
        else:
            self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.linger is not None and self.linger.active():
            self.linger.cancel()
        super().connectionLost(reason)


def limited_protocol(limits: RequestHeadLimits, refusals: Refusals) -> Any:
    """What `HTTPFactory.protocol` builds by default, around a `LimitedHTTPChannel`."""
    return http._GenericHTTPChannelProtocol(LimitedHTTPChannel(limits, refusals))


def request_limits_enabled() -> bool:
    """Run the probe once at start; say when the limits cannot apply."""
    missing = request_limits_missing()
    if missing:
        import twisted

        logger.warning(LIMITS_OFF, twisted.__version__, ", ".join(missing))
    return not missing
