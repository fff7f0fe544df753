"""Fault injection and call accounting shared by both simulators.

A test arms a fault ("the next 3 calls to user/get fail with 45009", "every call waits
20 ms", "the next call hangs past the client's timeout") and the simulator consults the
``FaultPlan`` at the top of each handler. Counting lives here too, so a test can assert
"this run made 0 writes".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Fault:
    """One armed failure. ``kind``: ``error`` (answer ``payload`` with ``http_status``),
    ``timeout`` (sleep ``delay`` seconds, then answer normally) or ``drop`` (close the
    connection without answering)."""

    kind: str
    remaining: int
    http_status: int = 200
    payload: dict[str, Any] | None = None
    delay: float = 0.0
    endpoint: str | None = None  # None: any endpoint
    # An outage: every matching call fails until this ``time.monotonic()`` instant, however
    # many there are (``remaining`` is then not counted down).
    until: float | None = None


@dataclass
class CallStats:
    reads: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    def reset(self) -> None:
        self.reads.clear()
        self.writes.clear()


class FaultPlan:
    """Thread-safe: tests arm faults from their own thread while the server serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self.latency: float = 0.0
        self.stats = CallStats()

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.latency = 0.0

    def outage(self, fault: Fault, seconds: float) -> None:
        """Arm ``fault`` for every matching call during the next ``seconds``."""
        fault.until = time.monotonic() + seconds
        self.arm(fault)

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the first fault that matches ``endpoint``; an outage matches
        every call until it ends."""
        with self._lock:
            now = time.monotonic()
            for ended in [f for f in self._faults if f.until is not None and f.until <= now]:
                self._faults.remove(ended)
            for fault in self._faults:
                if fault.endpoint is None or fault.endpoint == endpoint:
                    if fault.until is not None:
                        return fault
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def count(self, endpoint: str, *, write: bool) -> None:
        with self._lock:
            (self.stats.writes if write else self.stats.reads)[endpoint] += 1

    async def delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


class MinuteRateLimiter:
    """Fixed one-minute windows, as WeCom documents its per-minute limits."""

    def __init__(self, per_minute: int | None = None, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._count = 0

    def allow(self) -> bool:
        if not self.per_minute:
            return True
        with self._lock:
            now = self._clock()
            if now - self._window_start >= 60:
                self._window_start, self._count = now, 0
            self._count += 1
            return self._count <= self.per_minute


class ConcurrencyGauge:
    """Counts requests in flight; ``enter`` answers False past the cap."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def enter(self) -> bool:
        with self._lock:
            if self.cap is not None and self.in_flight >= self.cap:
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
