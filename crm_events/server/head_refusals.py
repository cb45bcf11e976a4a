"""The server's own refusals of a request head, as complete HTTP/1.1 responses in the API's JSON
error shape (`error_response`), made once per server from its limits (request_limits.py sends
them)."""

from __future__ import annotations

from crm_events.config import RequestHeadLimits
from crm_events.exceptions import ApiError, RequestHeadTooLarge
from crm_events.responses import error_response

MALFORMED_LIMIT = "malformed"
REQUEST_LINE_TOO_LONG = "the request line (method, path and query string) is longer than {max} bytes"
HEADER_TOO_LONG = "a header line (name and value) is longer than {max} bytes"
HEADERS_TOO_LARGE = "the header lines add up to more than {max} bytes"
TOO_MANY_HEADERS = "the request has more than {max} headers"
MALFORMED = "the request is not valid HTTP/1.1 (its request line, a header or its body framing)"


def refusal_bytes(error: ApiError) -> bytes:
    """The whole HTTP/1.1 response for `error`: its JSON body, its length, `Connection: close`."""
    response = error_response(error)
    lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    lines += [f"{name}: {value}" for name, value in response.items()]
    lines += [f"Content-Length: {len(response.content)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.content


# The refusals by what was refused (the `limit` of the body, and of the metric).
Refusals = dict[str, bytes]


def refusals_build(limits: RequestHeadLimits) -> Refusals:
    """The five answers, made once per server from its limits."""

    def too_large(message: str, status: int, limit: str, size: int) -> bytes:
        code = "request_line_too_long" if status == 414 else "headers_too_large"
        return refusal_bytes(RequestHeadTooLarge(
            message.format(max=size), status=status, code=code, limit=limit, max=size))

    return {
        "request_line": too_large(REQUEST_LINE_TOO_LONG, 414, "request_line", limits.request_line),
        "header": too_large(HEADER_TOO_LONG, 431, "header", limits.header),
        "headers_total": too_large(HEADERS_TOO_LARGE, 431, "headers_total", limits.headers_total),
        "headers": too_large(TOO_MANY_HEADERS, 431, "headers", limits.headers),
        MALFORMED_LIMIT: refusal_bytes(ApiError(MALFORMED)),
    }
