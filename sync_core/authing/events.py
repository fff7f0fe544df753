"""Authing webhook deliveries → inbox entries (pure).

Shapes: reference/authing-api.md §4.3. Payloads use Authing's internal names (``id``,
``orgId``) and are treated as hints: the downstream worker re-reads the entity through
the API before writing anything to WeCom.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.authing.mapping import DEPARTMENT_ID_FIELD, PARENT_DEPARTMENT_FIELD, USER_ID_FIELD
from sync_core.directory.vocabulary import Kind
from sync_core.http.documents import MalformedDocument, json_object, json_type, storable

# Never persisted (reference/authing-api.md §4.3b: the samples carry a password hash, its
# salt, ``encryptedPassword``, a JWT and linked accounts' access tokens). A key is dropped
# when its lower-cased name without ``_``/``-`` holds one of these, whatever its spelling
# (``encryptedPassword``, ``access_token``, ``idToken``, ``mfaSecret``); so is any string
# value shaped like a JWT.
_SENSITIVE_PARTS = ("password", "passwd", "secret", "token", "salt", "credential",
                    "privatekey", "recoverycode", "otp", "totp", "mfa", "cookie", "session")
_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")


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
    """One entry per entity the delivery names (``user:deleted`` may name several); none
    for an event we do not handle. Raises MalformedWebhook when a handled event's ``data``
    is not an object naming its entity (a user or node id), or is not storable."""
    event_name = body.get("eventName")
    if not isinstance(event_name, str) or not event_name.strip():
        raise MalformedWebhook("missing eventName")
    if not storable(event_name):
        raise MalformedWebhook("eventName holds NUL or unpaired surrogate characters")
    if not handled(event_name):
        return []
    data = body.get("data")
    if isinstance(data, str):  # form-encoded deliveries carry data as a JSON string
        try:
            data = json_object(data, what="data (a string)")
        except MalformedDocument as exc:
            raise MalformedWebhook(str(exc)) from exc
    if not isinstance(data, dict):
        raise MalformedWebhook(f"data must be an object, not {json_type(data)}")
    clean = scrub(data)
    digest = hashlib.sha256(
        json.dumps({"eventName": event_name, "data": clean}, sort_keys=True,
                   ensure_ascii=False, default=str).encode("utf-8")).hexdigest()
    kind, keys = _entities(event_name, clean)
    if not keys:
        raise MalformedWebhook(f"{event_name} names no {kind.value} id in data")
    payload = {"eventName": event_name, "data": clean}
    return [WebhookEntry(kind, key, event_name, payload,
                         digest if len(keys) == 1 else f"{digest}:{i}")
            for i, key in enumerate(keys)]


def scrub(value: Any) -> Any:
    """``value`` (JSON-like, already depth-checked) without credentials: see
    ``_SENSITIVE_PARTS``."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not _sensitive(k)}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and _JWT.search(value):
        return "[redacted]"
    return value


def _sensitive(key: object) -> bool:
    name = str(key)
    # Webhooks repeat the same few hundred short key names: the answer for those is kept.
    return _known_sensitive(name) if len(name) <= 64 else _sensitive_name(name)


@functools.lru_cache(maxsize=2048)
def _known_sensitive(key: str) -> bool:
    return _sensitive_name(key)


def _sensitive_name(key: str) -> bool:
    name = key.lower().replace("_", "").replace("-", "")
    return any(part in name for part in _SENSITIVE_PARTS)


def _entities(event_name: str, data: dict[str, Any]) -> tuple[Kind, list[str]]:
    family = event_name.split(":", 1)[0]
    if event_name in RECONCILE_EVENTS:  # the whole tree: a downstream reconcile
        return Kind.JOB, [event_name]
    if event_name in ("organization:member-added", "organization:member-removed"):
        return Kind.USER, _ids([data.get("user")])
    if family == "user":
        if isinstance(data.get("users"), list):
            return Kind.USER, _ids(data["users"])
        return Kind.USER, _ids([data.get("user") if isinstance(data.get("user"), dict)
                                else data])
    if isinstance(data.get("nodes"), list):
        return Kind.DEPARTMENT, _ids(data["nodes"])
    return Kind.DEPARTMENT, _ids([data.get("node")])


def _ids(objects: list[Any]) -> list[str]:
    """The distinct ids named, in order (a custom-database ``users`` list holds ids)."""
    return list(dict.fromkeys(k for k in map(_id, objects) if k))


def _id(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj.strip() or None
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj)
    if not isinstance(obj, dict):
        return None
    for key in ("id", "userId", "departmentId", "nodeId"):
        value = obj.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) \
                and str(value).strip():
            return str(value).strip()
    return None


# What the downstream direction writes back to Authing (the ids WeCom gave), by entity kind.
WRITE_BACK_FIELDS = {
    Kind.USER: frozenset({"externalId", USER_ID_FIELD}),
    Kind.DEPARTMENT: frozenset({"openDepartmentId", DEPARTMENT_ID_FIELD,
                                PARENT_DEPARTMENT_FIELD}),
}


def write_back_changes(kind: Kind, payloads: Sequence[Mapping[str, Any]]
                       ) -> list[tuple[str, Any]] | None:
    """(field, new value) for each change the stored deliveries report, when every one of
    them is an update that names only write-back fields (``WRITE_BACK_FIELDS``): the
    ``updates`` of ``user:updated`` / ``organization:node-updated``, the ``udv`` of a
    ``*:udv-changed``. None for anything else (another event, another field, a shape we do
    not know): those are re-read."""
    allowed = WRITE_BACK_FIELDS.get(kind, frozenset())
    changes: list[tuple[str, Any]] = []
    for payload in payloads:
        name, data = payload.get("eventName"), payload.get("data")
        if not isinstance(data, dict):
            return None
        if name in ("user:updated", "organization:node-updated"):
            updates = data.get("updates")
            if not isinstance(updates, dict) or not updates:
                return None
            changes.extend(updates.items())
        elif name in ("user:udv-changed", "organization:udv-changed"):
            udv = data.get("udv")
            if not isinstance(udv, dict) or not isinstance(udv.get("key"), str):
                return None
            changes.append((udv["key"], udv.get("value")))
        else:
            return None
    if not changes or any(field not in allowed for field, _ in changes):
        return None
    return changes
