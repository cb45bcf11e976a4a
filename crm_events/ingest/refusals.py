"""What a failed `group_send` means: the layer is away, Redis is out of memory, or this message is refused.

- OUTAGE: the connection failed (refused, reset, timed out), or Redis says its own state
  stops every write for now (READONLY after a failover, LOADING, MISCONF, BUSY, an ACL or
  password it refuses...). Waited out with backoff; no message is to blame.
- MEMORY: Redis is at its `maxmemory` under `noeviction` ("OOM command not allowed"). Redis
  counts the incoming command in its memory, so a large message can be refused where a small
  one fits, and it can also refuse everything while other clients' data fill it: which of the
  two it is depends on the message's size (see `layer_send.py`).
- REFUSED: the serializer (msgpack) cannot pack the message, or Redis refuses the command
  itself (an `ERR` reply: a protocol or size limit, a script error). Retrying the same
  message cannot help; a smaller or different one may.

An error that is none of these (a bug) is not classified: it propagates, and the consumer's
supervisor logs it and reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    DataError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

OUTAGE = "outage"
MEMORY = "memory"
REFUSED = "refused"

# What msgpack (the layer's serializer) raises for a payload it cannot pack.
UNSERIALIZABLE = (TypeError, ValueError, OverflowError)
# The reply of a Redis that refuses a write for memory; a script error may wrap it (Redis 6).
OOM_TEXT = "OOM command not allowed"
# Error replies about the command itself; every other code names the server's state.
COMMAND_ERROR_CODES = frozenset({"ERR"})


@dataclass(frozen=True, slots=True)
class LayerFailure:
    kind: str
    reason: str  # for logs, /status and a reference item: the error's type and text


def layer_failure_classify(error: BaseException) -> LayerFailure | None:
    """The failure `error` from a `group_send` is, or None for one that is none of the layer's."""
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)):
        return LayerFailure(OUTAGE, reason)
    if isinstance(error, OutOfMemoryError) or (isinstance(error, ResponseError) and OOM_TEXT in str(error)):
        return LayerFailure(MEMORY, reason)
    if isinstance(error, ResponseError):
        return LayerFailure(REFUSED if _error_code(error) in COMMAND_ERROR_CODES else OUTAGE, reason)
    if isinstance(error, (DataError, *UNSERIALIZABLE)):
        return LayerFailure(REFUSED, reason)
    if isinstance(error, RedisError):
        return LayerFailure(OUTAGE, reason)  # the client's own state (a pool, a lock): not the message
    return None


def _error_code(error: ResponseError) -> str:
    # redis-py strips the codes it knows (keeping them as `status_code`), not the others.
    if type(error) is not ResponseError:
        return type(error).__name__  # READONLY, NOPERM, TRYAGAIN, MOVED...: the server's state
    code = getattr(error, "status_code", None)
    return code or (str(error).split(" ", 1)[0] if str(error) else "")
