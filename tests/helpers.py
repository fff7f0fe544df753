"""Test helpers: run the receiver over real HTTP, build signed WeCom requests."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from simulators.server import BackgroundServer
from sync_core.settings import Settings
from sync_core.wecom.crypto import WeComCrypto
from sync_core.wecom.envelope import build_envelope


@contextmanager
def running_receiver(settings: Settings) -> Iterator[BackgroundServer]:
    from receiver.app import create_app

    with BackgroundServer(create_app(settings)) as server:
        yield server


def signed_post(crypto: WeComCrypto, message: str | bytes, to_user: str,
                timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
    """Query params and XML body for a POST WeCom would send."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(5)
    encrypted, sig = crypto.encrypt_message(data, ts, nonce)
    return ({"msg_signature": sig, "timestamp": ts, "nonce": nonce},
            build_envelope(encrypted, to_user))


def change_contact(corp_id: str, body: str, create_time: int | None = None) -> str:
    ts = int(time.time()) if create_time is None else create_time
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{ts}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
            f"{body}</xml>")
