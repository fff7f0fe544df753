"""Authing webhook deliveries → inbox entries (pure).

Shapes: reference/authing-api.md §4.3. Payloads use Authing's internal names (``id``,
``orgId``) and are treated as hints: the downstream worker re-reads the entity through
the API before writing anything to WeCom.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sync_core.directory.vocabulary import Kind
from sync_core.http.documents import MalformedDocument, json_object, storable

# Never persisted: the user:created sample carries password hashes and salts.
_SENSITIVE_KEYS = frozenset({"password", "salt", "token", "tokenExpiredAt", "secret",
                             "accessToken", "refreshToken", "otp", "recoveryCode"})


# The events the downstream direction applies (reference/authing-api.md §4.1, §4.3): a
# member event is about its user. The two tree-wide events start a downstream reconcile.
USER_EVENTS = frozenset({"user:created", "user:updated", "user:deleted", "user:udv-changed",
                         "organization:member-added", "organization:member-removed"})
DEPARTMENT_EVENTS = frozenset({"organization:node-added", "organization:node-updated",
                               "organization:node-moved", "organization:node-deleted"})
RECONCILE_EVENTS = frozenset({"organization:imported", "organization:tree-updated"})
HANDLED_EVENTS = USER_EVENTS | DEPARTMENT_EVENTS | RECONCILE_EVENTS


def handled(event_name: str) -> bool:
    return event_name in HANDLED_EVENTS


class MalformedWebhook(ValueError):
    """The delivery is not ``{eventName, data}`` with the fields its event needs."""


@dataclass(frozen=True, slots=True)
class WebhookEntry:
    entity_kind: Kind
    entity_key: str
    event_type: str
    payload: dict[str, Any]
    dedupe_key: str


def parse_delivery(body: dict[str, Any]) -> list[WebhookEntry]:
    """One entry per entity the delivery names (``user:deleted`` may name several)."""
    event_name = body.get("eventName")
    if not isinstance(event_name, str) or not event_name.strip():
        raise MalformedWebhook("missing eventName")
    data = body.get("data")
    if not storable(event_name):
        raise MalformedWebhook("eventName holds NUL or unpaired surrogate characters")
    if isinstance(data, str):  # form-encoded deliveries carry data as a JSON string
        try:
            data = json_object(data) if data.lstrip().startswith("{") else json.loads(data)
        except (MalformedDocument, ValueError, RecursionError) as exc:
            raise MalformedWebhook("data is not a storable JSON object") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedWebhook("data must be an object")
    clean = scrub(data)
    digest = hashlib.sha256(
        json.dumps({"eventName": event_name, "data": clean}, sort_keys=True,
                   ensure_ascii=False, default=str).encode("utf-8")).hexdigest()
    kind, keys = _entities(event_name, clean)
    payload = {"eventName": event_name, "data": clean}
    return [WebhookEntry(kind, key, event_name, payload,
                         digest if len(keys) == 1 else f"{digest}:{i}")
            for i, key in enumerate(keys)]


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in _SENSITIVE_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _entities(event_name: str, data: dict[str, Any]) -> tuple[Kind, list[str]]:
    family = event_name.split(":", 1)[0]
    if event_name in RECONCILE_EVENTS:  # the whole tree: a downstream reconcile
        return Kind.JOB, [event_name]
    if event_name in ("organization:member-added", "organization:member-removed"):
        return Kind.USER, [_id(data.get("user")) or "unknown"]
    if family == "user" or event_name in ("register", "login"):
        if isinstance(data.get("users"), list):
            keys = [_id(u) for u in data["users"]]
            return Kind.USER, [k for k in keys if k] or ["unknown"]
        user = data.get("user") if isinstance(data.get("user"), dict) else data
        return Kind.USER, [_id(user) or "unknown"]
    if family == "organization":
        if isinstance(data.get("nodes"), list):
            keys = [_id(n) for n in data["nodes"]]
            return Kind.DEPARTMENT, [k for k in keys if k] or ["unknown"]
        node = data.get("node") if isinstance(data.get("node"), dict) else None
        if node is not None:
            return Kind.DEPARTMENT, [_id(node) or "unknown"]
        org = data.get("organization") if isinstance(data.get("organization"), dict) else {}
        return Kind.DEPARTMENT, [_id(org) or "unknown"]
    return Kind.OTHER, [event_name]


def _id(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return None
    for key in ("id", "userId", "departmentId", "nodeId"):
        value = obj.get(key)
        if value not in (None, ""):
            return str(value)
    return None
