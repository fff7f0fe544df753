"""``http.retry.in_order``: results in order, a bounded number running ahead, and nothing
left running after a failure or an early stop."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sync_core.http.retry import in_order


async def test_results_come_in_order_with_at_most_window_running() -> None:
    running, peak, finished = 0, 0, []

    async def job(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (10 - n))  # later jobs finish first
        running -= 1
        finished.append(n)
        return n

    got = [n async for n in in_order((job(n) for n in range(10)), 3)]
    assert got == list(range(10))
    assert peak <= 3 and sorted(finished) == list(range(10))


async def test_a_failure_cancels_the_jobs_running_ahead() -> None:
    cancelled = []

    async def job(n: int) -> int:
        try:
            if n == 0:
                raise ValueError("page 0 failed")
            await asyncio.sleep(10)
            return n
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    with pytest.raises(ValueError, match="page 0"):
        async for _ in in_order((job(n) for n in range(5)), 3):
            pass
    assert sorted(cancelled) == [1, 2]  # the rest were never started


async def test_stopping_early_cancels_what_runs_ahead() -> None:
    finished = []

    async def job(n: int) -> int:
        await asyncio.sleep(0 if n == 0 else 0.01)
        finished.append(n)
        return n

    async with contextlib.aclosing(in_order((job(n) for n in range(5)), 3)) as results:
        async for n in results:
            assert n == 0
            break
    await asyncio.sleep(0.05)  # long enough for any job left running to finish
    assert finished == [0]
