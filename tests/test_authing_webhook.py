"""``POST /authing/webhook``: shared secret, JSON and form bodies, dedupe, scrubbing."""

from __future__ import annotations

import json

import httpx
import pytest

from sync_core.authing.events import MalformedWebhook, parse_delivery

from .conftest import make_settings
from .helpers import running_receiver

OPS = {"Authorization": "Bearer ops-test-token"}
SECRET = "hook-secret"


def _settings(url: str, direction: str = "downstream"):  # type: ignore[no-untyped-def]
    return make_settings(url, authing_webhook_secret=SECRET, direction=direction)


def test_webhook_is_stored_once_per_delivery(db_url: str) -> None:
    body = {"eventName": "user:updated",
            "data": {"user": {"id": "u-1", "externalId": "zhangsan", "password": "hash",
                              "salt": "s"}, "updates": {"name": "张三"}}}
    with running_receiver(_settings(db_url)) as srv:
        first = httpx.post(f"{srv.url}/authing/webhook", json=body,
                           headers={"x-authing-webhook-secret": SECRET})
        again = httpx.post(f"{srv.url}/authing/webhook", json=body,
                           headers={"x-authing-token": SECRET})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS,
                           params={"source": "authing"}).json()["events"]
    assert first.status_code == again.status_code == 200
    assert first.json()["stored"] == 1 and again.json()["stored"] == 0
    assert [(e["entity_kind"], e["entity_key"], e["event_type"]) for e in events] == [
        ("user", "u-1", "user:updated")]


def test_form_encoded_webhook(sqlite_url: str) -> None:
    data = json.dumps({"nodes": [{"id": "d1"}, {"id": "d2"}]})
    with running_receiver(_settings(sqlite_url)) as srv:
        response = httpx.post(f"{srv.url}/authing/webhook",
                              data={"eventName": "organization:node-deleted", "data": data},
                              headers={"x-authing-webhook-secret": SECRET})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS).json()["events"]
    assert response.json()["stored"] == 2
    assert sorted(e["entity_key"] for e in events) == ["d1", "d2"]


@pytest.mark.parametrize("headers, body, status", [
    ({}, b'{"eventName":"user:created","data":{}}', 401),
    ({"x-authing-webhook-secret": "wrong"}, b'{"eventName":"user:created","data":{}}', 401),
    ({"x-authing-webhook-secret": SECRET}, b"not json", 400),
    ({"x-authing-webhook-secret": SECRET}, b'{"data":{}}', 400),
    ({"x-authing-webhook-secret": SECRET}, b'["eventName"]', 400),
    ({"x-authing-webhook-secret": SECRET}, b"\xff\xfe", 400),
])
def test_bad_webhooks_are_refused(sqlite_url: str, headers: dict[str, str], body: bytes,
                                  status: int) -> None:
    with running_receiver(_settings(sqlite_url)) as srv:
        response = httpx.post(f"{srv.url}/authing/webhook", content=body, headers={
            "content-type": "application/json", **headers})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS).json()["events"]
    assert response.status_code == status and events == []


def test_unconfigured_secret_refuses_everything(sqlite_url: str) -> None:
    with running_receiver(make_settings(sqlite_url)) as srv:
        response = httpx.post(f"{srv.url}/authing/webhook", json={"eventName": "x"})
    assert response.status_code == 503


def test_sensitive_fields_are_never_stored() -> None:
    entries = parse_delivery({"eventName": "user:created", "data": {
        "id": "u1", "password": "p", "salt": "s", "identities": [{"accessToken": "t"}]}})
    payload = json.dumps(entries[0].payload)
    assert "password" not in payload and "salt" not in payload and "accessToken" not in payload


def test_delivery_without_event_name_is_malformed() -> None:
    with pytest.raises(MalformedWebhook):
        parse_delivery({"data": {}})


def test_upstream_only_records_webhooks_as_settled(db_url: str) -> None:
    """Downstream off: the webhook (often the echo of our own write) is answered and
    recorded, never queued; switching downstream on later replays nothing."""
    body = {"eventName": "user:updated", "data": {"user": {"id": "u-9"}}}
    with running_receiver(_settings(db_url, "upstream")) as srv:
        response = httpx.post(f"{srv.url}/authing/webhook", json=body,
                              headers={"x-authing-webhook-secret": SECRET})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS,
                           params={"source": "authing"}).json()["events"]
    assert response.status_code == 200 and response.json()["stored"] == 1
    assert [(e["entity_key"], e["status"]) for e in events] == [("u-9", "done")]


@pytest.mark.parametrize("event", ["login", "role:created", "user.updated", "test"])
def test_an_event_we_do_not_apply_is_counted_and_dropped(sqlite_url: str, event: str) -> None:
    with running_receiver(_settings(sqlite_url)) as srv:
        response = httpx.post(f"{srv.url}/authing/webhook",
                              json={"eventName": event, "data": {"id": "x"}},
                              headers={"x-authing-webhook-secret": SECRET})
        events = httpx.get(f"{srv.url}/ops/events", headers=OPS).json()["events"]
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert response.status_code == 200 and response.json()["ignored"] == event
    assert events == []
    assert f'wecom_sync_ignored_events_total{{event_type="{event}"}} 1.0' in metrics


def test_member_events_are_about_the_user() -> None:
    [entry] = parse_delivery({"eventName": "organization:member-added",
                              "data": {"node": {"id": "d1"}, "user": {"id": "u1"}}})
    assert (entry.entity_kind, entry.entity_key) == ("user", "u1")


@pytest.mark.parametrize("direction, wakes", [("downstream", True), ("upstream", False)])
def test_a_stored_webhook_wakes_the_worker(sqlite_url: str, direction: str,
                                           wakes: bool) -> None:
    """As a WeCom callback does: otherwise the event waits for the worker's next poll."""
    from receiver.app import create_app
    from simulators.server import BackgroundServer

    app = create_app(_settings(sqlite_url, direction))
    with BackgroundServer(app) as srv:
        app.state.ctx.wake.clear()
        response = httpx.post(f"{srv.url}/authing/webhook", headers={
            "x-authing-webhook-secret": SECRET}, json={
            "eventName": "user:updated", "data": {"user": {"id": "u-9"}, "updates": {}}})
        assert response.status_code == 200 and response.json()["stored"] == 1
        assert app.state.ctx.wake.is_set() is wakes


@pytest.mark.parametrize("payloads, expected", [
    ([{"eventName": "user:updated", "data": {"updates": {"externalId": "lisi"}}},
      {"eventName": "user:udv-changed", "data": {"udv": {"key": "wechatwork_user_id",
                                                         "value": "lisi"}}}],
     [("externalId", "lisi"), ("wechatwork_user_id", "lisi")]),
    ([{"eventName": "user:updated", "data": {"updates": {"externalId": "x", "name": "N"}}}],
     None),  # another field as well: a real change
    ([{"eventName": "user:updated", "data": {"updates": {}}}], None),  # says nothing
    ([{"eventName": "user:updated", "data": {}}], None),
    ([{"eventName": "organization:member-added", "data": {}}], None),
    ([{"eventName": "user:updated", "data": {"updates": {"externalId": "lisi"}}},
      {"eventName": "user:created", "data": {}}], None),  # folded with a real event
])
def test_write_back_changes_names_only_pure_write_back_updates(
        payloads: list[dict[str, object]], expected: object) -> None:
    from sync_core.authing.events import write_back_changes
    from sync_core.directory.vocabulary import Kind

    assert write_back_changes(Kind.USER, payloads) == expected
