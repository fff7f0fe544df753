"""The WeCom callback URL over real HTTP, with a real database behind it."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from Crypto.Cipher import AES

from sync_core.wecom.crypto import WeComCrypto
from sync_core.wecom.envelope import build_envelope

from .conftest import CallbackKeys, make_settings
from .helpers import change_contact, running_receiver, signed_post

OPS = {"Authorization": "Bearer ops-test-token"}
VECTORS = json.loads((Path(__file__).parent / "data" / "wecom_crypto_vectors.json")
                     .read_text(encoding="utf-8"))["vectors"]


def _events(base: str, **params: str) -> list[dict[str, object]]:
    response = httpx.get(f"{base}/ops/events", headers=OPS, params=params)
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


# -- URL verification ---------------------------------------------------------------------


@pytest.mark.parametrize("v", [v for v in VECTORS if v["kind"] == "echostr"],
                         ids=lambda v: v["timestamp"])
def test_url_verification_replies_exact_plaintext(v: dict[str, str], sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, CallbackKeys(v["receive_id"], v["token"],
                                                      v["encoding_aes_key"]))
    query = v.get("raw_query") or httpx.QueryParams({
        "msg_signature": v["msg_signature"], "timestamp": v["timestamp"],
        "nonce": v["nonce"], "echostr": v["encrypted"]})
    with running_receiver(settings) as srv:
        response = httpx.get(f"{srv.url}/wecom/callback?{query}")
    assert response.status_code == 200
    assert response.content == v["plaintext"].encode()  # no quotes, BOM or newline
    assert response.headers["content-type"].startswith("text/plain")


def test_url_verification_tolerates_plus_sent_as_space(sqlite_url: str) -> None:
    v = next(v for v in VECTORS if v["kind"] == "echostr" and "+" in v["encrypted"])
    settings = make_settings(sqlite_url, CallbackKeys(v["receive_id"], v["token"],
                                                      v["encoding_aes_key"]))
    # An unencoded "+" in a query string decodes to a space.
    query = (f"msg_signature={v['msg_signature']}&timestamp={v['timestamp']}"
             f"&nonce={v['nonce']}&echostr={v['encrypted'].replace('=', '%3D')}")
    with running_receiver(settings) as srv:
        response = httpx.get(f"{srv.url}/wecom/callback?{query}")
    assert response.status_code == 200 and response.text == v["plaintext"]


def test_url_verification_refuses_a_bad_signature(sqlite_url: str) -> None:
    v = VECTORS[0]
    settings = make_settings(sqlite_url, CallbackKeys(v["receive_id"], v["token"],
                                                      v["encoding_aes_key"]))
    params = {"msg_signature": "0" * 40, "timestamp": v["timestamp"], "nonce": v["nonce"],
              "echostr": v["encrypted"]}
    with running_receiver(settings) as srv:
        response = httpx.get(f"{srv.url}/wecom/callback", params=params)
        missing = httpx.get(f"{srv.url}/wecom/callback", params={"echostr": "x"})
    assert response.status_code == 403 and response.text == "signature mismatch"
    assert missing.status_code == 400 and "msg_signature" in missing.text


# -- events are stored before success, once ---------------------------------------------


def test_event_is_stored_then_acknowledged(db_url: str, keys: CallbackKeys) -> None:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    message = change_contact(keys.corp_id, "<ChangeType>create_user</ChangeType>"
                             "<UserID><![CDATA[zhangsan]]></UserID><Name><![CDATA[张三]]></Name>"
                             "<Department><![CDATA[1,2]]></Department>")
    with running_receiver(make_settings(db_url, keys)) as srv:
        params, body = signed_post(crypto, message, keys.corp_id)
        response = httpx.post(f"{srv.url}/wecom/callback", params=params, content=body)
        assert response.status_code == 200 and response.text == "success"
        events = _events(srv.url)
    assert len(events) == 1
    event = events[0]
    assert event["source"] == "wecom" and event["status"] == "pending"
    assert event["entity_kind"] == "user" and event["entity_key"] == "zhangsan"
    assert event["event_type"] == "create_user" and event["attempts"] == 0
    assert event["received_at"]


def test_redelivery_is_stored_once_and_still_acknowledged(db_url: str,
                                                          keys: CallbackKeys) -> None:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    message = change_contact(keys.corp_id, "<ChangeType>delete_party</ChangeType><Id>9</Id>")
    with running_receiver(make_settings(db_url, keys)) as srv:
        first = signed_post(crypto, message, keys.corp_id)
        replies = [httpx.post(f"{srv.url}/wecom/callback", params=first[0], content=first[1])
                   for _ in range(2)]
        # WeCom's retry re-encrypts with a fresh nonce and random prefix.
        again = signed_post(crypto, message, keys.corp_id)
        replies.append(httpx.post(f"{srv.url}/wecom/callback", params=again[0],
                                  content=again[1]))
        events = _events(srv.url)
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert [(r.status_code, r.text) for r in replies] == [(200, "success")] * 3
    assert len(events) == 1 and events[0]["entity_key"] == "9"
    assert 'wecom_sync_inbox_duplicates_total{source="wecom"} 2.0' in metrics


def test_json_envelope_is_accepted(sqlite_url: str, keys: CallbackKeys) -> None:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    message = change_contact(keys.corp_id, "<ChangeType>create_party</ChangeType><Id>3</Id>"
                             "<ParentId>1</ParentId>")
    ts, nonce = str(int(time.time())), "n1"
    encrypted, sig = crypto.encrypt_message(message.encode(), ts, nonce)
    body = json.dumps({"tousername": keys.corp_id, "encrypt": encrypted, "agentid": ""})
    with running_receiver(make_settings(sqlite_url, keys)) as srv:
        response = httpx.post(f"{srv.url}/wecom/callback", content=body,
                              params={"msg_signature": sig, "timestamp": ts, "nonce": nonce},
                              headers={"content-type": "application/json"})
        events = _events(srv.url)
    assert response.text == "success"
    assert [(e["entity_kind"], e["entity_key"]) for e in events] == [("department", "3")]


# -- bad input: a 4xx with a reason, nothing stored, still healthy ------------------------


def _pad_bad(crypto_key: str, corp: str) -> str:
    key = base64.b64decode(crypto_key + "=")
    body = b"R" * 16 + (5).to_bytes(4, "big") + b"hello" + corp.encode()
    body += b"\x00" * (32 - len(body) % 32)  # zero is never a valid PKCS#7 pad byte
    return base64.b64encode(AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(body)).decode()


def _bad_requests(keys: CallbackKeys) -> dict[str, tuple[str, dict[str, str], bytes, int]]:
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    ok_msg = change_contact(keys.corp_id, "<ChangeType>delete_user</ChangeType>"
                            "<UserID>u1</UserID>")
    params, body = signed_post(crypto, ok_msg, keys.corp_id)
    now = str(int(time.time()))

    def signed_raw(encrypt: str) -> tuple[dict[str, str], bytes]:
        return ({"msg_signature": crypto.sign(now, "n", encrypt), "timestamp": now,
                 "nonce": "n"}, build_envelope(encrypt, keys.corp_id))

    stale = signed_post(crypto, ok_msg, keys.corp_id, timestamp=int(time.time()) - 3600)
    other = WeComCrypto(keys.token, keys.aes_key, "ww_other_corp")
    wrong_receiver = signed_post(other, ok_msg, keys.corp_id)
    garbage_message = signed_post(crypto, "<xml><ChangeType>create_user", keys.corp_id)
    not_utf8_message = signed_post(crypto, b"\xff\xfe\x00<xml/>", keys.corp_id)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
              b"<xml><Encrypt>&lol2;</Encrypt></xml>")
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           b"<xml><Encrypt>&e;</Encrypt></xml>")
    return {
        "missing signature": ("POST", {k: v for k, v in params.items()
                                       if k != "msg_signature"}, body, 400),
        "missing nonce": ("POST", {k: v for k, v in params.items() if k != "nonce"}, body, 400),
        "bad signature": ("POST", {**params, "msg_signature": "f" * 40}, body, 403),
        "non-integer timestamp": ("POST", {**params, "timestamp": "soon"}, body, 400),
        "stale timestamp": ("POST", stale[0], stale[1], 403),
        "non-base64": ("POST", *signed_raw("@@@not-base64@@@"), 400),
        "bad padding": ("POST", *signed_raw(_pad_bad(keys.aes_key, keys.corp_id)), 400),
        "wrong receive id": ("POST", wrong_receiver[0], wrong_receiver[1], 403),
        "malformed xml": ("POST", params, b"<xml><Encrypt>abc</Encr", 400),
        "no Encrypt": ("POST", params, b"<xml><ToUserName>x</ToUserName></xml>", 400),
        "billion laughs": ("POST", params, laughs, 400),
        "xxe": ("POST", params, xxe, 400),
        "over 1 MiB": ("POST", params, b"<xml><Encrypt>" + b"A" * (1024 * 1024 + 10)
                       + b"</Encrypt></xml>", 413),
        "non-utf8 body": ("POST", params, b"\xff\xfe<xml></xml>", 400),
        "undecodable message": ("POST", garbage_message[0], garbage_message[1], 400),
        "non-utf8 message": ("POST", not_utf8_message[0], not_utf8_message[1], 400),
        "wrong method": ("PUT", params, body, 405),
        "json array envelope": ("POST", params, b"[1,2]", 400),
    }


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from .conftest import random_aes_key

    keys = CallbackKeys("wwedgecorp", "edge-token", random_aes_key())
    url = f"sqlite:///{tmp_path_factory.mktemp('edge') / 'db.sqlite'}"
    with running_receiver(make_settings(url, keys)) as srv:
        yield srv, keys


@pytest.mark.parametrize("case", list(_bad_requests(CallbackKeys("c", "t", "a" * 43))))
def test_bad_input_is_refused_and_changes_nothing(edge, case: str) -> None:  # type: ignore[no-untyped-def]
    srv, keys = edge
    method, params, body, status = _bad_requests(keys)[case]
    before = _events(srv.url)
    response = httpx.request(method, f"{srv.url}/wecom/callback", params=params, content=body)
    assert response.status_code == status, (case, response.text)
    assert response.text and len(response.text) < 200 and "Traceback" not in response.text
    assert _events(srv.url) == before
    assert httpx.get(f"{srv.url}/healthz").status_code == 200


def test_unconfigured_callback_answers_503_not_500(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        response = httpx.post(f"{srv.url}/wecom/callback?msg_signature=a&timestamp=1&nonce=n",
                              content=b"<xml/>")
    assert response.status_code == 503 and response.text == "callback not configured"


def test_database_outage_answers_503_so_wecom_retries(tmp_path: Path,
                                                      keys: CallbackKeys) -> None:
    from sqlalchemy import text

    from sync_core.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
    with running_receiver(make_settings(url, keys)) as srv:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE inbox_events"))
        engine.dispose()
        params, body = signed_post(crypto, change_contact(
            keys.corp_id, "<ChangeType>delete_user</ChangeType><UserID>u</UserID>"),
            keys.corp_id)
        response = httpx.post(f"{srv.url}/wecom/callback", params=params, content=body)
        assert response.status_code == 503 and "Traceback" not in response.text
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
