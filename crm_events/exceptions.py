"""Errors of the CRM events app, in one place so callers catch them by name."""


class CrmEventsError(Exception):
    """Base class for this app's errors."""


class StreamRequestError(CrmEventsError):
    """A stream request is malformed; the message is safe to show the client."""


class KafkaUnavailable(CrmEventsError):
    """Kafka did not answer an offset look-up in time; the stream cannot be positioned."""
