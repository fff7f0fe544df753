"""Identical reads side by side inside one read phase share one request (http.shared);
outside a phase, or for different keys, each read is made."""

from __future__ import annotations

import asyncio

import pytest

from sync_core.http.shared import read_once, shared_reads


class Remote:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()

    async def get(self, key: str) -> dict[str, str]:
        self.calls.append(key)
        await self.release.wait()
        if key == "bad":
            raise LookupError(key)
        return {"id": key}


async def _both(remote: Remote, first: str, second: str) -> list[object]:
    tasks = [asyncio.ensure_future(read_once(k, lambda k=k: remote.get(k)))
             for k in (first, second)]
    await asyncio.sleep(0)
    remote.release.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_inside_a_phase_the_same_read_is_made_once() -> None:
    remote = Remote()
    with shared_reads():
        answers = await _both(remote, "u1", "u1")
        assert remote.calls == ["u1"] and answers == [{"id": "u1"}, {"id": "u1"}]
        # Done already: a later identical read in the same phase takes its answer.
        assert await read_once("u1", lambda: remote.get("u1")) == {"id": "u1"}
        assert remote.calls == ["u1"]


async def test_different_reads_and_reads_outside_a_phase_are_each_made() -> None:
    remote = Remote()
    with shared_reads():
        await _both(remote, "u1", "u2")
    assert remote.calls == ["u1", "u2"]
    remote = Remote()
    await _both(remote, "u1", "u1")
    assert remote.calls == ["u1", "u1"]
    remote = Remote()
    with shared_reads():
        await _both(remote, "u1", "u1")
    with shared_reads():  # a new phase reads again
        await _both(remote, "u1", "u1")
    assert remote.calls == ["u1", "u1"]


async def test_the_error_goes_to_every_reader() -> None:
    remote = Remote()
    with shared_reads():
        answers = await _both(remote, "bad", "bad")
    assert remote.calls == ["bad"]
    assert all(isinstance(a, LookupError) for a in answers)


async def test_a_reader_cancelled_while_waiting_leaves_the_read_to_the_other() -> None:
    remote = Remote()
    with shared_reads():
        first = asyncio.ensure_future(read_once("u1", lambda: remote.get("u1")))
        second = asyncio.ensure_future(read_once("u1", lambda: remote.get("u1")))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        remote.release.set()
        assert await second == {"id": "u1"}
    with pytest.raises(asyncio.CancelledError):
        await first
    assert remote.calls == ["u1"]
