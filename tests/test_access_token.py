"""TokenCache: early refresh, single flight, shared failures, targeted invalidation."""

from __future__ import annotations

import asyncio

import pytest

from sync_core.errors import AuthError, TransientError
from sync_core.http.token import TokenCache, secret_digest
from tests.remote_fakes import FakeTime


class Fetcher:
    def __init__(self, expires_in: float = 7200, error: Exception | None = None) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.error = error

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return f"t{self.calls}", self.expires_in


async def test_refreshes_five_minutes_early() -> None:
    time = FakeTime()
    cache, fetch = TokenCache(clock=time.clock), Fetcher()
    assert await cache.get("k", fetch) == "t1"
    time.now += 6899
    assert await cache.get("k", fetch) == "t1"
    time.now += 2
    assert await cache.get("k", fetch) == "t2"


async def test_short_lived_tokens_are_used_for_half_their_life() -> None:
    time = FakeTime()
    cache, fetch = TokenCache(clock=time.clock), Fetcher(expires_in=60)
    await cache.get("k", fetch)
    time.now += 29
    assert await cache.get("k", fetch) == "t1"
    time.now += 2
    assert await cache.get("k", fetch) == "t2"


async def test_concurrent_callers_share_one_fetch_and_its_failure() -> None:
    cache = TokenCache(clock=FakeTime().clock)
    fetch = Fetcher(error=TransientError("busy"))
    results = await asyncio.gather(*(cache.get("k", fetch) for _ in range(10)),
                                   return_exceptions=True)
    assert fetch.calls == 1
    assert all(isinstance(r, TransientError) for r in results)
    fetch.error = None
    assert await cache.get("k", fetch) == "t2"  # transient failures are not remembered


async def test_stop_failures_are_remembered_for_a_while() -> None:
    time = FakeTime()
    cache = TokenCache(clock=time.clock, failure_ttl=60)
    fetch = Fetcher(error=AuthError("invalid secret"))
    for _ in range(3):
        with pytest.raises(AuthError):
            await cache.get("k", fetch)
    assert fetch.calls == 1
    time.now += 61
    fetch.error = None
    assert await cache.get("k", fetch) == "t2"


async def test_invalidate_drops_only_the_rejected_token() -> None:
    cache, fetch = TokenCache(clock=FakeTime().clock), Fetcher()
    await cache.get("k", fetch)
    cache.invalidate("k", "t1")
    assert await cache.get("k", fetch) == "t2"
    cache.invalidate("k", "t1")  # a late rejection of the old token changes nothing
    assert await cache.get("k", fetch) == "t2"
    assert fetch.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    cache, gate = TokenCache(clock=FakeTime().clock), asyncio.Event()

    async def fetch() -> tuple[str, float]:
        await gate.wait()
        return "t", 7200.0

    first = asyncio.create_task(cache.get("k", fetch))
    second = asyncio.create_task(cache.get("k", fetch))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "t"


def test_secret_digest_hides_the_secret() -> None:
    digest = secret_digest("s3cr3t")
    assert "s3cr3t" not in digest and digest == secret_digest("s3cr3t")
    assert repr(TokenCache()) == "TokenCache(entries=0)"
