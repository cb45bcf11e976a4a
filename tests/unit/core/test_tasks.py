import asyncio

from crm_events.core.tasks import task_stop


async def _swallows_cancellations(limit: list[int]) -> None:
    """Like a loop whose awaited call lost a cancellation (CPython gh-86296): it goes on."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > limit[0]:
                raise


async def test_a_task_that_swallowed_cancellations_is_cancelled_again_until_it_ends():
    task = asyncio.create_task(_swallows_cancellations([2]))
    await asyncio.sleep(0)
    assert await task_stop(task, deadline=5)
    assert task.cancelled()


async def test_a_task_that_never_ends_is_given_up_on_at_the_deadline():
    limit = [10**9]
    task = asyncio.create_task(_swallows_cancellations(limit))
    await asyncio.sleep(0)
    assert not await task_stop(task, deadline=0.3)
    assert not task.done()
    limit[0] = 0  # let it end, so the test leaves nothing running
    assert await task_stop(task, deadline=5)
