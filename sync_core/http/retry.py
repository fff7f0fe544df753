"""How both API clients talk to a remote: timeouts, a concurrency cap, a client-side
rate limit, bounded retries of transient errors, and one metrics hook.

``Remote.send`` is the only place an httpx exception can enter; it becomes a
``TransientError`` there. ``Remote.call`` retries an attempt on ``TransientError``
only, with exponential backoff and jitter, never waiting less than the remote's
``retry_after`` hint, and gives up after ``attempts`` tries or before a wait would push
it past ``total_seconds``. Tests pass a ``sleep`` that does not sleep.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from sync_core.errors import (
    AuthError,
    PermanentError,
    SyncError,
    TransientError,
    install_log_redaction,
)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

logger = logging.getLogger(__name__)

# Failures that happen before a request leaves: safe to resend even a create.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class CallObserver(Protocol):
    """Told about every attempt: ``outcome`` is ``"ok"`` or the error's ``kind``
    (``transient``, ``not_found``, ``conflict``, ``bad_request``, ``auth``, ...)."""

    def __call__(self, remote: str, endpoint: str, outcome: str, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for retrying one call. ``attempts`` counts the first try."""

    attempts: int = 4
    total_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be >= 1, got {self.attempts}")
        if self.total_seconds <= 0:
            raise ValueError(f"retry total_seconds must be > 0, got {self.total_seconds}")


