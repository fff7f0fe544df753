"""Property tests over real HTTP: whatever reaches the ops routes, the WeCom callback (GET and
POST) or the Authing webhook, the answer is a 2xx or a 4xx, never a 5xx, and a refused
request stores nothing. Example counts are modest and derandomized, so CI time is bounded
and a failure reproduces."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from simulators.authing.app import AuthingSimulator
from simulators.wecom.app import WeComSimulator
from sync_core.store.db import make_engine
from sync_core.wecom.crypto import WeComCrypto

from .conftest import CallbackKeys, make_settings
from .helpers import change_contact, running_receiver, signed_post

OPS = {"Authorization": "Bearer ops-test-token"}
HOOK_SECRET = "hook-secret"
FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Edge:
    client: httpx.Client
    engine: Engine
    crypto: WeComCrypto
    keys: CallbackKeys

    def stored(self) -> tuple[int, ...]:
        with self.engine.connect() as conn:
            return tuple(int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                         for table in ("inbox_events", "runs", "run_items"))

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The request, checked: never a 5xx; a 4xx leaves the store as it was."""
        before = self.stored()
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 500, (method, path, kwargs, response.text)
        if response.status_code >= 400:
            assert self.stored() == before, (method, path, kwargs, response.text)
            assert len(response.content) < 1000
        return response


@contextmanager
def edge(db_url: str, keys: CallbackKeys) -> Iterator[Edge]:
    wecom = WeComSimulator(corp_id=keys.corp_id)
    authing = AuthingSimulator(userpool_id="pool-fuzz", secret="pool-secret")
    with wecom, authing:
        config = make_settings(
            db_url, keys, authing_webhook_secret=HOOK_SECRET,
            wecom_contact_secret="contact-sync-secret", wecom_api_base=wecom.url,
            authing_api_base=authing.url, authing_access_key_id="pool-fuzz",
            authing_access_key_secret="pool-secret", http_timeout_seconds=5)
        engine = make_engine(db_url)
        try:
            with running_receiver(config) as srv, \
                    httpx.Client(base_url=srv.url, timeout=30) as client:
                yield Edge(client, engine, WeComCrypto(keys.token, keys.aes_key,
                                                       keys.corp_id), keys)
        finally:
            engine.dispose()


# -- strategies ------------------------------------------------------------------------------

ids = st.one_of(st.sampled_from(["1", "2", "0", "-1", "²", "１", "1e3", " 1", "0x10", "%00",
                                 str(2**31 - 1), str(2**31), str(2**63),
                                 "99999999999999999999999", "9" * 5000]),
                st.integers(-(2**70), 2**70).map(str), st.text(max_size=24))
ENUM_VALUES = ["pending", "done", "failed", "dead", "wecom", "authing", "ops", "user",
               "department", "tag", "upstream", "downstream", "create_update", "full",
               "delete_only", "succeeded", "blocked", "applied", "staged", "create", "skip",
               "api", "excel"]
QUERY_NAMES = ["status", "source", "entity_kind", "entity_key", "limit", "before",
               "item_status", "kind", "action", "direction", "mode"]
