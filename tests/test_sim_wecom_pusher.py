"""The WeCom simulator's callbacks, received, decrypted and parsed by the product's code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from simulators.server import BackgroundServer
from simulators.wecom import WeComSimulator
from simulators.wecom.pusher import DELIVERED, DROPPED, FAILED, HELD, SKIPPED
from sync_core.wecom.crypto import WeComCrypto
from sync_core.wecom.envelope import parse_envelope, parse_xml
from sync_core.wecom.events import PartyChange, TagChange, UserChange, WeComEvent, parse_event
from tests.conftest import CallbackKeys


class Receiver:
    """A callback endpoint: verifies, decrypts and parses like the product does. It answers
    ``statuses`` in turn (then 200), and sleeps ``delays`` seconds on the matching calls."""

    def __init__(self, keys: CallbackKeys, statuses: tuple[int, ...] = (),
                 delays: tuple[float, ...] = ()) -> None:
        self.crypto = WeComCrypto(keys.token, keys.aes_key, keys.corp_id)
        self.corp_id = keys.corp_id
        self.statuses, self.delays = list(statuses), list(delays)
        self.bodies: list[bytes] = []
        self.events: list[WeComEvent] = []
        self.plaintexts: list[bytes] = []
        self.in_flight = self.peak = 0  # callbacks being answered at once, and the most
        self.server = BackgroundServer(Starlette(routes=[
            Route("/callback", self._handle, methods=["POST"])]))

    async def _handle(self, request: Request) -> Response:
        call = len(self.bodies)
        body = await request.body()
        self.bodies.append(body)
        envelope = parse_envelope(body)
        assert envelope.to_user_name == self.corp_id
        root = parse_xml(body)
        assert [child.tag for child in root] == ["ToUserName", "Encrypt", "AgentID"]
        assert root.findtext("AgentID") == ""
        q = request.query_params
        plaintext = self.crypto.decrypt_message(q["msg_signature"], q["timestamp"], q["nonce"],
                                                envelope.encrypt)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if call < len(self.delays):
            await asyncio.sleep(self.delays[call])
        self.in_flight -= 1
        status = self.statuses[call] if call < len(self.statuses) else 200
        if status == 200:
            self.plaintexts.append(plaintext)
            self.events.append(parse_event(plaintext))
        return PlainTextResponse("success" if status == 200 else "no", status_code=status)

    @property
    def url(self) -> str:
        return self.server.url + "/callback"


@pytest.fixture
def receiver(keys: CallbackKeys) -> Iterator[Receiver]:
    recv = Receiver(keys)
    with recv.server:
        yield recv


def make_sim(keys: CallbackKeys, url: str, **options: object) -> WeComSimulator:
    return WeComSimulator(corp_id=keys.corp_id, callback_url=url, callback_token=keys.token,
                          encoding_aes_key=keys.aes_key, **options)  # type: ignore[arg-type]


@pytest.fixture
def sim(keys: CallbackKeys, receiver: Receiver) -> Iterator[WeComSimulator]:
    with make_sim(keys, receiver.url) as simulator:
        yield simulator


def only_events(sim: WeComSimulator, receiver: Receiver) -> list[WeComEvent]:
    sim.pusher.flush(10)
    return receiver.events


# -- full payloads -------------------------------------------------------------------------


def test_create_user_full_payload(sim: WeComSimulator, receiver: Receiver,
                                  keys: CallbackKeys) -> None:
    sim.admin.create_department("研发部", id=2)
    sim.admin.create_user("zhangsan", "张三", [1, 2], mobile="13800000000",
                          email="zs@example.com", gender="1", position="产品经理",
                          is_leader_in_dept=[1, 0], telephone="020-123456",
                          extattr={"attrs": [{"type": 0, "name": "爱好", "text": {"value": "旅游"}},
                                             {"type": 1, "name": "主页", "web": {
                                                 "url": "https://example.com", "title": "主页"}}]})
    events = only_events(sim, receiver)
    assert [e.change_type for e in events] == ["create_party", "create_user"]
    party, user = events
    assert isinstance(party, PartyChange) and party.id == 2 and party.name == "研发部"
    assert party.parent_id == 1 and party.order is not None
    assert isinstance(user, UserChange)
    assert (user.user_id, user.name, user.department) == ("zhangsan", "张三", (1, 2))
    assert user.main_department == 1 and user.is_leader_in_dept == (1, 0)
    assert (user.mobile, user.email, user.gender, user.status) == (
        "13800000000", "zs@example.com", 1, 1)
    assert user.position == "产品经理" and user.telephone == "020-123456"
    assert user.avatar and user.avatar.endswith("/0")
    assert user.ext_attr is not None and user.ext_attr[0].text == "旅游"
    assert user.ext_attr[1].web_url == "https://example.com"
    header = user.header
    assert header.to_user_name == keys.corp_id and header.from_user_name == "sys"
    assert header.msg_type == "event" and header.event == "change_contact"
    assert abs((header.create_time or 0) - time.time()) < 60


def test_update_user_full_payload_carries_only_changed_fields(sim: WeComSimulator,
                                                              receiver: Receiver) -> None:
    sim.admin.create_user("lisi", "李四", mobile="13800000001")
    sim.admin.update_user("lisi", position="经理")
    sim.admin.update_user("lisi", position="经理")  # no change: no callback
    sim.admin.rename_user("lisi", "lisi2")
    sim.admin.disable_user("lisi2")
    sim.admin.delete_user("lisi2")
    events = only_events(sim, receiver)
    assert [e.change_type for e in events] == [
        "create_user", "update_user", "update_user", "update_user", "delete_user"]
    changed, renamed, disabled, deleted = events[1:]
    assert isinstance(changed, UserChange) and changed.position == "经理"
    assert changed.name is None and changed.mobile is None and changed.department is None
    assert isinstance(renamed, UserChange)
    assert (renamed.user_id, renamed.new_user_id, renamed.name) == ("lisi", "lisi2", None)
    assert isinstance(disabled, UserChange) and disabled.status == 2
    assert isinstance(deleted, UserChange) and deleted.user_id == "lisi2"
    assert deleted.department is None


def test_party_and_tag_events_full(sim: WeComSimulator, receiver: Receiver) -> None:
    sim.admin.create_department("A", id=2)
    sim.admin.create_department("B", id=3)
    sim.admin.update_department(3, name="B2")
    sim.admin.update_department(3, parentid=2)
    sim.admin.update_department(3, order=5)  # neither name nor parent: no callback
    sim.admin.create_user("u1", "用户", mobile="13800000002")
    tag = sim.admin.create_tag("经理")
    sim.admin.tag_members(tag, add_users=["u1"], add_parties=[2])
    sim.admin.tag_members(tag, del_users=["u1"])
    sim.admin.delete_department(3)
    events = only_events(sim, receiver)
    assert [e.change_type for e in events] == [
        "create_party", "create_party", "update_party", "update_party", "create_user",
        "update_tag", "update_tag", "delete_party"]
    renamed, moved = events[2], events[3]
    assert isinstance(renamed, PartyChange)
    assert (renamed.id, renamed.name, renamed.parent_id) == (3, "B2", None)
    assert isinstance(moved, PartyChange) and (moved.name, moved.parent_id) == (None, 2)
    added, removed = events[5], events[6]
    assert isinstance(added, TagChange) and added.tag_id == tag
    assert added.add_user_items == ("u1",) and added.add_party_items == (2,)
    assert added.del_user_items is None
    assert isinstance(removed, TagChange) and removed.del_user_items == ("u1",)
    assert isinstance(events[7], PartyChange) and events[7].id == 3


def test_cdata_breaking_text_survives(sim: WeComSimulator, receiver: Receiver) -> None:
    sim.admin.create_user("x1", "名字", mobile="13800000003", position="a]]>b<c>&d")
    (event,) = only_events(sim, receiver)
    assert isinstance(event, UserChange) and event.position == "a]]>b<c>&d"


# -- trimmed payloads (post-2022-08-15) ----------------------------------------------------


def test_trimmed_payloads_carry_ids_only(keys: CallbackKeys, receiver: Receiver) -> None:
    with make_sim(keys, receiver.url, trimmed=True) as sim:
        sim.admin.create_department("研发部", id=2)
        sim.admin.create_user("wangwu", "王五", [1, 2], mobile="13800000004", position="x")
        sim.admin.update_user("wangwu", position="y")
        sim.admin.rename_user("wangwu", "wangwu2")
        sim.admin.update_department(2, name="研发中心")  # a rename: nothing is sent
        sim.admin.create_department("测试部", id=3)
        sim.admin.update_department(3, parentid=2)
        sim.admin.delete_user("wangwu2")
        events = only_events(sim, receiver)
    assert [e.change_type for e in events] == [
        "create_party", "create_user", "update_user", "update_user", "create_party",
        "update_party", "delete_user"]
    created_party, created, updated, renamed, _, moved, deleted = events
    assert isinstance(created_party, PartyChange)
    assert (created_party.id, created_party.parent_id) == (2, 1)
    assert created_party.name is None and created_party.order is None
    assert isinstance(created, UserChange)
    assert (created.user_id, created.department) == ("wangwu", (1, 2))
    assert created.name is None and created.mobile is None and created.position is None
    assert created.status is None and created.main_department is None
    assert isinstance(updated, UserChange) and updated.position is None
    assert updated.department == (1, 2)
    assert isinstance(renamed, UserChange) and renamed.new_user_id == "wangwu2"
    assert isinstance(moved, PartyChange) and (moved.id, moved.parent_id, moved.name) == (
        3, 2, None)
    assert isinstance(deleted, UserChange) and deleted.department is None
    assert b"<Name>" not in b"".join(receiver.plaintexts)


# -- delivery: retries, timeouts, ordering, what is not called back ------------------------


def test_receiver_failing_twice_gets_three_attempts(keys: CallbackKeys) -> None:
    receiver = Receiver(keys, statuses=(500, 503))
    with receiver.server, make_sim(keys, receiver.url) as sim:
        sim.admin.create_user("r1", "重试", mobile="13800000005")
        sim.pusher.flush(10)
        (delivery,) = sim.pusher.deliveries
    assert delivery.outcome == DELIVERED
    assert [a.status for a in delivery.attempts] == [500, 503, 200]
    assert len(set(receiver.bodies)) == 1  # retries resend the same bytes
    assert len(receiver.events) == 1


def test_receiver_always_failing_gets_exactly_three_attempts(keys: CallbackKeys) -> None:
    receiver = Receiver(keys, statuses=(500,) * 10)
    with receiver.server, make_sim(keys, receiver.url) as sim:
        sim.admin.create_user("r2", "放弃", mobile="13800000006")
        sim.admin.create_user("r3", "放弃", mobile="13800000007")
        sim.pusher.flush(10)
        first, second = sim.pusher.deliveries
    assert first.outcome == FAILED and [a.status for a in first.attempts] == [500] * 3
    assert second.outcome == FAILED and len(second.attempts) == 3  # the queue moved on
    assert len(receiver.bodies) == 6


async def test_slow_receiver_times_out_and_is_retried(keys: CallbackKeys) -> None:
    receiver = Receiver(keys, delays=(0.6,))
    with receiver.server, make_sim(keys, receiver.url, callback_timeout=0.2) as sim:
        started = time.monotonic()
        sim.admin.create_user("slow", "慢", mobile="13800000008")
        assert time.monotonic() - started < 0.2  # the admin call does not wait
        await sim.pusher.drain(10)
        (delivery,) = sim.pusher.deliveries
    assert delivery.outcome == DELIVERED
    first, second = delivery.attempts
    assert first.status is None and first.error and "Timeout" in first.error
    assert second.status == 200


def test_callbacks_arrive_in_order(sim: WeComSimulator, receiver: Receiver) -> None:
    for i in range(20):
        sim.admin.create_user(f"o{i:02d}", "顺序", mobile=f"139000000{i:02d}")
    events = only_events(sim, receiver)
    assert [e.entity_key for e in events] == [f"o{i:02d}" for i in range(20)]


def test_api_writes_with_the_contact_secret_are_not_called_back(
        sim: WeComSimulator, receiver: Receiver) -> None:
    client = httpx.Client(base_url=sim.url)
    token = client.get("/cgi-bin/gettoken", params={
        "corpid": sim.corp_id, "corpsecret": "contact-sync-secret"}).json()["access_token"]
    created = client.post("/cgi-bin/user/create", params={"access_token": token}, json={
        "userid": "apiuser", "name": "接口", "department": [1], "mobile": "13800000009"})
    assert created.json()["errcode"] == 0
    client.post("/cgi-bin/department/create", params={"access_token": token},
                json={"name": "接口部", "parentid": 1})
    sim.admin.update_user("apiuser", position="后台修改")  # an admin change is
    events = only_events(sim, receiver)
    assert [(e.change_type, e.entity_key) for e in events] == [("update_user", "apiuser")]


def test_pause_drop_and_skip(keys: CallbackKeys, receiver: Receiver) -> None:
    with make_sim(keys, receiver.url) as sim:
        sim.pusher.pause()
        sim.admin.create_user("p1", "暂停", mobile="13800000010")
        with pytest.raises(RuntimeError):
            sim.pusher.flush(1)
        assert receiver.events == []
        sim.pusher.resume()
        sim.pusher.drop_next(1)
        sim.admin.create_user("p2", "丢失", mobile="13800000011")
        sim.admin.create_user("p3", "送达", mobile="13800000012")
        sim.pusher.flush(10)
        assert [e.entity_key for e in receiver.events] == ["p1", "p3"]
        assert [d.outcome for d in sim.pusher.deliveries] == [DELIVERED, DROPPED, DELIVERED]
    with WeComSimulator(corp_id=keys.corp_id) as unconfigured:
        unconfigured.admin.create_user("n1", "无回调", mobile="13800000013")
        assert [d.outcome for d in unconfigured.pusher.deliveries] == [SKIPPED]
        unconfigured.set_callback(receiver.url, token=keys.token, encoding_aes_key=keys.aes_key)
        unconfigured.admin.delete_user("n1")
        unconfigured.pusher.flush(10)
        assert receiver.events[-1].change_type == "delete_user"


def test_held_callbacks_are_overtaken_and_sent_when_released(keys: CallbackKeys,
                                                            receiver: Receiver) -> None:
    """A callback whose first delivery failed comes later, after those behind it."""
    with make_sim(keys, receiver.url) as sim:
        sim.pusher.hold_next(2)
        sim.admin.create_user("h1", "一", mobile="13800000021")
        sim.admin.create_user("h2", "二", mobile="13800000022")
        sim.admin.create_user("h3", "三", mobile="13800000023")
        sim.pusher.flush(10)
        assert [e.entity_key for e in receiver.events] == ["h3"]
        held = sim.pusher.held
        assert [(d.key, d.outcome) for d in held] == [("h1", HELD), ("h2", HELD)]
        sealed = {d.seq: d.envelope for d in held}
        sim.pusher.release([held[1].seq, held[0].seq])  # and in any order
        sim.pusher.flush(10)
        assert [e.entity_key for e in receiver.events] == ["h3", "h2", "h1"]
        assert sim.pusher.held == []
        assert {d.seq: d.envelope for d in held} == sealed  # the same bytes
        assert [d.outcome for d in sim.pusher.deliveries] == [DELIVERED] * 3


def test_admin_http_routes_are_called_back(sim: WeComSimulator, receiver: Receiver) -> None:
    client = httpx.Client(base_url=sim.url)
    made = client.post("/_admin/departments", json={"name": "运营部", "id": 5})
    assert made.status_code == 200 and made.json()["id"] == 5
    client.post("/_admin/users", json={"userid": "h1", "name": "接口", "department": [5],
                                       "mobile": "13800000014"})
    client.patch("/_admin/users/h1", json={"position": "运营"})
    refused = client.post("/_admin/users", json={"userid": "h1", "name": "重复",
                                                 "mobile": "13800000015"})
    assert refused.status_code == 400 and refused.json()["errcode"] == 60102
    client.delete("/_admin/users/h1")
    client.delete("/_admin/departments/5")
    flushed = client.post("/_admin/deliveries/flush", json={"timeout": 10}).json()
    assert [d["change_type"] for d in flushed["deliveries"]] == [
        "create_party", "create_user", "update_user", "delete_user", "delete_party"]
    assert all(d["outcome"] == DELIVERED for d in flushed["deliveries"])
    assert [e.change_type for e in receiver.events][-1] == "delete_party"


def test_lanes_deliver_side_by_side_and_keep_each_users_order(keys: CallbackKeys) -> None:
    """With 4 lanes callbacks about different users are answered side by side, and each
    user's stay in order."""
    recv = Receiver(keys, delays=(0.2,) * 16)  # each held long enough to overlap
    with recv.server, make_sim(keys, recv.url, callback_lanes=4) as simulator:
        for i in range(8):
            simulator.admin.create_user(f"u{i}", f"用户{i}", [1], email=f"u{i}@example.com")
        for i in range(8):
            simulator.admin.update_user(f"u{i}", name=f"改名{i}")
        simulator.pusher.flush(20)
        events = [e for e in recv.events if isinstance(e, UserChange)]
        assert len(events) == 16
        order = [(e.user_id, e.change_type) for e in events]
        assert recv.peak > 1
        for i in range(8):
            mine = [change for user, change in order if user == f"u{i}"]
            assert mine == ["create_user", "update_user"], (i, order)
    with pytest.raises(ValueError):
        make_sim(keys, "http://127.0.0.1:9/", callback_lanes=0)
