"""Cached access tokens of the remotes: refreshed early, fetched once however many callers wait.

WeCom bans an IP for an hour after repeated wrong-secret ``gettoken`` calls and throttles
frequent ones (reference/wecom-platform.md §3.1), so concurrent callers must share one
fetch, and share its failure too. Both API clients use this cache; one instance may serve
several clients, since entries are keyed by whatever the client passes (e.g. the corp ID
and a digest of the secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from sync_core.errors import StopSync

Clock = Callable[[], float]
TokenFetch = Callable[[], Awaitable[tuple[str, float]]]
"""Fetches a fresh token; returns ``(token, expires_in_seconds)``."""


def secret_digest(secret: str) -> str:
    """A cache-key stand-in for a secret, so the secret itself is never kept as a key."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Entry:
    value: str = field(repr=False)
    refresh_at: float


class TokenCache:
    """Single-flight token cache.

    A token is used until ``refresh_margin`` seconds before it expires (at most half its
    lifetime early, so short-lived tokens still get used). A fetch that fails with
    ``StopSync`` (wrong secret, banned IP) is remembered for ``failure_ttl`` seconds and
    re-raised without calling the remote again.
    """

    def __init__(self, *, clock: Clock = time.monotonic, refresh_margin: float = 300.0,
                 failure_ttl: float = 60.0) -> None:
        self._clock = clock
        self._margin = refresh_margin
        self._failure_ttl = failure_ttl
        self._entries: dict[Hashable, _Entry] = {}
        self._failures: dict[Hashable, tuple[StopSync, float]] = {}
        self._inflight: dict[Hashable, asyncio.Task[str]] = {}

    def __repr__(self) -> str:
        return f"TokenCache(entries={len(self._entries)})"

    async def get(self, key: Hashable, fetch: TokenFetch) -> str:
        """The cached token for ``key``, fetching it (once, for all waiters) when stale."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now < entry.refresh_at:
            return entry.value
        failure = self._failures.get(key)
        if failure is not None:
            if now < failure[1]:
                raise failure[0]
            del self._failures[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._refresh(key, fetch))
            task.add_done_callback(_consume_outcome)
            self._inflight[key] = task
        # A cancelled waiter must not cancel the fetch the others are waiting on.
        return await asyncio.shield(task)

    def invalidate(self, key: Hashable, stale: str) -> None:
        """Drop ``stale`` after the remote rejected it; a newer token is kept, so callers
        that were all rejected with the same token trigger one refresh, not one each."""
        entry = self._entries.get(key)
        if entry is not None and entry.value == stale:
            del self._entries[key]

    async def _refresh(self, key: Hashable, fetch: TokenFetch) -> str:
        try:
            value, expires_in = await fetch()
        except StopSync as exc:
            self._failures[key] = (exc, self._clock() + self._failure_ttl)
            raise
        finally:
            self._inflight.pop(key, None)
        early = min(self._margin, expires_in / 2)
        self._entries[key] = _Entry(value=value, refresh_at=self._clock() + expires_in - early)
        return value


def _consume_outcome(task: asyncio.Task[str]) -> None:
    """Mark a failed fetch's exception as seen even if every waiter was cancelled."""
    if not task.cancelled():
        task.exception()
