"""The Authing simulator's fault injection, call counting, webhooks, admin routes and CLI.

Webhooks must fire for API writes as well as admin (console) edits, with Authing's headers
and payload shapes, in JSON or form encoding, and be retried per ``retryConfig``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from simulators.authing import AuthingSimulator
from simulators.authing.testing import ApiClient
from simulators.server import BackgroundServer, free_port

POOL, SECRET, HOOK_SECRET, ORG = "hook-pool", "s3cret", "hook-secret", "wecom"


class Receiver:
    """Records webhook posts; answers 500 to the next ``fail_next`` of them."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        if self.fail_next:
            self.fail_next -= 1
            return PlainTextResponse("not now", 500)
        self.posts.append((dict(request.headers), body))
        return PlainTextResponse("ok")

    def events(self) -> list[tuple[str, Any]]:
        out = []
        for headers, body in self.posts:
            if headers["content-type"].startswith("application/json"):
                doc = json.loads(body)
                out.append((doc["eventName"], doc["data"]))
            else:
                form = parse_qs(body.decode())
                out.append((form["eventName"][0], json.loads(form["data"][0])))
        return out


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with BackgroundServer(rec.app) as srv:
        yield rec, srv.url + "/hook"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthingSimulator]:
    with AuthingSimulator(userpool_id=POOL, secret=SECRET,
                          webhook_retry_delay_scale=0.0) as sim:
        yield sim


@pytest.fixture
def sim(server: AuthingSimulator, receiver: tuple[Receiver, str]) -> AuthingSimulator:
    server.admin.reset()
    receiver[0].posts.clear()
    receiver[0].fail_next = 0
    server.admin.create_organization(ORG, "WeCom", "1")
    server.admin.define_custom_fields("USER", "wechatwork_user_id")
    return server


@pytest.fixture
def api(sim: AuthingSimulator) -> Iterator[ApiClient]:
    client = ApiClient(sim.url, POOL, SECRET, timeout=2.0)
    yield client
    client.close()


def hook(api: ApiClient, url: str, events: list[str], **extra: Any) -> str:
    return str(api.data("POST", "create-webhook", {
        "name": "sync", "url": url, "events": events, "contentType": "application/json",
        "secret": HOOK_SECRET, **extra})["webhookId"])


# faults, latency, counting --------------------------------------------------------------------
def test_injected_errors_are_real_http_statuses(sim: AuthingSimulator, api: ApiClient) -> None:
    api.token()
    sim.admin.fail("get-organization", http_status=429)
    sim.admin.fail(None, http_status=503, times=2)
    query = {"organizationCode": ORG}
    statuses = [api.http.get("/api/v3/get-organization", params=query,
                             headers=api.headers()).status_code for _ in range(4)]
    assert statuses == [429, 503, 503, 200]


