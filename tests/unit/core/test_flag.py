"""`Flag` behaves as `asyncio.Event` does for its one waiter."""

from __future__ import annotations

import asyncio

import pytest

from crm_events.core.flag import SECOND_WAITER, Flag


async def test_a_set_flag_returns_at_once_and_clear_makes_it_wait():
    flag = Flag(is_set=True)
    await asyncio.wait_for(flag.wait(), 1)
    flag.clear()
    assert not flag.is_set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flag.wait(), 0.01)


async def test_set_wakes_the_waiter_and_stays_set():
    flag = Flag()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    await asyncio.wait_for(waiter, 1)
    assert flag.is_set()
    await asyncio.wait_for(flag.wait(), 1)


async def test_a_cancelled_wait_leaves_the_flag_usable():
    flag = Flag()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await flag.wait()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    flag.set()  # twice: the second finds the waiter already woken
    await asyncio.wait_for(waiter, 1)


async def test_a_second_waiter_is_refused():
    flag = Flag()
    first = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match=SECOND_WAITER):
        await flag.wait()
    flag.set()
    await first
