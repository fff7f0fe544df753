"""The worker's per-identity locks: the two userids of a rename never run side by side."""

from __future__ import annotations

import asyncio

from sync_core.engine.worker import KeyLocks


async def test_overlapping_key_sets_run_one_after_the_other() -> None:
    locks = KeyLocks()
    running: set[str] = set()
    overlaps: list[tuple[str, str]] = []
    order: list[str] = []

    async def job(name: str, keys: set[str]) -> None:
        async with locks.hold(keys):
            overlaps.extend((name, other) for other in running)
            running.add(name)
            order.append(name)
            await asyncio.sleep(0.01)
            running.discard(name)

    # dave→dave2 and dave2→dave3 share dave2; "erin" shares nothing; case is ignored.
    await asyncio.gather(job("first", {"dave", "dave2"}), job("second", {"DAVE2", "dave3"}),
                         job("other", {"erin"}), job("third", {"dave3", "dave"}))
    assert [pair for pair in overlaps if "other" not in pair] == []
    assert {"first", "second", "third"} <= set(order)
    assert locks._locks == {} and not locks._holders  # nothing kept once released
