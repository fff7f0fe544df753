"""The shared call machinery: retry bounds, rate limit, Retry-After, helpers."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import httpx
import pytest

from sync_core.errors import AuthError, BadRequestError, PermanentError, TransientError
from sync_core.http.retry import (
    RateLimiter,
    Remote,
    RetryPolicy,
    chunked,
    gather_or_cancel,
    json_object,
    parse_retry_after,
)
from tests.remote_fakes import FakeTime


def remote(time: FakeTime, **policy: Any) -> Remote:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    return Remote("test", http, timeout=1.0, max_concurrency=2, rate_per_minute=None,
                    retry=RetryPolicy(**policy), clock=time.clock, sleep=time.sleep)


class Flaky:
    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_call_retries_transient_errors_until_success() -> None:
    time = FakeTime()
    attempt = Flaky(TransientError("busy"), TransientError("busy"), "done")
    assert await remote(time, attempts=5).call("ep", attempt) == "done"
    assert attempt.calls == 3
    assert len(time.sleeps) == 2 and time.sleeps[1] >= time.sleeps[0] * 0.5


async def test_call_gives_up_after_the_attempt_bound() -> None:
    time = FakeTime()
    attempt = Flaky(TransientError("busy"))
    with pytest.raises(TransientError):
        await remote(time, attempts=3).call("ep", attempt)
    assert attempt.calls == 3 and len(time.sleeps) == 2


async def test_call_does_not_retry_permanent_errors() -> None:
    time = FakeTime()
    attempt = Flaky(BadRequestError("no"), "done")
    with pytest.raises(BadRequestError):
        await remote(time).call("ep", attempt)
    assert attempt.calls == 1 and time.sleeps == []


async def test_retry_after_hint_is_a_floor_for_the_wait() -> None:
    time = FakeTime()
    attempt = Flaky(TransientError("throttled", retry_after=42.0), "done")
    await remote(time, total_seconds=100).call("ep", attempt)
    assert time.sleeps == [pytest.approx(42.0, abs=2.0)] and time.sleeps[0] >= 42.0


async def test_a_wait_beyond_the_time_budget_is_not_taken() -> None:
    time = FakeTime()
    attempt = Flaky(TransientError("throttled", retry_after=500.0), "done")
    with pytest.raises(TransientError) as info:
        await remote(time, total_seconds=60).call("ep", attempt)
    assert info.value.retry_after == 500.0 and time.sleeps == [] and attempt.calls == 1



async def test_the_time_budget_counts_the_first_attempt() -> None:
    """The first attempt runs before tenacity starts its clock: its time still counts."""
    time = FakeTime()

    async def slow_then_throttled() -> str:
        time.now += 50.0
        raise TransientError("throttled", retry_after=20.0)

    with pytest.raises(TransientError):
        await remote(time, total_seconds=60).call("ep", slow_then_throttled)
    assert time.sleeps == []  # 50 s spent + a 20 s wait would pass the 60 s budget
    quick = Flaky(TransientError("throttled", retry_after=20.0), "done")
    assert await remote(time, total_seconds=60).call("ep", quick) == "done"
    assert quick.calls == 2 and time.sleeps[0] >= 20.0

async def test_backoff_is_bounded_by_max_wait() -> None:
    time = FakeTime()
    attempt = Flaky(TransientError("busy"))
    with pytest.raises(TransientError):
        await remote(time, attempts=12, total_seconds=10_000, max_wait=5.0).call("ep", attempt)
    assert len(time.sleeps) == 11 and max(time.sleeps) <= 5.0


def test_policy_rejects_unbounded_or_empty_settings() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="total_seconds"):
        RetryPolicy(total_seconds=0)


async def test_rate_limiter_allows_a_burst_then_paces() -> None:
    time = FakeTime()
    limiter = RateLimiter(120, burst=3, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await limiter.acquire()
    assert time.sleeps == []
    for _ in range(4):
        await limiter.acquire()
    assert time.sleeps == [pytest.approx(0.5)] * 4


async def test_rate_limiter_serves_concurrent_callers_at_the_rate() -> None:
    time = FakeTime()
    limiter = RateLimiter(60, burst=1, clock=time.clock, sleep=time.sleep)
    start = time.now
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    assert time.now - start == pytest.approx(4.0)


async def test_rate_limiter_pause_holds_everyone_back() -> None:
    time = FakeTime()
    limiter = RateLimiter(6000, burst=10, clock=time.clock, sleep=time.sleep)
    limiter.pause(60)
    await limiter.acquire()
    assert time.sleeps == [pytest.approx(60)]


async def test_observed_pauses_the_limiter_on_a_throttle_hint() -> None:
    time = FakeTime()
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    gate = Remote("t", http, timeout=1, max_concurrency=1, rate_per_minute=6000,
                    retry=RetryPolicy(attempts=1), clock=time.clock, sleep=time.sleep)
    with pytest.raises(TransientError):
        await gate.observed("ep", Flaky(TransientError("45009", retry_after=60.0)))
    await gate.send("GET", "https://x.test/", endpoint="ep")
    assert sum(time.sleeps) >= 60


def test_retry_after_header_forms() -> None:
    def with_header(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert parse_retry_after(with_header("12")) == 12.0
    assert 25 <= (parse_retry_after(with_header(later)) or 0) <= 31
    assert parse_retry_after(with_header("soon")) is None
    assert parse_retry_after(httpx.Response(429)) is None


@pytest.mark.parametrize(("status", "cls"), [(502, TransientError), (429, TransientError),
                                             (404, PermanentError), (200, PermanentError)])
def test_unreadable_bodies(status: int, cls: type[Exception]) -> None:
    with pytest.raises(cls):
        json_object(httpx.Response(status, text="<html>"), remote="u", endpoint="e")
    with pytest.raises(cls):
        json_object(httpx.Response(status, json=[1, 2]), remote="u", endpoint="e")


def test_chunked() -> None:
    assert chunked([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunked([], 50) == []
    with pytest.raises(ValueError):
        chunked([1], 0)


async def test_gather_or_cancel_cancels_the_rest_and_raises_the_error_itself() -> None:
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def failing() -> int:
        await asyncio.sleep(0)
        raise BadRequestError("no")

    with pytest.raises(BadRequestError):
        await gather_or_cancel([slow(), failing()])
    assert cancelled.is_set()
    assert await gather_or_cancel(asyncio.sleep(0, result=n) for n in range(3)) == [0, 1, 2]


async def test_non_idempotent_attempts_are_resent_only_when_surely_not_applied() -> None:
    time = FakeTime()
    ambiguous = Flaky(TransientError("read timed out", maybe_applied=True), "created")
    with pytest.raises(TransientError):
        await remote(time).call("create", ambiguous, idempotent=False)
    assert ambiguous.calls == 1
    refused = Flaky(TransientError("connection refused", maybe_applied=False), "created")
    assert await remote(time).call("create", refused, idempotent=False) == "created"
    assert refused.calls == 2


@pytest.mark.parametrize(("error", "maybe_applied"), [
    (httpx.ConnectError("refused"), False), (httpx.ConnectTimeout("slow"), False),
    (httpx.PoolTimeout("busy"), False), (httpx.ReadTimeout("slow"), True),
    (httpx.RemoteProtocolError("closed"), True)])
async def test_transport_errors_say_whether_the_request_may_have_applied(
        error: httpx.TransportError, maybe_applied: bool) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise error

    gate = Remote("t", httpx.AsyncClient(transport=httpx.MockTransport(broken)), timeout=1,
                    max_concurrency=1, rate_per_minute=None, retry=RetryPolicy())
    with pytest.raises(TransientError) as info:
        await gate.send("POST", "https://x.test/", endpoint="ep")
    assert info.value.maybe_applied is maybe_applied
    assert info.value.__cause__ is error


def test_unreadable_401_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        json_object(httpx.Response(401, text="Unauthorized"), remote="u", endpoint="e")
