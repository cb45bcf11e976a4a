"""Errors of the CRM events app, in one place so callers catch them by name."""


class CrmEventsError(Exception):
    """Base class for this app's errors."""


class KafkaUnavailable(CrmEventsError):
    """Kafka did not answer an offset look-up in time; the stream cannot be positioned."""


class KafkaRefused(KafkaUnavailable):
    """Kafka answered and refused us (credentials, certificate, token): the message names why."""


class ApiError(CrmEventsError):
    """A request refused with an HTTP status and a JSON body (see `crm_events.responses`).

    `message` is one of the constants of the raising module, so tests and clients
    can match it exactly; `code` is a short machine-readable word.
    """

    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class StreamRequestError(ApiError):
    """A malformed stream request: 400. The message is safe to show the client.

    `parameter` names what is wrong (a query parameter, or `Last-Event-ID`) when one thing is.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message, **({} if parameter is None else {"parameter": parameter}))
        self.parameter = parameter


class AuthenticationFailed(ApiError):
    """Missing, malformed, expired or unverifiable credentials: 401."""

    status = 401
    code = "unauthorized"


class StreamForbidden(ApiError):
    """Valid credentials that do not cover what was asked (a topic): 403."""

    status = 403
    code = "forbidden"


class StreamLimitReached(ApiError):
    """Too many concurrent streams: 429 for one client or subject, 503 for the whole process."""

    code = "too_many_streams"

    def __init__(self, message: str, *, status: int, retry_after: int, limit: str) -> None:
        super().__init__(message, limit=limit)
        self.status = status
        self.retry_after = retry_after


class ServerError(ApiError):
    """An unexpected failure, answered in the same JSON shape (Django's `handler500`): 500."""

    status = 500
    code = "server_error"


class MethodNotAllowed(ApiError):
    """A method the URL does not answer: 405, with the methods it does in `Allow` and `allowed`."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: list[str]) -> None:
        super().__init__(message, allowed=allowed)
        self.allowed = allowed


class RequestHeadTooLarge(ApiError):
    """A request line (414) or header section (431) over the web process's limits, refused by the
    server before Django sees the request. `limit` names which limit, `max` its size."""

    def __init__(self, message: str, *, status: int, code: str, limit: str, max: int) -> None:  # noqa: A002
        super().__init__(message, limit=limit, max=max)
        self.status = status
        self.code = code


class WorkersError(CrmEventsError):
    """`aetherlink-web --workers N` cannot start as asked (its binding options, its port)."""


class GrantMalformed(CrmEventsError):
    """A grant (a credential's mandatory filters) that is not one: it grants nothing, so whoever
    holds it is refused. The message is one of `access.grants`' constants; `parameter` names the
    grant's parameter at fault when one is."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
