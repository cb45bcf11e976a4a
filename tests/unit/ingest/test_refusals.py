"""Which failures of a `group_send` are outages, which refusals, and which are none of the layer's."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors
from redis.asyncio.sentinel import MasterNotFoundError

from crm_events.ingest.refusals import MEMORY, OUTAGE, REFUSED, layer_failure_classify

OOM = "OOM command not allowed when used memory > 'maxmemory'."


@pytest.mark.parametrize(("error", "kind"), [
    # The connection failed: nothing about the message.
    (redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), OUTAGE),
    (redis_errors.TimeoutError("Timeout reading from socket"), OUTAGE),
    (ConnectionResetError(104, "Connection reset by peer"), OUTAGE),
    (TimeoutError(), OUTAGE),
    (redis_errors.BusyLoadingError("Redis is loading the dataset in memory"), OUTAGE),
    (redis_errors.AuthenticationError("invalid username-password pair"), OUTAGE),
    # Sentinel: no master agreed on yet (a failover under way), or the old one now a replica.
    (MasterNotFoundError("No master found for 'crm-events'"), OUTAGE),
    (redis_errors.ConnectionError("The previous master is now a slave"), OUTAGE),
    # Redis answers, but its state refuses every write for now.
    (redis_errors.ReadOnlyError("You can't write against a read only replica."), OUTAGE),
    (redis_errors.NoPermissionError("this user has no permissions to run the 'eval' command"), OUTAGE),
    (redis_errors.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it is unable"),
     OUTAGE),
    (redis_errors.ResponseError("BUSY Redis is busy running a script."), OUTAGE),
    (redis_errors.TryAgainError("Multiple keys request during rehashing of slot"), OUTAGE),
    # Out of memory: whether the message is to blame depends on its size.
    (redis_errors.OutOfMemoryError(OOM, status_code="OOM"), MEMORY),
    (redis_errors.ResponseError(f"Error running script (call to f_1): @user_script:6: -{OOM}",
                                status_code="ERR"), MEMORY),
    # The command itself is refused: retrying the same message cannot help.
    (redis_errors.ResponseError("Protocol error: invalid bulk length", status_code="ERR"), REFUSED),
    (redis_errors.ResponseError("string exceeds maximum allowed size (proto-max-bulk-len)",
                                status_code="ERR"), REFUSED),
    (redis_errors.DataError("Invalid input of type: 'dict'."), REFUSED),
    (TypeError("can not serialize 'set' object"), REFUSED),
    (ValueError("Integer value out of range"), REFUSED),
    (OverflowError("Integer value out of range"), REFUSED),
])
def test_each_failure_is_told_apart(error: BaseException, kind: str) -> None:
    failure = layer_failure_classify(error)
    assert failure is not None and failure.kind == kind
    assert failure.reason == f"{type(error).__name__}: {error}"


def test_an_error_that_is_none_of_the_layers_is_not_classified() -> None:
    assert layer_failure_classify(KeyError("a bug")) is None
    assert layer_failure_classify(AttributeError("a bug")) is None