class RateLimiter:
    """Async rate limit: ``rate_per_minute`` sustained, up to ``burst`` at once.

    Each caller reserves the next free send slot (a generic cell rate algorithm, so no
    lock and no float drift from topping a bucket up in tiny steps) and sleeps until it.
    ``pause`` holds every caller back until a time, after the remote said it is
    throttling us (WeCom 45009 blocks the whole corp for 60 s; HTTP 429 Retry-After).
    """

    def __init__(self, rate_per_minute: float, *, burst: int = 10,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be > 0, got {rate_per_minute}")
        self._interval = 60.0 / rate_per_minute
        self._credit = (max(1, burst) - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._paused_until = float("-inf")

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait until one request may be sent; callers are served in arrival order."""
        now = self._clock()
        earliest = max(now, self._paused_until)
        slot = max(self._next_slot, earliest - self._credit)
        self._next_slot = slot + self._interval
        send_at = max(slot, earliest)
        if send_at > now:
            await self._sleep(send_at - now)
        # A pause that began while we slept applies to us too.
        while (now := self._clock()) < self._paused_until:
            await self._sleep(self._paused_until - now)


def backoff(attempts: int, cap: float, at_least: float | None = None) -> float:
    """Seconds to wait before try ``attempts + 1``: exponential (2, 4, 8 … s) up to ``cap``,
    with full jitter on the upper half, never below ``at_least`` (the upstream's
    Retry-After hint)."""
    base = min(cap, 2.0 ** min(max(attempts, 1), 62))
    delay = base / 2 + random.uniform(0, base / 2)
    return max(delay, at_least or 0.0)


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Batches no larger than a remote's limit: ``chunked([1, 2, 3], 2)`` → ``[[1, 2], [3]]``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


async def gather_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the others are cancelled and that
    failure (a plain SyncError, not an ExceptionGroup) propagates."""
    tasks = [asyncio.ensure_future(aw) for aw in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def in_order(jobs: Iterable[Awaitable[T]], window: int) -> AsyncGenerator[T, None]:
    """Each job's result, in order, with up to ``window`` jobs running ahead of the one
    being consumed, so the consumer's work overlaps the next calls (a lock-step batch
    would leave the remote idle while we parse, and us idle while it answers). ``jobs``
    is drawn lazily. On a failure, or when the consumer stops early, the jobs still
    running are cancelled."""
    source = iter(jobs)
    ahead: deque[asyncio.Future[T]] = deque(
        asyncio.ensure_future(job) for job in itertools.islice(source, max(1, window)))
    try:
        while ahead:
            result = await ahead.popleft()
            ahead.extend(asyncio.ensure_future(job) for job in itertools.islice(source, 1))
            yield result
    finally:
        for task in ahead:
            task.cancel()
        if ahead:
            await asyncio.gather(*ahead, return_exceptions=True)


async def gather_pair(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Two awaitables of different types side by side, as ``gather_or_cancel``."""
    a, b = await gather_or_cancel([first, second])
    return cast(A, a), cast(B, b)


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def decode_json(response: httpx.Response) -> Any:
    """The body as JSON; raises ValueError when it is not. orjson first (a 10^5-user read
    decodes some 100 MB of pages: a tenth of its CPU with the standard module), the
    standard module for what orjson refuses but JSON allows (integers beyond 64 bits)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def json_object(response: httpx.Response, *, remote: str, endpoint: str) -> dict[str, Any]:
    """The response body as a JSON object, or the error an unreadable body stands for:
    HTTP 429/5xx (a proxy or an overloaded server) is transient, anything else permanent,
    so that a wrong base URL answering 404 pages is never mistaken for "entity absent"."""
    try:
        body = decode_json(response)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    status = response.status_code
    message = (f"unexpected response: HTTP {status} "
               f"{response.headers.get('content-type', 'without content type')}")
    if status == 429 or status >= 500:
        raise TransientError(message, retry_after=parse_retry_after(response),
                             maybe_applied=status != 429, status=status, remote=remote,
                             endpoint=endpoint)
    if status in (401, 403):
        raise AuthError(message, status=status, remote=remote, endpoint=endpoint)
    raise PermanentError(message, status=status, remote=remote, endpoint=endpoint)


_URLS_KEPT = 256  # parsed endpoint URLs a Remote keeps (bounded, should paths vary)


class Remote:
    """One remote API (``wecom`` or ``authing``) behind one injected ``httpx.AsyncClient``."""

    def __init__(self, name: str, http: httpx.AsyncClient, *,
                 timeout: float | httpx.Timeout, max_concurrency: int,
                 rate_per_minute: float | None, retry: RetryPolicy,
                 observer: CallObserver | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.name = name
        self.max_concurrency = max_concurrency
        self._http = http
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._gate = asyncio.Semaphore(max_concurrency)
        self._limiter = (RateLimiter(rate_per_minute, burst=max_concurrency, clock=clock,
                                     sleep=sleep) if rate_per_minute else None)
        self._retry = retry
        self._observer = observer
        self._clock = clock
        self._sleep = sleep
        self._urls: dict[str, httpx.URL] = {}
        install_log_redaction()

    async def send(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                   json: Any = None, headers: Mapping[str, str] | None = None,
                   endpoint: str) -> httpx.Response:
        """One HTTP exchange under the concurrency cap and rate limit, with the timeout."""
        parsed = self._urls.get(url)
        if parsed is None:  # a handful of endpoints: parsing each once saves CPU per call
            parsed = httpx.URL(url)
            if len(self._urls) < _URLS_KEPT:
                self._urls[url] = parsed
        request = self._http.build_request(method, parsed, params=params, json=json,
                                           headers=headers, timeout=self._timeout)
        async with self._gate:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                return await self._http.send(request)
            except httpx.TransportError as exc:
                what = "timed out" if isinstance(exc, httpx.TimeoutException) else "network error"
                raise TransientError(f"{what} ({type(exc).__name__})",
                                     maybe_applied=not isinstance(exc, _NEVER_SENT),
                                     remote=self.name, endpoint=endpoint) from exc

    async def observed(self, endpoint: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run one attempt, report its outcome, and pause the limiter on a throttle hint."""
        started = self._clock()
        try:
            result = await attempt()
        except SyncError as exc:
            self._observe(endpoint, exc.kind, started)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after and self._limiter is not None:
                self._limiter.pause(retry_after)
            raise
        self._observe(endpoint, "ok", started)
        return result

    async def call(self, endpoint: str, attempt: Callable[[], Awaitable[T]], *,
                   idempotent: bool = True) -> T:
        """``attempt`` repeated on TransientError within the retry policy's bounds; the last
        TransientError propagates when they are exhausted, any other error at once.

        A non-idempotent attempt (a create) is repeated only after errors that prove the
        remote did not act (``maybe_applied`` False); after a read timeout or a 5xx the
        error goes to the caller, which re-reads before deciding, instead of risking a
        duplicate."""
        policy = self._retry

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, TransientError) and (idempotent or not exc.maybe_applied)

        # The first attempt runs bare: nearly every call succeeds at once, and tenacity's
        # bookkeeping costs about as much CPU as the rest of our side of a call. A
        # retryable failure hands over to tenacity as its attempt 1 (replayed, not resent).
        started = self._clock()
        try:
            return await self.observed(endpoint, attempt)
        except TransientError as exc:
            if not retryable(exc):
                raise
            failed: TransientError | None = exc

        async def again() -> T:
            nonlocal failed
            if failed is not None:
                error, failed = failed, None
                raise error
            return await self.observed(endpoint, attempt)

        spent = max(0.0, self._clock() - started)
        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            stop=(stop_after_attempt(policy.attempts)
                  | stop_before_delay(max(0.0, policy.total_seconds - spent))),
            wait=_wait_with_hint(policy),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(endpoint, state),
            reraise=True,
        )
        result: T = await retrying(again)
        return result

    def _observe(self, endpoint: str, outcome: str, started: float) -> None:
        if self._observer is not None:
            self._observer(self.name, endpoint, outcome, self._clock() - started)

    def _log_retry(self, endpoint: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning("%s %s attempt %d failed (%s); retrying in %.1fs", self.name, endpoint,
                       state.attempt_number, exc, wait)


def _wait_with_hint(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait,
                                      jitter=policy.jitter)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None) or 0.0
        return max(backoff(state), float(hint))

    return wait
