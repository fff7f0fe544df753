"""``/wecom/callback``: verify, decrypt, persist, reply. No calls to the remotes on this path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sync_core.http.documents import MalformedDocument
from sync_core.settings import DirectionSetting
from sync_core.store.inbox import NewEvent
from sync_core.store.models import EventSource, utcnow
from sync_core.wecom.crypto import ReceiveIdError, SignatureError, WeComCryptoError
from sync_core.wecom.envelope import parse_envelope
from sync_core.wecom.events import dedupe_key, parse_event, to_payload

from .context import AppContext, ctx
from .http import BodyTooLarge, read_body, reject

log = logging.getLogger(__name__)
ROUTE = "/wecom/callback"


def _params(request: Request, *names: str) -> tuple[dict[str, str], Response | None]:
    values: dict[str, str] = {}
    for name in names:
        value = request.query_params.get(name)
        if value is None or value == "":
            return values, reject(400, f"missing query parameter: {name}")
        values[name] = value
    return values, None


async def verify_url(request: Request) -> Response:
    """URL verification (reference §1.6): reply the decrypted echostr as exact bytes."""
    c = ctx(request)
    started = time.perf_counter()
    if c.crypto is None:
        return reject(503, "callback not configured")
    q, error = _params(request, "msg_signature", "timestamp", "nonce", "echostr")
    if error:
        return _count(c, "bad_request", error)
    # The query string is decoded exactly once (by Starlette); a "+" that a proxy turned
    # into a space is restored, which is safe because base64 never contains spaces.
    echostr = q["echostr"].replace(" ", "+")
    plaintext = _decrypt(c, c.crypto.verify_url, q["msg_signature"], q["timestamp"],
                         q["nonce"], echostr)
    if isinstance(plaintext, Response):
        return plaintext
    c.metrics.callback_seconds.labels(ROUTE).observe(time.perf_counter() - started)
    c.metrics.callbacks.labels(ROUTE, "verified").inc()
    return Response(plaintext, media_type="text/plain")


async def receive(request: Request) -> Response:
    """Encrypted event: verify the signature, decrypt, parse, commit, then ``success``."""
    c = ctx(request)
    started = time.perf_counter()
    if c.crypto is None:
        return reject(503, "callback not configured")
    q, error = _params(request, "msg_signature", "timestamp", "nonce")
    if error:
        return _count(c, "bad_request", error)
    stamp = q["timestamp"]
    # Seconds since 1970 fit in 12 digits for 30000 years; longer ones would overflow.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return _count(c, "bad_request", reject(400, "timestamp is not a Unix time in seconds"))
    try:
        body = await read_body(request, c.settings.callback_max_body_bytes)
        envelope = parse_envelope(body)
    except BodyTooLarge:
        return _count(c, "too_large", reject(413, "body too large"))
    except MalformedDocument as exc:
        return _count(c, "bad_request", reject(400, str(exc)))
    plaintext = _decrypt(c, c.crypto.decrypt_message, q["msg_signature"], q["timestamp"],
                         q["nonce"], envelope.encrypt)
    if isinstance(plaintext, Response):
        return plaintext
    if abs(time.time() - int(q["timestamp"])) > c.settings.wecom_callback_max_age_seconds:
        return _count(c, "stale", reject(403, "timestamp outside the accepted window"))
    try:
        event = parse_event(plaintext)
    except MalformedDocument as exc:
        return _count(c, "bad_message", reject(400, f"bad message: {exc}"))

    stored = await c.writer.submit(NewEvent(
        source=EventSource.WECOM.value,
        dedupe_key=dedupe_key(plaintext),
        entity_kind=event.kind.value,
        entity_key=event.entity_key,
        event_type=event.change_type,
        payload=to_payload(event),
        received_at=utcnow(),
        # Upstream off: recorded as settled, never queued (nor replayed later as writes).
        settled=(None if c.settings.direction is not DirectionSetting.DOWNSTREAM
                 else "upstream off (WECOM_SYNC_DIRECTION=downstream): recorded, not applied"),
    ))
    if stored.duplicate:
        c.metrics.inbox_duplicates.labels(EventSource.WECOM.value).inc()
    else:
        c.metrics.inbox_stored.labels(EventSource.WECOM.value, event.kind.value).inc()
        c.wake.set()
    c.metrics.callback_seconds.labels(ROUTE).observe(time.perf_counter() - started)
    c.metrics.callbacks.labels(ROUTE, "duplicate" if stored.duplicate else "stored").inc()
    return PlainTextResponse("success")


def _decrypt(c: AppContext, step: Callable[[str, str, str, str], bytes],
             *args: str) -> bytes | Response:
    """Run a verify-then-decrypt step; a failure becomes the short 4xx to send."""
    try:
        return step(*args)
    except SignatureError:
        # The commonest set-up mistake; said once a minute, never with the values.
        c.throttle.log(logging.WARNING, "wecom-signature",
                       "WeCom callback refused: signature mismatch; check that "
                       "WECOM_SYNC_WECOM_CALLBACK_TOKEN equals the Token in WeCom's console "
                       "(通讯录同步 → 设置接收事件服务器)")
        return _count(c, "bad_signature", reject(403, "signature mismatch"))
    except ReceiveIdError as exc:
        c.throttle.log(logging.WARNING, "wecom-receiver",
                       "WeCom callback refused: for another receiver (%s); check "
                       "WECOM_SYNC_WECOM_CORP_ID", exc.detail)
        return _count(c, "wrong_receiver", reject(403, "receive id mismatch"))
    except WeComCryptoError as exc:
        # A signed message we cannot decrypt: most likely the wrong EncodingAESKey.
        c.throttle.log(logging.WARNING, "wecom-decrypt",
                       "WeCom callback refused: %s; check that "
                       "WECOM_SYNC_WECOM_ENCODING_AES_KEY equals the EncodingAESKey in WeCom's "
                       "console", exc.reason)
        return _count(c, "undecryptable", reject(400, exc.reason))


def _count(c: AppContext, outcome: str, response: Response) -> Response:
    c.metrics.callbacks.labels(ROUTE, outcome).inc()
    return response
