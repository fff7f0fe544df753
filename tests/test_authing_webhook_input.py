"""Bad or hostile input to ``POST /authing/webhook`` gets a short 4xx and stores nothing;
what is stored holds no credential; every layout of a form delivery is read (issue 10 §1,
reference/authing-api.md §4.2-4.3b). Real receiver over HTTP, both simulators running."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import httpx
import pytest

from sync_core.authing.events import MalformedWebhook, parse_delivery, scrub

from .conftest import CallbackKeys
from .e2e_stack import HOOK_SECRET, OPS, running_stack
from .test_downstream_e2e import root, wecom_user

JSON = {"x-authing-webhook-secret": HOOK_SECRET, "content-type": "application/json"}
FORM = {"x-authing-webhook-secret": HOOK_SECRET,
        "content-type": "application/x-www-form-urlencoded"}


def _nested(depth: int) -> bytes:
    return (b'{"eventName": "user:created", "data": {"id": "u1", "extra": '
            + b"[" * depth + b"]" * depth + b"}}")


BAD = [
    ("json nested 40", JSON, _nested(40)),
    ("json nested 600", JSON, _nested(600)),
    ("json nested 900", JSON, _nested(900)),
    ("NaN", JSON, b'{"eventName": "user:created", "data": {"id": "u2", "n": NaN}}'),
    ("Infinity", JSON, b'{"eventName": "user:created", "data": {"id": "u2", "n": Infinity}}'),
    ("-Infinity", JSON, b'{"eventName": "user:created", "data": {"id": "u2", "n": -Infinity}}'),
    ("no entity", JSON, b'{"eventName": "user:created", "data": {}}'),
    ("null data", JSON, b'{"eventName": "user:updated", "data": null}'),
    ("no node", JSON, b'{"eventName": "organization:node-added", "data": {"organization": '
                      b'{"id": "org1"}}}'),
    ("blank id", JSON, b'{"eventName": "user:created", "data": {"id": "  "}}'),
    ("empty users", JSON, b'{"eventName": "user:deleted", "data": {"users": []}}'),
    ("list data", JSON, b'{"eventName": "user:created", "data": [1]}'),
    ("form NaN in data", FORM, urlencode({"eventName": "user:created",
                                          "data": '{"id": "u3", "n": NaN}'}).encode()),
    ("form data null", FORM, urlencode({"eventName": "user:created", "data": "null"}).encode()),
    ("form nested", FORM, ("eventName=user%3Acreated&data[id]=u4&data"
                           + "[a]" * 60 + "=1").encode()),
    ("form bad utf-8", FORM, b"eventName=user%3Acreated&data[id]=%ff%fe"),
    ("form NUL", FORM, b"eventName=user%3Acreated&data[id]=a%00b"),
    ("form too many fields", FORM, ("eventName=user%3Acreated&data[id]=u5&" + "&".join(
        f"x{i}=1" for i in range(6000))).encode()),
    ("form two eventNames", FORM, b"eventName=user%3Acreated&eventName=user%3Aupdated"
                                  b"&data[id]=u6"),
]


@pytest.mark.parametrize("headers, body", [(h, b) for _, h, b in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_input_is_a_400_and_stores_nothing(db_url: str, keys: CallbackKeys,
                                               headers: dict[str, str], body: bytes,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with running_stack(db_url, keys, direction="downstream") as s:
        before = len(s.events())
        with caplog.at_level(logging.ERROR):
            reply = httpx.post(f"{s.url}/authing/webhook", headers=headers, content=body)
        assert reply.status_code == 400, (reply.status_code, reply.text)
        assert "Traceback" not in caplog.text and "Error" not in caplog.text, caplog.text[-800:]
        assert len(s.events()) == before


def test_an_unhandled_event_is_answered_whatever_its_data() -> None:
    assert parse_delivery({"eventName": "login", "data": None}) == []
    assert parse_delivery({"eventName": "role:created", "data": "[not json"}) == []
    with pytest.raises(MalformedWebhook, match="names no user id"):
        parse_delivery({"eventName": "user:updated", "data": {"user": {}, "updates": {}}})


def test_a_custom_database_users_list_of_ids_names_each_user_once() -> None:
    entries = parse_delivery({"eventName": "user:deleted", "data": {"users": ["a", "b", "a"]}})
    assert [e.entity_key for e in entries] == ["a", "b"]
    assert len({e.dedupe_key for e in entries}) == 2


SECRETS = {"password": "PW-HASH", "salt": "SALT-VALUE", "encryptedPassword": "ENC-PW",
           "access_token": "AT-VALUE", "refreshToken": "RT-VALUE", "idToken": "ID-TOKEN",
           "mfaSecret": "MFA-VALUE", "totp-secret": "TOTP-VALUE", "Password": "PW-UPPER",
           "recovery_code": "RC-VALUE", "clientSecret": "CS-VALUE"}
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSIsIm5hbWUiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"


def test_credentials_are_dropped_at_every_depth_and_spelling() -> None:
    data = {"id": "u1", "name": "张三", **SECRETS, "note": JWT,
            "identities": [{"provider": "wechatwork", **SECRETS, "userInfo": {**SECRETS}}]}
    clean = json.dumps(scrub(data), ensure_ascii=False)
    for value in [*SECRETS.values(), JWT]:
        assert value not in clean, value
    assert '"name": "张三"' in clean and '"provider": "wechatwork"' in clean


@pytest.mark.parametrize("encoding", ["json", "form", "qs"])
def test_credentials_are_neither_stored_nor_served(sqlite_url: str, keys: CallbackKeys,
                                                   encoding: str) -> None:
    data = {"id": "u1", "username": "x", **SECRETS, "token": JWT}
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        url = f"{s.url}/authing/webhook"
        if encoding == "json":
            reply = httpx.post(url, headers=JSON,
                               content=json.dumps({"eventName": "user:created", "data": data}))
        elif encoding == "form":
            reply = httpx.post(url, headers=FORM, content=urlencode(
                {"eventName": "user:created", "data": json.dumps(data)}))
        else:
            reply = httpx.post(url, headers=FORM, content=urlencode(
                {"eventName": "user:created", **{f"data[{k}]": v for k, v in data.items()}}))
        assert reply.status_code == 200, reply.text
        (event,) = [e for e in s.events() if e["entity_key"] == "u1"]
        shown = json.dumps(httpx.get(f"{s.url}/ops/events/{event['id']}", headers=OPS).json(),
                           ensure_ascii=False)
        for value in [*SECRETS.values(), JWT]:
            assert value not in shown, value


def test_a_qs_style_form_webhook_reaches_wecom(sqlite_url: str, keys: CallbackKeys) -> None:
    """The simulator can send a form delivery the qs way (``data[user][id]=…``)."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        for hook in s.authing.webhooks.hooks.values():
            hook.enabled = False  # replaced by a form-encoded webhook
        s.authing.webhooks.form_style = "qs"
        s.authing.admin.add_webhook(f"{s.url}/authing/webhook", HOOK_SECRET,
                                    content_type="application/x-www-form-urlencoded")
        a = s.authing.admin
        user = a.create_user(username="form", name="表单", email="form@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert not [e for e in s.events() if e["entity_key"] == "unknown"], s.events()
        assert wecom_user(s, "form") is not None


REASONS = [
    (JSON, b'{"eventName": "user:created", "data": "str"}',
     "data (a string) is not JSON: Expecting value at line 1 column 1"),
    (JSON, b'{"eventName": "user:created", "data": "[1]"}',
     "data (a string) must be a JSON object, not an array"),
    (JSON, b'{"eventName": "user:created", "data": [1]}', "data must be an object, not an array"),
    (JSON, b'{"eventName": "user:created", "data": null}', "data must be an object, not null"),
    (JSON, b'[1, 2]', "body must be a JSON object, not an array"),
    (JSON, b'{"eventName": "user:created", ', "body is not JSON: "),
    ({**JSON, "content-type": "multipart/form-data; boundary=xyz"},
     b"--xyz\r\nContent-Disposition: form-data; name=\"eventName\"\r\n\r\nuser:created\r\n"
     b"--xyz--\r\n", "content type multipart/form-data is not supported"),
    (FORM, urlencode({"eventName": "user:created", "data": "{oops"}).encode(),
     "data (a string) is not JSON: Expecting property name"),
]


def test_a_400_says_what_is_wrong(db_url: str, keys: CallbackKeys) -> None:
    with running_stack(db_url, keys, direction="downstream") as s:
        before = len(s.events())
        for headers, body, reason in REASONS:
            reply = httpx.post(f"{s.url}/authing/webhook", headers=headers, content=body)
            assert reply.status_code == 400, (reply.status_code, reply.text)
            assert reason in reply.text, (reason, reply.text)
            assert "malformed JSON" not in reply.text and "storable JSON object" not in reply.text
        assert len(s.events()) == before
