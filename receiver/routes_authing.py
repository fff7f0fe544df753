"""``/authing/webhook``: check the shared secret, store each named entity, reply 200."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

from qs_codec import DecodeOptions
from qs_codec import decode as qs_decode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync_core.authing.events import MalformedWebhook, handled, parse_delivery
from sync_core.http.documents import (
    MAX_DEPTH,
    MalformedDocument,
    decode_utf8,
    json_object,
    storable,
)
from sync_core.settings import DirectionSetting
from sync_core.store.inbox import NewEvent
from sync_core.store.models import EventSource, utcnow

from .context import ctx
from .http import BodyTooLarge, read_body, reject, secret_matches

log = logging.getLogger(__name__)
ROUTE = "/authing/webhook"


async def receive(request: Request) -> Response:
    c = ctx(request)
    secret = c.settings.authing_webhook_secret
    if secret is None:
        return reject(503, "webhook not configured: set WECOM_SYNC_AUTHING_WEBHOOK_SECRET")
    presented = (request.headers.get("x-authing-webhook-secret")
                 or request.headers.get("x-authing-token"))
    if not secret_matches(presented, secret.get_secret_value()):
        c.throttle.log(logging.WARNING, "authing-secret",
                       "Authing webhook refused: %s x-authing-webhook-secret; check that "
                       "WECOM_SYNC_AUTHING_WEBHOOK_SECRET equals the webhook's secret in "
                       "Authing's console", "wrong" if presented else "missing")
        c.metrics.callbacks.labels(ROUTE, "bad_secret").inc()
        return reject(401, "missing or wrong webhook secret")
    try:
        raw = await read_body(request, c.settings.callback_max_body_bytes)
        body = _decode(raw, request.headers.get("content-type", ""))
        entries = parse_delivery(body)
    except BodyTooLarge:
        return reject(413, "body too large")
    except (MalformedDocument, MalformedWebhook) as exc:
        c.metrics.callbacks.labels(ROUTE, "bad_request").inc()
        return reject(400, str(exc))

    event_name = str(body.get("eventName"))
    if not handled(event_name):
        # Counted, answered, dropped: nothing we apply (login, role:*, ...).
        c.metrics.ignored.labels(event_name[:64]).inc()
        c.metrics.callbacks.labels(ROUTE, "ignored").inc()
        return JSONResponse({"ok": True, "stored": 0, "ignored": event_name})
    # With downstream off, a webhook is recorded as settled, never queued: switching
    # downstream on later must not replay a stale backlog as writes.
    settled = (None if c.settings.direction in (DirectionSetting.DOWNSTREAM,
                                                DirectionSetting.BOTH)
               else "downstream off (WECOM_SYNC_DIRECTION=upstream): recorded, not applied")
    stored = 0
    for entry in entries:
        result = await c.writer.submit(NewEvent(
            source=EventSource.AUTHING.value,
            dedupe_key=entry.dedupe_key,
            entity_kind=entry.entity_kind,
            entity_key=entry.entity_key,
            event_type=entry.event_type,
            payload=entry.payload,
            received_at=utcnow(),
            settled=settled,
        ))
        stored += not result.duplicate
    if stored and settled is None:
        c.wake.set()  # as a WeCom callback does: not left for the worker's next poll
    c.metrics.callbacks.labels(ROUTE, "stored" if stored else "duplicate").inc()
    return JSONResponse({"ok": True, "stored": stored})


# A form delivery is ``eventName=…&data=<JSON text>`` or, qs-style, ``data[user][id]=…``
# (reference/authing-api.md §4.2 leaves the layout open): qs-codec reads both, within limits
# far above any real delivery, and refuses (400) rather than truncates beyond them.
_FORM = DecodeOptions(depth=MAX_DEPTH, strict_depth=True, parameter_limit=5000,
                      list_limit=5000, raise_on_limit_exceeded=True,
                      decoder=lambda text, charset=None: None if text is None
                      else unquote_plus(text, errors="strict"))


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    """The delivery as a JSON-like dict. Raises MalformedDocument."""
    text = decode_utf8(raw)
    if "application/x-www-form-urlencoded" not in content_type:
        try:
            return json_object(text)
        except MalformedDocument as exc:
            kind = content_type.split(";")[0].strip().lower()
            if kind and "json" not in kind:  # say why it was read as JSON at all
                raise MalformedDocument(
                    f"content type {kind[:60]} is not supported (send application/json or "
                    f"application/x-www-form-urlencoded); read as JSON: {exc}") from None
            raise
    try:
        form = qs_decode(text, _FORM)
    except UnicodeDecodeError:
        raise MalformedDocument("form field is not percent-encoded UTF-8") from None
    except (ValueError, IndexError) as exc:  # too many fields, list items or levels
        raise MalformedDocument(f"form refused: {str(exc)[:100]}") from None
    if not storable(form):
        raise MalformedDocument("form holds NUL or unpaired surrogate characters")
    return form
