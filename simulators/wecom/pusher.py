"""Delivers ``change_contact`` callbacks the way WeCom does (reference §1.7-1.8, §2).

Each change is rendered (full or trimmed), encrypted with the callback Token and
EncodingAESKey (receive id = corpid) and POSTed as the XML envelope with ``msg_signature``,
``timestamp`` and ``nonce`` in the query. Success is HTTP 200, whatever the body; anything
else, or no answer within the timeout (5 s), is retried: 3 attempts in all, with the same
bytes each time, then WeCom gives up.

WeCom retries a callback whose first delivery failed *later*, while the callbacks behind it
go on: they overtake it. ``hold_next``/``release`` reproduce that order (and any other),
``drop_next`` a callback WeCom gave up on.

Delivery runs on background threads, so an admin call never waits on the receiver. With
``lanes=1`` (the default) one thread delivers everything, so callbacks arrive in the order
the changes happened; with more lanes, callbacks about different entities go out side by
side (a load test's arrival rate is then not one round trip at a time) while those about one
entity (by its key) keep their order. Every attempt is logged in
``deliveries`` for tests to inspect; ``flush()``/``await drain()`` wait for the queue.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from sync_core.wecom.crypto import WeComCrypto, WeComCryptoError

from .changes import Change, render, trim

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED, DROPPED, SKIPPED, HELD = (
    "pending", "delivered", "failed", "dropped", "skipped", "held")


@dataclass(slots=True)
class Attempt:
    number: int
    status: int | None  # HTTP status; None when no response came back
    error: str | None
    elapsed: float


@dataclass(slots=True)
class Delivery:
    """One callback: ``outcome`` is pending, delivered, failed (gave up), dropped (lost on
    purpose by ``drop_next``), held (by ``hold_next``, until ``release``) or skipped (no
    callback URL configured)."""

    seq: int
    change_type: str
    key: str
    plaintext: bytes
    url: str | None
    outcome: str = PENDING
    attempts: list[Attempt] = field(default_factory=list)
    envelope: bytes = b""
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    url: str | None = None
    token: str | None = None
    encoding_aes_key: str | None = None
    trimmed: bool = False  # post-2022-08-15 payloads (IDs only)

    def __repr__(self) -> str:  # the token and key are secrets
        return f"CallbackConfig(url={self.url!r}, trimmed={self.trimmed})"


class CallbackPusher:
    def __init__(self, corp_id: str, config: CallbackConfig | None = None, *,
                 timeout: float = 5.0, attempts: int = 3, retry_delay: float = 0.0,
                 clock: Callable[[], float] = time.time, lanes: int = 1) -> None:
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        self.corp_id = corp_id
        self.config = CallbackConfig()
        if config is not None:
            self.configure(url=config.url, token=config.token,
                           encoding_aes_key=config.encoding_aes_key, trimmed=config.trimmed)
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.clock = clock  # CreateTime and timestamp: WeCom's have whole seconds
        self._queues: list[queue.Queue[Delivery | None]] = [queue.Queue()
                                                            for _ in range(lanes)]
        self._cond = threading.Condition()
        self._pending = 0
        self._drop = 0
        self._hold = 0
        self._held: list[Delivery] = []
        self._running = threading.Event()
        self._running.set()
        self._closing = threading.Event()
        self._threads: list[threading.Thread | None] = [None] * lanes
        self._log: list[Delivery] = []

    # -- configuration ------------------------------------------------------------------

    def configure(self, *, url: str | None = None, token: str | None = None,
                  encoding_aes_key: str | None = None, trimmed: bool | None = None) -> None:
        """Change any part of the callback settings; what is not given stays."""
        old = self.config
        config = CallbackConfig(
            url=url if url is not None else old.url,
            token=token if token is not None else old.token,
            encoding_aes_key=encoding_aes_key if encoding_aes_key is not None
            else old.encoding_aes_key,
            trimmed=trimmed if trimmed is not None else old.trimmed,
        )
        if config.encoding_aes_key is not None:
            try:  # fail loudly now, not on the first delivery
                WeComCrypto(config.token or "", config.encoding_aes_key, self.corp_id)
            except WeComCryptoError as exc:
                raise ValueError(f"invalid EncodingAESKey: {exc}") from exc
        self.config = config

    def drop_next(self, count: int = 1) -> None:
        """Lose the next ``count`` callbacks, as WeCom sometimes does: the reconciler's job."""
        with self._cond:
            self._drop += count

    def hold_next(self, count: int = 1) -> None:
        """Hold back the next ``count`` callbacks, as if their first delivery had failed:
        they are sent when ``release`` says, after whatever was published meanwhile."""
        with self._cond:
            self._hold += count

    @property
    def held(self) -> list[Delivery]:
        with self._cond:
            return list(self._held)

    def release(self, seqs: Iterable[int] | None = None) -> list[Delivery]:
        """Deliver held callbacks now: those with ``seqs``, in that order (default: all,
        in the order they were held). The same bytes as the first attempt, as WeCom's."""
        with self._cond:
            by_seq = {d.seq: d for d in self._held}
            chosen = [by_seq[s] for s in seqs] if seqs is not None else list(self._held)
            for entry in chosen:
                self._held.remove(entry)
                entry.outcome = PENDING
                self._pending += 1
        for entry in chosen:
            self._enqueue(entry)
        return chosen

    def pause(self) -> None:
        """Hold deliveries (they queue up) until ``resume()``."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    # -- publishing ---------------------------------------------------------------------

    def publish(self, changes: Iterable[Change]) -> list[Delivery]:
        """Queue the callbacks for ``changes``; returns their log entries at once."""
        config = self.config
        queued = []
        for change in changes:
            shaped = trim(change) if config.trimmed else change
            if shaped is None:
                continue  # WeCom sends nothing for this change in trimmed mode
            plaintext = render(shaped, corp_id=self.corp_id, create_time=int(self.clock()))
            with self._cond:
                entry = Delivery(len(self._log) + 1, shaped.change_type, shaped.key,
                                 plaintext, config.url)
                self._log.append(entry)
                if not config.url or not config.token or not config.encoding_aes_key:
                    entry.outcome = SKIPPED
                    continue
                if self._drop > 0:
                    self._drop -= 1
                    entry.outcome = DROPPED
                    continue
                self._seal(entry, config)
                if self._hold > 0:
                    self._hold -= 1
                    entry.outcome = HELD
                    self._held.append(entry)
                    continue
                self._pending += 1
            queued.append(entry)
            self._enqueue(entry)
        return queued

    @property
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._log)

    def clear_log(self) -> None:
        with self._cond:
            self._log = [d for d in self._log if d.outcome in (PENDING, HELD)]

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every queued callback is delivered or given up."""
        with self._cond:
            if self._pending and not self._running.is_set():
                raise RuntimeError("the pusher is paused: resume() before flushing")
            if not self._cond.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"{self._pending} callbacks still pending after {timeout}s")

    async def drain(self, timeout: float = 30.0) -> None:
        """``flush`` for async tests: waits without blocking the event loop."""
        await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers after the callbacks already queued (a later publish restarts
        them)."""
        alive = [(lane, t) for lane, t in enumerate(self._threads) if t and t.is_alive()]
        if not alive:
            return
        self._running.set()
        self._closing.set()
        for lane, _ in alive:
            self._queues[lane].put(None)
        for _, thread in alive:
            thread.join(timeout)
        self._closing.clear()

    # -- worker -------------------------------------------------------------------------

    def _seal(self, entry: Delivery, config: CallbackConfig) -> None:
        """Encrypt once: retries resend the same bytes, as WeCom's do."""
        assert config.token and config.encoding_aes_key
        crypto = WeComCrypto(config.token, config.encoding_aes_key, self.corp_id)
        timestamp, nonce = str(int(self.clock())), str(secrets.randbelow(9 * 10**9) + 10**9)
        encrypted, signature = crypto.encrypt_message(entry.plaintext, timestamp, nonce)
        entry.envelope = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            "<AgentID><![CDATA[]]></AgentID></xml>"
        ).encode()
        entry.params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}

    def _enqueue(self, entry: Delivery) -> None:
        """Onto the lane of the entry's entity, so one entity's callbacks keep their order."""
        lane = zlib.crc32(entry.key.encode("utf-8")) % len(self._queues)
        with self._cond:
            thread = self._threads[lane]
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._work, args=(lane,), daemon=True,
                                          name=f"wecom-pusher-{lane}")
                self._threads[lane] = thread
                thread.start()
        self._queues[lane].put(entry)

    def _work(self, lane: int) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                entry = self._queues[lane].get()
                if entry is None:
                    return
                self._running.wait()
                try:
                    self._deliver(client, entry)
                finally:
                    with self._cond:
                        self._pending -= 1
                        self._cond.notify_all()

    def _deliver(self, client: httpx.Client, entry: Delivery) -> None:
        assert entry.url is not None
        for number in range(1, self.attempts + 1):
            started = time.monotonic()
            status, error = None, None
            try:
                response = client.post(entry.url, params=entry.params, content=entry.envelope,
                                       headers={"Content-Type": "text/xml; charset=utf-8"})
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            entry.attempts.append(Attempt(number, status, error, time.monotonic() - started))
            if status == 200:
                entry.outcome = DELIVERED
                return
            log.info("callback %s %s attempt %d failed: %s", entry.change_type, entry.key,
                     number, error or f"HTTP {status}")
            if number < self.attempts and self.retry_delay > 0:
                self._closing.wait(self.retry_delay)
        entry.outcome = FAILED
        log.warning("callback %s %s given up after %d attempts", entry.change_type, entry.key,
                    self.attempts)
