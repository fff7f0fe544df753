"""Webhook registrations and the pusher that delivers pool events to them.

Every change (API or admin) becomes ``{"eventName", "data"}`` POSTed to each enabled webhook
subscribed to that event, with the headers of reference §4.2. Each webhook has its own
worker thread, so deliveries to one URL keep their order and a slow or failing receiver
does not hold up the others. ``drain()`` / ``await adrain()`` wait until all is delivered.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from .errors import bad_param, not_found
from .params import Params
from .records import MonotonicClock, iso, new_id

EVENTS = (
    "test", "register", "login", "mfa:verified", "kick", "user:created",
    "user:password-changed", "user:updated", "user:email-verified", "user:archived",
    "user:unarchived", "user:blocked", "user:unblocked", "user:deleted",
    "user:register-whitelist-added", "user:register-whitelist-deleted", "user:udv-changed",
    "user:link-account", "user:password-update-remind", "user:organization-node-update",
    "organization:created", "organization:imported", "organization:deleted",
    "organization:node-added", "organization:node-updated", "organization:tree-updated",
    "organization:node-deleted", "organization:node-moved", "organization:member-added",
    "organization:member-removed", "organization:udv-changed",
)
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")
DELAY_UNITS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400}
WEBHOOK_PROPS = {"name", "url", "events", "contentType", "enabled", "secret", "retryConfig"}
USER_AGENT = "authing-webhook@2.0"


@dataclass
class Webhook:
    webhook_id: str
    name: str
    url: str
    events: list[str]
    content_type: str
    enabled: bool
    secret: str | None
    retry: dict[str, Any] | None
    created_at: int
    updated_at: int


@dataclass
class Delivery:
    """One attempt, as the delivery log (and get-webhook-logs) shows it."""

    webhook_id: str
    event_name: str
    url: str
    attempt: int
    request_headers: dict[str, str]
    request_body: str
    data: dict[str, Any]
    response_status: int | None
    response_body: str | None
    success: bool
    error_message: str | None
    at: int = field(default_factory=lambda: int(time.time() * 1000))


class WebhookPusher:
    def __init__(self, userpool_id: str, *, clock: MonotonicClock | None = None,
                 timeout: float = 5.0, retry_delay_scale: float = 1.0,
                 form_style: str = "json", lanes: int = 1) -> None:
        """``lanes``: deliveries per webhook at a time. One lane (the default) keeps every
        delivery in order; more keep the order of those about one user or node (by its id)
        and send the others side by side, as a load test needs."""
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        self.lanes = lanes
        self.userpool_id = userpool_id
        self.clock = clock or MonotonicClock()
        self.timeout = timeout
        self.retry_delay_scale = retry_delay_scale  # 0.0 in tests: retry at once
        self.form_style = form_style  # "json": data=<JSON text>; "qs": data[user][id]=...
        self.hooks: dict[str, Webhook] = {}
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._queues: dict[tuple[str, int],
                           queue.Queue[tuple[str, dict[str, Any]] | None]] = {}
        self._threads: list[threading.Thread] = []

    # registrations ------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> Webhook:
        p = Params(body)
        p.only(WEBHOOK_PROPS)
        now = self.clock.now_ms()
        hook = Webhook(webhook_id=new_id(), name=p.req("name"), url=_url(p.req("url")),
                       events=_events(p.texts("events", required=True, max_len=None) or []),
                       content_type=p.req("contentType", choices=CONTENT_TYPES),
                       enabled=p.flag("enabled", True), secret=p.text("secret"),
                       retry=_retry(p.obj("retryConfig")), created_at=now, updated_at=now)
        with self._lock:
            self.hooks[hook.webhook_id] = hook
        return hook

    def update(self, body: dict[str, Any]) -> Webhook:
        p = Params(body)
        p.only(WEBHOOK_PROPS | {"webhookId"})
        hook = self.get(p.req("webhookId"))
        changes: dict[str, Any] = {}
        if p.get("name") is not None:
            changes["name"] = p.req("name")
        if p.get("url") is not None:
            changes["url"] = _url(p.req("url"))
        if p.get("events") is not None:
            changes["events"] = _events(p.texts("events", required=True, max_len=None) or [])
        if p.get("contentType") is not None:
            changes["content_type"] = p.req("contentType", choices=CONTENT_TYPES)
        if p.get("enabled") is not None:
            changes["enabled"] = p.flag("enabled")
        if p.has("secret"):
            changes["secret"] = p.text("secret")
        if p.has("retryConfig"):
            changes["retry"] = _retry(p.obj("retryConfig"))
        with self._lock:
            for attr, value in changes.items():
                setattr(hook, attr, value)
            hook.updated_at = self.clock.now_ms()
        return hook

    def delete(self, webhook_ids: list[str]) -> None:
        for webhook_id in webhook_ids:
            self.get(webhook_id)
        with self._lock:
            for webhook_id in webhook_ids:
                self.hooks.pop(webhook_id, None)
            self._retire(webhook_ids)

    def get(self, webhook_id: str) -> Webhook:
        hook = self.hooks.get(webhook_id)
        if hook is None:
            raise not_found(f"webhook not found: {webhook_id}")
        return hook

    def dto(self, hook: Webhook) -> dict[str, Any]:
        return {"webhookId": hook.webhook_id, "userPoolId": self.userpool_id,
                "name": hook.name, "url": hook.url, "events": list(hook.events),
                "contentType": hook.content_type, "enabled": hook.enabled,
                "secret": hook.secret, "retryConfig": hook.retry,
                "createdAt": iso(hook.created_at), "updatedAt": iso(hook.updated_at)}

    # delivery -----------------------------------------------------------------------------
    def publish(self, event: str, data: dict[str, Any]) -> None:
        """The state's event sink: queue for every enabled webhook that subscribed."""
        payload = json.loads(json.dumps(data))  # a snapshot, detached from live records
        with self._lock:
            targets = [h.webhook_id for h in self.hooks.values()
                       if h.enabled and event in h.events]
            lane = zlib.crc32(_subject(payload).encode()) % self.lanes
            for webhook_id in targets:
                self._pending += 1
                self._queue(webhook_id, lane).put((event, payload))

    def _queue(self, webhook_id: str, lane: int
               ) -> queue.Queue[tuple[str, dict[str, Any]] | None]:
        q = self._queues.get((webhook_id, lane))
        if q is None:
            q = self._queues[(webhook_id, lane)] = queue.Queue()
            thread = threading.Thread(target=self._work, args=(webhook_id, q), daemon=True,
                                      name=f"authing-webhook-{webhook_id[:8]}-{lane}")
            self._threads.append(thread)
            thread.start()
        return q

    def _work(self, webhook_id: str,
              q: queue.Queue[tuple[str, dict[str, Any]] | None]) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while (item := q.get()) is not None:
                try:
                    hook = self.hooks.get(webhook_id)
                    if hook is not None:
                        self._deliver(client, hook, *item)
                finally:
                    with self._lock:
                        self._pending -= 1
                        self._idle.notify_all()

    def _deliver(self, client: httpx.Client, hook: Webhook, event: str,
                 data: dict[str, Any]) -> None:
        retry = hook.retry or {}
        attempts = 1 + (int(retry.get("count", 3)) if retry.get("enabled") else 0)
        delay = (retry.get("delay", 1) * DELAY_UNITS[retry.get("delayUnit", "Second")]
                 * self.retry_delay_scale)
        headers = {"content-type": hook.content_type, "user-agent": USER_AGENT,
                   "x-authing-webhook-secret": hook.secret or "",
                   "x-authing-token": hook.secret or "",
                   "x-authing-userpool-id": self.userpool_id}
        body = self._encode(hook.content_type, event, data)
        for attempt in range(1, attempts + 1):
            record = Delivery(hook.webhook_id, event, hook.url, attempt, headers, body, data,
                              None, None, False, None)
            try:
                response = client.post(hook.url, content=body.encode(), headers=headers)
                record.response_status, record.response_body = (response.status_code,
                                                                 response.text[:2000])
                record.success = 200 <= response.status_code < 300
            except httpx.TimeoutException:
                record.error_message = "ERRTIMEOUT"
            except httpx.HTTPError as exc:
                record.error_message = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.deliveries.append(record)
            if record.success:
                return
            if attempt < attempts and delay > 0:
                time.sleep(delay)

    def _encode(self, content_type: str, event: str, data: dict[str, Any]) -> str:
        if content_type == "application/json":
            return json.dumps({"eventName": event, "data": data}, ensure_ascii=False)
        if self.form_style == "qs":
            return urlencode(list(_flatten("data", data)) + [("eventName", event)])
        return urlencode({"eventName": event, "data": json.dumps(data, ensure_ascii=False)})

    def _retire(self, webhook_ids: list[str]) -> None:
        """Let the workers of removed webhooks finish their queue and exit (lock held)."""
        for key in [k for k in self._queues if k[0] in webhook_ids]:
            self._queues.pop(key).put(None)
        self._threads = [t for t in self._threads if t.is_alive()]

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def drain(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery (retries included) is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    async def adrain(self, timeout: float = 10.0) -> bool:
        """``drain`` without blocking the event loop: the simulator's API, and a receiver on
        the same loop, go on being served while it waits."""
        return await asyncio.to_thread(self.drain, timeout)

    def received(self, event: str | None = None, *, success: bool = True) -> list[Delivery]:
        """Delivery log entries (by default the successful ones), optionally for one event."""
        with self._lock:
            return [d for d in self.deliveries if (event is None or d.event_name == event)
                    and (d.success or not success)]

    def reset(self) -> None:
        """Forget registrations and the delivery log (after letting queued work finish)."""
        self.drain()
        with self._lock:
            self._retire(list(self.hooks))
            self.hooks.clear()
            self.deliveries.clear()

    def close(self) -> None:
        with self._lock:
            queues = list(self._queues.values())
            self._queues.clear()
        for q in queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._threads.clear()


def _subject(data: dict[str, Any]) -> str:
    """The id of the user or node a delivery is about ("" when it names none)."""
    for holder in (data.get("user"), data.get("node"), data):
        if isinstance(holder, dict) and isinstance(holder.get("id"), str):
            return str(holder["id"])
    return ""


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    """qs-style bracket keys: ``data[user][id]=...``."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flatten(f"{prefix}[{k}]", v)]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _flatten(f"{prefix}[{i}]", v)]
    if value is None:
        return [(prefix, "")]
    return [(prefix, json.dumps(value) if isinstance(value, bool) else str(value))]


def _url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise bad_param("url")
    return url


def _events(events: list[str]) -> list[str]:
    for event in events:
        if event not in EVENTS:
            raise bad_param("events")
    return list(dict.fromkeys(events))


def _retry(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    p = Params(config)
    p.only({"enabled", "count", "delay", "delayUnit"})
    count, delay = p.integer("count", 3), p.integer("delay", 1)
    if count is None or not 0 <= count <= 10 or delay is None or delay < 0:
        raise bad_param("retryConfig")
    return {"enabled": p.flag("enabled"), "count": count, "delay": delay,
            "delayUnit": p.text("delayUnit", choices=tuple(DELAY_UNITS)) or "Second"}
