"""The inbox Daphne's protocols put messages into and the application `receive()`s from: any
interleaving of puts, gets and cancelled gets delivers every message once, in order."""

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_events.server.inbox import ApplicationInbox

# put: a new message; get: a getter starts waiting; cancel: the oldest waiting getter is
# cancelled (possibly after it was woken for a message it had not taken yet); run: the loop turns.
OPERATIONS = st.lists(st.sampled_from(["put", "get", "cancel", "run"]), max_size=40)


async def _play(operations: list[str]) -> tuple[list[int], list[int], int]:
    """Returns (messages the getters took, what was left in the inbox after, messages put)."""
    inbox = ApplicationInbox()
    started: list[asyncio.Task] = []
    waiting: list[asyncio.Task] = []
    put = 0
    for operation in operations:
        if operation == "put":
            inbox.put_nowait(put)
            put += 1
        elif operation == "get":
            task = asyncio.ensure_future(inbox.get())
            started.append(task)
            waiting.append(task)
        elif operation == "cancel" and waiting:
            waiting.pop(0).cancel()
        else:
            await asyncio.sleep(0)
    for task in started:
        task.cancel()
    taken = []
    for task in started:
        with contextlib.suppress(asyncio.CancelledError):
            taken.append(await task)  # it had taken its message before being cancelled
    left = []
    while True:
        try:
            left.append(await asyncio.wait_for(inbox.get(), 0.001))
        except TimeoutError:
            return taken, left, put


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_every_message_arrives_once_in_order_whatever_the_getters_do(operations):
    taken, left, put = asyncio.run(_play(operations))
    assert sorted(taken + left) == list(range(put)), "none lost, none twice"
    assert left == sorted(left) and all(m < n for m in taken for n in left), "first in, first out"


def test_it_is_truthy_when_empty_as_daphne_reads_it():
    assert ApplicationInbox()


@pytest.mark.asyncio
async def test_a_waiting_getter_is_handed_the_next_message():
    inbox = ApplicationInbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait({"type": "http.disconnect"})
    assert await asyncio.wait_for(waiting, 1) == {"type": "http.disconnect"}


@pytest.mark.asyncio
async def test_a_getter_cancelled_after_being_woken_leaves_the_message_for_the_next():
    inbox = ApplicationInbox()
    first = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("body")
    first.cancel()  # before it ran again to take "body"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(inbox.get(), 1) == "body"