query_params = st.dictionaries(
    st.one_of(st.sampled_from(QUERY_NAMES), st.text(min_size=1, max_size=8)),
    st.one_of(st.sampled_from(ENUM_VALUES), ids, st.text(max_size=300)), max_size=3)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(),
              st.text(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def segment(raw: str) -> str:
    return quote(raw, safe="")


# -- ops -------------------------------------------------------------------------------------

OPS_ROUTES = [("GET", "/ops/events"), ("GET", "/ops/runs"), ("GET", "/ops/runs/{}"),
              ("POST", "/ops/runs/{}/approve"), ("POST", "/ops/events/{}/replay"),
              ("POST", "/ops/sync/users/{}"), ("POST", "/ops/sync/departments/{}")]


def test_ops_routes_answer_every_input_with_2xx_or_4xx(db_url: str, keys: CallbackKeys) -> None:
    with edge(db_url, keys) as e:
        @FUZZ
        @given(route=st.sampled_from(OPS_ROUTES), ident=ids, params=query_params)
        def check(route: tuple[str, str], ident: str, params: dict[str, str]) -> None:
            method, template = route
            path = template.format(segment(ident))
            e.send(method, path, params=params, headers=OPS)

        check()


def test_reconcile_answers_every_body_with_2xx_or_4xx(db_url: str, keys: CallbackKeys) -> None:
    fields = st.fixed_dictionaries({}, optional={
        "direction": st.one_of(st.sampled_from(["upstream", "downstream", "both"]), json_values),
        "mode": st.one_of(st.sampled_from(["create_update", "full", "delete_only"]),
                          json_values),
        "dry_run": st.one_of(st.just(True), json_values),
        "source": st.one_of(st.sampled_from(["api", "excel"]), json_values)})
    with edge(db_url, keys) as e:
        @FUZZ
        @given(body=st.one_of(fields.map(json.dumps), json_values.map(json.dumps),
                              st.binary(max_size=64)))
        def check(body: str | bytes) -> None:
            # Always a dry run or an invalid request: a real run would need a directory.
            if isinstance(body, str) and body.startswith("{"):
                value = json.loads(body)
                if isinstance(value, dict):
                    value["dry_run"] = True if value.get("dry_run") is True else value.get(
                        "dry_run", True)
                    body = json.dumps(value)
            response = e.send("POST", "/ops/reconcile", content=body,
                              headers={**OPS, "content-type": "application/json"})
            assert response.status_code in (202, 400, 409), response.text

        check()


# -- WeCom callback ------------------------------------------------------------------------

CHANGE_TYPES = ["create_user", "update_user", "delete_user", "create_party", "update_party",
                "delete_party", "update_tag"]
FIELD_NAMES = ["UserID", "NewUserID", "Name", "Department", "MainDepartment",
               "IsLeaderInDept", "Mobile", "Email", "Status", "Gender", "Id", "ParentId",
               "Order", "TagId", "AddUserItems", "Alias", "Position"]
field_text = st.one_of(st.text(max_size=80), st.integers(-(2**70), 2**70).map(str),
                       st.sampled_from(["1,2", "", " ", "9" * 5000]))


@st.composite
def contact_messages(draw: st.DrawFn) -> str:
    change = draw(st.one_of(st.sampled_from(CHANGE_TYPES), st.text(max_size=20)))
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), field_text, max_size=6))
    body = f"<ChangeType>{escape(change)}</ChangeType>" + "".join(
        f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    return change_contact("ww" if draw(st.booleans()) else "", body)


def test_wecom_callback_answers_every_input_with_2xx_or_4xx(db_url: str,
                                                            keys: CallbackKeys) -> None:
    with edge(db_url, keys) as e:
        @FUZZ
        @given(message=contact_messages(), signed=st.booleans(),
               stamp=st.one_of(st.none(), ids), params=query_params,
               body=st.binary(max_size=200))
        def check(message: str, signed: bool, stamp: str | None, params: dict[str, str],
                  body: bytes) -> None:
            if signed:  # a delivery WeCom could send, with a hostile message inside
                query, content = signed_post(e.crypto, message.replace(
                    "<ToUserName><![CDATA[ww]]>", f"<ToUserName><![CDATA[{keys.corp_id}]]>"),
                    keys.corp_id)
            else:
                query, content = params, body
            if stamp is not None:
                query = {**query, "timestamp": stamp}
            e.send("POST", "/wecom/callback", params=query, content=content)

        check()


def test_wecom_url_verification_answers_every_input_with_2xx_or_4xx(
        db_url: str, keys: CallbackKeys) -> None:
    with edge(db_url, keys) as e:
        @FUZZ
        @given(echo=st.binary(max_size=64), signed=st.booleans(), params=query_params,
               tamper=st.one_of(st.none(), st.text(max_size=40)))
        def check(echo: bytes, signed: bool, params: dict[str, str],
                  tamper: str | None) -> None:
            stamp, nonce = str(int(time.time())), secrets.token_hex(4)
            echostr, signature = e.crypto.encrypt_message(echo, stamp, nonce)
            query = ({"msg_signature": signature, "timestamp": stamp, "nonce": nonce,
                      "echostr": echostr if tamper is None else tamper}
                     if signed else params)
            response = e.send("GET", "/wecom/callback", params=query)
            if signed and tamper is None:
                assert response.status_code == 200 and response.content == echo

        check()


# -- Authing webhook -----------------------------------------------------------------------

EVENT_NAMES = ["user:created", "user:updated", "user:deleted", "organization:created",
               "organization:updated", "register", "login"]


def test_authing_webhook_answers_every_input_with_2xx_or_4xx(db_url: str,
                                                             keys: CallbackKeys) -> None:
    deliveries = st.fixed_dictionaries({}, optional={
        "eventName": st.one_of(st.sampled_from(EVENT_NAMES), json_values),
        "data": json_values})
    with edge(db_url, keys) as e:
        @FUZZ
        @given(delivery=deliveries, form=st.booleans(), raw=st.one_of(
                   st.none(), st.binary(max_size=100),
                   st.sampled_from([b'{"eventName":"user:updated","data":{"id":"\\u0000"}}',
                                    b'{"eventName":"user:updated","data":{"id":"\\ud800"}}',
                                    b'{"eventName":"x","data":' + b"[" * 5000 + b"]" * 5000
                                    + b"}", b'{"eventName":"x","n":' + b"9" * 5000 + b"}",
                                    b"eventName=%00&data=%7B%7D"])),
               secret=st.sampled_from([HOOK_SECRET, HOOK_SECRET, "wrong", ""]))
        def check(delivery: dict[str, Any], form: bool, raw: bytes | None,
                  secret: str) -> None:
            headers = {"x-authing-webhook-secret": secret}
            if raw is not None:
                content = raw
                headers["content-type"] = ("application/x-www-form-urlencoded"
                                           if raw.startswith(b"eventName=")
                                           else "application/json")
            elif form:
                pairs = {k: v if isinstance(v, str) else json.dumps(v)
                         for k, v in delivery.items()}
                content = httpx.QueryParams(pairs).__str__().encode()
                headers["content-type"] = "application/x-www-form-urlencoded"
            else:
                content = json.dumps(delivery).encode()
                headers["content-type"] = "application/json"
            e.send("POST", "/authing/webhook", content=content, headers=headers)

        check()


@pytest.mark.parametrize("body", [
    b'{"eventName":"user:updated","data":{"id":"\\u0000"}}',
    b'{"eventName":"user:updated","data":{"id":"\\ud800"}}',
    b'{"eventName":"user:updated","data":' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"eventName":"user:updated","data":{"id":' + b"9" * 5000 + b"}}",
])
def test_an_unstorable_webhook_is_a_400(db_url: str, keys: CallbackKeys, body: bytes) -> None:
    with edge(db_url, keys) as e:
        response = e.send("POST", "/authing/webhook", content=body,
                          headers={"x-authing-webhook-secret": HOOK_SECRET,
                                   "content-type": "application/json"})
    assert response.status_code == 400, response.text


def test_an_overlong_callback_timestamp_is_a_400(db_url: str, keys: CallbackKeys) -> None:
    with edge(db_url, keys) as e:
        query, content = signed_post(e.crypto, change_contact(
            keys.corp_id, "<ChangeType>delete_user</ChangeType><UserID>a</UserID>"),
            keys.corp_id)
        for stamp in ("9" * 5000, "²", "１２３"):
            response = e.send("POST", "/wecom/callback", params={**query, "timestamp": stamp},
                              content=content)
            assert response.status_code == 400, response.text