def test_hang_outlasts_the_client_timeout(sim: AuthingSimulator, api: ApiClient) -> None:
    api.token()
    sim.admin.hang("get-user", seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        api.http.get("/api/v3/get-user", params={"userId": "x"}, headers=api.headers(),
                     timeout=0.2)


def test_drop_closes_the_connection(sim: AuthingSimulator, api: ApiClient) -> None:
    api.token()
    sim.admin.drop("list-users")
    # Closed with no reply: seen as a protocol error, or as a reset when the close races
    # the request on a loaded machine. Either way no answer came back.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.http.post("/api/v3/list-users", json={}, headers=api.headers())
    assert api.post("list-users")["statusCode"] == 200


def test_latency_is_added_to_every_call(sim: AuthingSimulator, api: ApiClient) -> None:
    api.token()
    sim.admin.set_latency(20)
    started = time.perf_counter()
    for _ in range(5):
        api.get("get-organization", {"organizationCode": ORG})
    assert time.perf_counter() - started >= 0.1
    sim.admin.set_latency(0)


def test_reads_and_writes_are_counted_per_endpoint(sim: AuthingSimulator,
                                                   api: ApiClient) -> None:
    api.token()
    sim.stats.reset()
    api.post("list-users")
    api.get("get-user", {"userId": "nope"})
    assert sim.stats.total_writes == 0 and sim.stats.reads["list-users"] == 1
    api.post("create-user", {"username": "u"})
    assert sim.stats.writes["create-user"] == 1
    assert sim.admin.stats()["totalReads"] == 2


# webhooks ------------------------------------------------------------------------------------
def test_api_writes_fire_json_webhooks_with_authing_headers(
        sim: AuthingSimulator, api: ApiClient, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    hook(api, url, ["user:created", "user:updated"])
    user = api.data("POST", "create-user", {"username": "zs", "externalId": "zhangsan"})
    api.data("POST", "update-user", {"userId": user["userId"], "name": "张三"})
    assert sim.webhooks.drain()
    headers, _ = rec.posts[0]
    assert headers["x-authing-webhook-secret"] == HOOK_SECRET
    assert headers["x-authing-token"] == HOOK_SECRET
    assert headers["x-authing-userpool-id"] == POOL
    assert headers["user-agent"] == "authing-webhook@2.0"
    (created, data), (updated, change) = rec.events()
    assert created == "user:created"
    assert data["id"] == user["userId"] and data["externalId"] == "zhangsan"
    assert data["userPoolId"] == POOL
    assert updated == "user:updated" and change["updates"] == {"name": "张三"}
    assert change["user"]["name"] == "张三"


def test_form_encoded_webhook(sim: AuthingSimulator, api: ApiClient,
                              receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    hook(api, url, ["user:created"], contentType="application/x-www-form-urlencoded")
    api.data("POST", "create-user", {"username": "u"})
    assert sim.webhooks.drain()
    headers, _ = rec.posts[0]
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert rec.events()[0][1]["username"] == "u"


def test_admin_edits_fire_only_subscribed_events(sim: AuthingSimulator,
                                                 receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sim.admin.add_webhook(url, HOOK_SECRET, events=["user:deleted"])
    user = sim.admin.create_user(username="u", externalId="u")
    sim.admin.delete_user("u", "external_id")
    assert sim.webhooks.drain()
    [(name, data)] = rec.events()
    assert name == "user:deleted" and [u["id"] for u in data["users"]] == [user["userId"]]


def test_organization_event_shapes(sim: AuthingSimulator, api: ApiClient,
                                   receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sim.admin.add_webhook(url, HOOK_SECRET)  # every event
    base = {"organizationCode": ORG, "parentDepartmentId": "1",
            "departmentIdType": "open_department_id"}
    a = api.data("POST", "create-department", {**base, "name": "A", "openDepartmentId": "2"})
    b = api.data("POST", "create-department", {**base, "name": "B", "openDepartmentId": "3"})
    user = api.data("POST", "create-user", {"username": "u", "departmentIds": [
        a["departmentId"]], "customData": {"wechatwork_user_id": "u"}})
    api.data("POST", "update-department", {"organizationCode": ORG, "departmentId": "3",
                                           "departmentIdType": "open_department_id",
                                           "parentDepartmentId": a["departmentId"]})
    api.data("POST", "set-user-departments", {"userId": user["userId"], "departments": []})
    api.data("POST", "delete-department", {"organizationCode": ORG,
                                           "departmentId": b["departmentId"]})
    api.data("POST", "update-user", {"userId": user["userId"],
                                     "customData": {"wechatwork_user_id": "v"}})
    assert sim.webhooks.drain()
    events = rec.events()
    names = [name for name, _ in events]
    assert names == ["organization:node-added", "organization:node-added", "user:created",
                     "organization:member-added", "organization:node-moved",
                     "organization:member-removed", "organization:node-deleted",
                     "user:updated", "user:udv-changed"]
    added = events[0][1]
    assert added["node"]["id"] == a["departmentId"] and {"organization", "parentNode"} <= set(
        added)
    moved = events[4][1]
    assert moved["parentNode"]["id"] == a["departmentId"] and moved["oldParent"]["isRoot"]
    assert events[3][1]["user"]["id"] == user["userId"]
    assert events[6][1]["nodes"][0]["id"] == b["departmentId"]
    assert events[8][1]["udf"]["key"] == "wechatwork_user_id"


def test_retry_then_success(sim: AuthingSimulator, api: ApiClient,
                            receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.fail_next = 2
    webhook_id = hook(api, url, ["user:created"],
                      retryConfig={"enabled": True, "count": 3, "delay": 1,
                                   "delayUnit": "Second"})
    api.data("POST", "create-user", {"username": "u"})
    assert sim.webhooks.drain()
    attempts = sim.webhooks.received(success=False)
    assert [(a.attempt, a.success, a.response_status) for a in attempts] == [
        (1, False, 500), (2, False, 500), (3, True, 200)]
    logs = api.data("POST", "get-webhook-logs", {"webhookId": webhook_id})
    assert logs["totalCount"] == 3 and len(rec.posts) == 1


def test_no_retry_without_retry_config(sim: AuthingSimulator, api: ApiClient,
                                       receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.fail_next = 1
    hook(api, url, ["user:created"])
    api.data("POST", "create-user", {"username": "u"})
    assert sim.webhooks.drain()
    assert len(sim.webhooks.received(success=False)) == 1 and rec.posts == []


def test_seeding_is_silent(sim: AuthingSimulator, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    sim.admin.add_webhook(url, HOOK_SECRET)
    sim.admin.seed_users([{"username": f"u{i}"} for i in range(100)])
    assert sim.webhooks.drain() and rec.posts == []


def test_webhook_registration_validation(api: ApiClient) -> None:
    body = {"name": "x", "url": "http://127.0.0.1/h", "events": ["user.created"],
            "contentType": "application/json"}
    assert api.post("create-webhook", body)["statusCode"] == 400
    webhook_id = api.data("POST", "create-webhook", {**body, "events": ["user:created"]})[
        "webhookId"]
    api.data("POST", "update-webhook", {"webhookId": webhook_id, "enabled": False})
    assert api.data("GET", "get-webhook", {"webhookId": webhook_id})["enabled"] is False
    assert api.data("GET", "list-webhooks", {"page": 1, "limit": 10})["totalCount"] == 1
    api.data("POST", "delete-webhook", {"webhookIds": [webhook_id]})
    assert api.get("get-webhook", {"webhookId": webhook_id})["statusCode"] == 404


# admin routes, scale, CLI ----------------------------------------------------------------------
def test_admin_http_routes(sim: AuthingSimulator) -> None:
    with httpx.Client(base_url=sim.url) as http:
        seeded = http.post("/_admin/seed/users", json={"list": [
            {"username": f"u{i}", "externalId": f"e{i}"} for i in range(3)]}).json()
        assert len(seeded["data"]["userIds"]) == 3
        bad = http.post("/_admin/users", json={"name": "no identity"})
        assert bad.status_code == 400
        http.post("/_admin/faults", json={"endpoint": "list-users", "http_status": 502})
        assert http.get("/_admin/state").json()["data"]["users"] == 3
        assert http.post("/api/v3/list-users", json={}).status_code == 502
        assert http.get("/_admin/stats").json()["data"]["reads"]["list-users"] == 1


def test_paging_a_large_pool_stays_fast(sim: AuthingSimulator, api: ApiClient) -> None:
    sim.admin.seed_users([{"username": f"u{i}", "externalId": f"e{i}"} for i in range(20_000)])
    started = time.perf_counter()
    seen = 0
    for page in range(380, 402):
        data = api.data("POST", "list-users", {"options": {"pagination": {
            "page": page, "limit": 50}}})
        seen += len(data["list"])
    assert seen == 20_000 - 379 * 50 and data["totalCount"] == 20_000
    assert time.perf_counter() - started < 2.0


def test_cli_serves_in_the_foreground() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.authing.cli", "--port", str(port),
         "--userpool-id", POOL, "--secret", SECRET, "--organization-code", ORG],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url + "/_admin/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        client = ApiClient(url, POOL, SECRET)
        org = client.data("GET", "get-organization", {"organizationCode": ORG})
        assert org["openDepartmentId"] == "1"
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_webhook_url_given_at_construction(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.posts.clear()
    sim = AuthingSimulator(userpool_id=POOL, webhook_url=url, webhook_secret=HOOK_SECRET,
                           webhook_content_type="application/x-www-form-urlencoded",
                           organization_code=ORG)
    try:
        sim.admin.create_department(ORG, "Sales", openDepartmentId="2")
        assert sim.webhooks.drain()
    finally:
        sim.stop()
    names = [name for name, _ in rec.events()]
    assert names == ["organization:created", "organization:node-added"]
    assert rec.posts[0][0]["x-authing-webhook-secret"] == HOOK_SECRET


def test_an_outage_fails_every_call_until_it_ends(sim: AuthingSimulator) -> None:
    with httpx.Client(base_url=sim.url) as http:
        http.post("/_admin/faults", json={"endpoint": "list-users", "http_status": 503,
                                          "seconds": 0.6})
        answers = [http.post("/api/v3/list-users", json={}).status_code for _ in range(5)]
        assert answers == [503] * 5  # not counted down: every call while it lasts
        assert http.post("/api/v3/get-organization", json={}).status_code != 503
        time.sleep(0.7)
        assert http.post("/api/v3/list-users", json={}).status_code != 503


def test_lanes_keep_each_users_deliveries_in_order(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.posts.clear()
    sim = AuthingSimulator(userpool_id=POOL, webhook_url=url, webhook_secret=HOOK_SECRET,
                           organization_code=ORG, webhook_lanes=4)
    try:
        ids = [sim.admin.create_user(username=f"lane{i}", name=f"道{i}")["userId"]
               for i in range(12)]
        for i, user_id in enumerate(ids):
            sim.admin.update_user(user_id, name=f"改{i}")
        assert sim.webhooks.drain()
    finally:
        sim.stop()
    events = [(name, data) for name, data in rec.events() if name.startswith("user:")]
    assert len(events) == 24
    for user_id in ids:
        mine = [name for name, data in events
                if (data.get("user") or data).get("id") == user_id]
        assert mine == ["user:created", "user:updated"], (user_id, mine)
    with pytest.raises(ValueError):
        AuthingSimulator(userpool_id=POOL, webhook_lanes=0)


def test_api_calls_are_answered_while_an_admin_drain_waits(sim: AuthingSimulator,
                                                           api: ApiClient) -> None:
    """``/_admin/webhooks/drain`` waits for deliveries without holding the event loop:
    the service's API calls go on being answered meanwhile (a drain that blocked the loop
    froze every call of a load test until the last webhook was delivered)."""
    gate = threading.Event()
    held = threading.Event()

    async def slow_hook(request: Request) -> PlainTextResponse:
        await request.body()
        held.set()
        await asyncio.to_thread(gate.wait, 10.0)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hook", slow_hook, methods=["POST"])])
    with BackgroundServer(app) as slow, \
            httpx.Client(base_url=sim.url, timeout=15.0) as admin_http:
        hook(api, slow.url + "/hook", ["user:created"])
        user_id = api.data("POST", "create-user", {"username": "waits", "name": "等"})["userId"]
        assert held.wait(5.0)  # the delivery is in the receiver's hands, not finished
        drained: list[Any] = []
        drainer = threading.Thread(target=lambda: drained.append(admin_http.post(
            "/_admin/webhooks/drain", json={"timeout": 10.0}).json()))
        drainer.start()
        try:
            for _ in range(6):  # over a second, the drain having arrived meanwhile
                answer = api.get("get-user", {"userId": user_id})  # 2 s client timeout
                assert answer["statusCode"] == 200 and answer["data"]["userId"] == user_id
                time.sleep(0.2)
            assert drainer.is_alive() and not drained  # the drain still waits
        finally:
            gate.set()
            drainer.join(15.0)
    assert drained and drained[0]["data"] == {"drained": True}
