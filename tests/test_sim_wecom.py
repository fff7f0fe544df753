"""The WeCom simulator's contacts API, checked over real HTTP against reference §3."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.wecom import WeComSimulator

CORP_ID = "wwsimtest0001"
SECRET = "contact-secret"
APP_SECRET = "app-secret"


class Wecom:
    """A thin test client: one token, ``call("user/get", userid="x")``."""

    def __init__(self, sim: WeComSimulator, secret: str = SECRET) -> None:
        self.http = httpx.Client(base_url=sim.url, timeout=5)
        self.secret = secret
        self.token = self.gettoken()["access_token"]

    def gettoken(self, **params: str) -> dict[str, Any]:
        query = {"corpid": CORP_ID, "corpsecret": self.secret, **params}
        return self.http.get("/cgi-bin/gettoken", params=query).json()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(f"/cgi-bin/{path}", params={"access_token": self.token, **params})
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any, **params: Any) -> dict[str, Any]:
        response = self.http.post(f"/cgi-bin/{path}", json=body,
                                  params={"access_token": self.token, **params})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def sim() -> Iterator[WeComSimulator]:
    with WeComSimulator(corp_id=CORP_ID, contact_secret=SECRET,
                        app_secrets=[APP_SECRET]) as simulator:
        yield simulator


@pytest.fixture
def wc(sim: WeComSimulator) -> Wecom:
    return Wecom(sim)


def user(userid: str, department: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"userid": userid, "name": f"名{userid}", "department": department or [1],
            "mobile": extra.pop("mobile", f"138{zlib.crc32(userid.encode()) % 10**8:08d}")}
    body.update(extra)
    return body


def errcode(result: dict[str, Any]) -> int:
    return int(result["errcode"])


# -- gettoken ------------------------------------------------------------------------------


def test_gettoken_answers_a_token_valid_for_7200_seconds(wc: Wecom) -> None:
    result = wc.gettoken()
    assert result["errcode"] == 0 and result["errmsg"] == "ok"
    assert result["expires_in"] == 7200
    assert result["access_token"] == wc.token  # cached per (corpid, secret)
    assert errcode(wc.get("department/simplelist")) == 0


@pytest.mark.parametrize(("params", "code"), [
    ({"corpsecret": "wrong"}, 40001),
    ({"corpid": "wwnotmine"}, 40013),
    ({"corpsecret": ""}, 41004),
    ({"corpid": ""}, 41002),
])
def test_gettoken_errors(wc: Wecom, params: dict[str, str], code: int) -> None:
    result = wc.gettoken(**params)
    assert result["errcode"] == code
    assert "access_token" not in result
    assert f"e={code}" in result["errmsg"]  # WeCom's "more info at ...?e=CODE" tail


def test_calls_without_a_valid_token_fail(sim: WeComSimulator, wc: Wecom) -> None:
    assert errcode(wc.http.get("/cgi-bin/user/get", params={"userid": "x"}).json()) == 41001
    bogus = wc.http.get("/cgi-bin/user/get", params={"access_token": "nope", "userid": "x"})
    assert bogus.status_code == 200 and errcode(bogus.json()) == 40014
    sim.tokens.revoke_all()
    assert errcode(wc.get("department/simplelist")) == 40014


def test_a_short_lived_token_expires_with_42001_and_a_new_one_works(sim: WeComSimulator) -> None:
    sim.configure(token_ttl=0.2)
    wc = Wecom(sim)
    assert wc.gettoken()["expires_in"] == 1
    assert errcode(wc.get("department/simplelist")) == 0
    time.sleep(0.25)
    assert errcode(wc.get("department/simplelist")) == 42001
    old = wc.token
    wc.token = wc.gettoken()["access_token"]
    assert wc.token != old
    assert errcode(wc.get("department/simplelist")) == 0


def test_expire_all_forces_42001(sim: WeComSimulator, wc: Wecom) -> None:
    sim.tokens.expire_all()
    assert errcode(wc.get("user/simplelist", department_id=1)) == 42001


# -- departments ---------------------------------------------------------------------------


def test_department_lifecycle(wc: Wecom) -> None:
    created = wc.post("department/create", {"name": "研发部", "parentid": 1, "id": 10})
    assert created == {"errcode": 0, "errmsg": "created", "id": 10}
    auto = wc.post("department/create", {"name": "后端组", "parentid": 10})
    assert auto["errmsg"] == "created" and auto["id"] == 11
    got = wc.get("department/get", id=11)["department"]
    assert got["name"] == "后端组" and got["parentid"] == 10
    assert set(got) == {"id", "name", "name_en", "department_leader", "parentid", "order"}
    assert wc.post("department/update", {"id": 11, "name": "服务端组"}) == {
        "errcode": 0, "errmsg": "updated"}
    listed = wc.get("department/list", id=10)["department"]
    assert [d["id"] for d in listed] == [10, 11]
    simple = wc.get("department/simplelist")["department_id"]
    assert {"id": 11, "parentid": 10, "order": got["order"]} in simple
    assert wc.get("department/delete", id=11) == {"errcode": 0, "errmsg": "deleted"}
    assert errcode(wc.get("department/get", id=11)) == 60123


@pytest.mark.parametrize(("body", "code"), [
    ({"name": "x", "parentid": 999}, 60004),
    ({"name": "x"}, 60004),
    ({"name": "研发部", "parentid": 1}, 60008),  # same name under the same parent
    ({"name": "y", "parentid": 1, "id": 10}, 60008),  # same id
    ({"name": "y", "parentid": 1, "id": 1}, 60123),
    ({"name": "y", "parentid": 1, "id": 2**32}, 60123),  # ids go up to 2^32 - 1 (issue 12)
    ({"name": "", "parentid": 1}, 60001),
    ({"name": "x" * 33, "parentid": 1}, 60001),
    ({"name": "a:b", "parentid": 1}, 60009),
    ({"name": 'a"b', "parentid": 1}, 60009),
    ({"name": "a|b", "parentid": 1}, 60009),
])
def test_department_create_rules(wc: Wecom, body: dict[str, Any], code: int) -> None:
    wc.post("department/create", {"name": "研发部", "parentid": 1, "id": 10})
    assert errcode(wc.post("department/create", body)) == code


def test_department_ids_go_up_to_two_to_the_32_minus_one(wc: Wecom) -> None:
    top = 2**32 - 1
    assert errcode(wc.post("department/create", {"name": "大号", "parentid": 1, "id": top})) == 0
    assert wc.get("department/get", id=top)["department"]["id"] == top


def test_same_name_is_fine_under_another_parent(wc: Wecom) -> None:
    wc.post("department/create", {"name": "研发部", "parentid": 1, "id": 10})
    assert errcode(wc.post("department/create", {"name": "研发部", "parentid": 10})) == 0


def test_department_delete_rules(wc: Wecom) -> None:
    wc.post("department/create", {"name": "A", "parentid": 1, "id": 2})
    wc.post("department/create", {"name": "B", "parentid": 2, "id": 3})
    wc.post("user/create", user("u1", [3]))
    assert errcode(wc.get("department/delete", id=1)) == 60007
    assert errcode(wc.get("department/delete", id=99)) == 60003
    assert errcode(wc.get("department/delete", id=2)) == 60006
    assert errcode(wc.get("department/delete", id=3)) == 60005
    assert errcode(wc.post("department/update", {"id": 99, "name": "x"})) == 60003


def test_departments_nest_at_most_15_levels_and_never_in_a_cycle(wc: Wecom) -> None:
    parent = 1
    for level in range(2, 16):
        assert errcode(wc.post("department/create",
                               {"name": f"L{level}", "parentid": parent, "id": level})) == 0
        parent = level
    assert errcode(wc.post("department/create", {"name": "L16", "parentid": 15})) == 60124
    assert errcode(wc.post("department/update", {"id": 2, "parentid": 9})) == 60010
    assert errcode(wc.post("department/update", {"id": 1, "parentid": 2})) == 60010
    wc.post("department/create", {"name": "side", "parentid": 1, "id": 100})
    wc.post("department/create", {"name": "side2", "parentid": 100, "id": 101})
    # Moving a two-level subtree under level 14 would make 16 levels.
    assert errcode(wc.post("department/update", {"id": 100, "parentid": 14})) == 60124
    assert errcode(wc.post("department/update", {"id": 100, "parentid": 13})) == 0


def test_department_reads_of_a_missing_department(wc: Wecom) -> None:
    assert errcode(wc.get("department/get", id=42)) == 60123
    assert errcode(wc.get("department/list", id=42)) == 60123
    assert errcode(wc.get("department/get", id="abc")) == 60123
    assert errcode(wc.get("user/simplelist", department_id=42)) == 60123


# -- users ---------------------------------------------------------------------------------


def test_user_get_has_the_documented_shape(wc: Wecom) -> None:
    wc.post("department/create", {"name": "研发部", "parentid": 1, "id": 2})
    wc.post("user/create", user("lisi"))
    body = user("zhangsan", [1, 2], mobile="13800000000", email="zhangsan@example.com",
                gender="1", position="产品经理", is_leader_in_dept=[1, 0], order=[5, 6],
                direct_leader=["lisi"], main_department=2, telephone="020-123456",
                alias="Zhang", address="广州市",
                extattr={"attrs": [{"type": 0, "name": "爱好", "text": {"value": "旅游"}}]})
    assert wc.post("user/create", body) == {"errcode": 0, "errmsg": "created"}
    got = wc.get("user/get", userid="zhangsan")
    assert got["errcode"] == 0 and got["errmsg"] == "ok"
    assert got["department"] == [1, 2] and got["order"] == [5, 6]
    assert got["is_leader_in_dept"] == [1, 0] and got["main_department"] == 2
    assert got["direct_leader"] == ["lisi"]
    assert got["gender"] == "1" and isinstance(got["status"], int)
    assert got["status"] == 4  # created through the API: not activated yet
    for key in ("position", "mobile", "email", "biz_mail", "avatar", "thumb_avatar",
                "telephone", "alias", "address", "open_userid", "extattr", "qr_code",
                "external_position", "external_profile"):
        assert key in got
    assert got["extattr"]["attrs"][0]["text"]["value"] == "旅游"
    leaders = wc.get("department/get", id=1)["department"]["department_leader"]
    assert leaders == ["zhangsan"]


def test_user_update_and_delete(sim: WeComSimulator, wc: Wecom) -> None:
    wangwu = sim.admin.join_user("名wangwu", mobile="13800000077")  # a generated userid
    assert wc.post("user/update", {"userid": wangwu, "position": "经理"}) == {
        "errcode": 0, "errmsg": "updated"}
    assert wc.get("user/get", userid=wangwu)["position"] == "经理"
    assert wc.post("user/update", {"userid": wangwu, "enable": 0})["errcode"] == 0
    assert wc.get("user/get", userid=wangwu)["status"] == 2
    assert wc.post("user/update", {"userid": wangwu, "new_userid": "wangwu2"})["errcode"] == 0
    assert errcode(wc.get("user/get", userid=wangwu)) == 60111
    assert wc.get("user/get", userid="wangwu2")["name"] == "名wangwu"
    assert wc.get("user/delete", userid="wangwu2") == {"errcode": 0, "errmsg": "deleted"}
    assert errcode(wc.get("user/delete", userid="wangwu2")) == 60111
    assert errcode(wc.post("user/update", {"userid": "ghost", "name": "x"})) == 60111


def test_user_uniqueness_ignores_userid_case(sim: WeComSimulator, wc: Wecom) -> None:
    wc.post("user/create", user("ZhangSan", mobile="13800000001", email="zs@example.com"))
    assert errcode(wc.post("user/create", user("zhangsan", mobile="13800000009"))) == 60102
    assert errcode(wc.post("user/create", user("other", mobile="13800000001"))) == 60104
    clash = user("other2", mobile="13800000002", email="ZS@example.com")
    assert errcode(wc.post("user/create", clash)) == 60106
    assert wc.get("user/get", userid="ZHANGSAN")["userid"] == "ZhangSan"
    lisi = sim.admin.join_user("李四", mobile="13800000003")
    assert errcode(wc.post("user/update", {"userid": lisi, "mobile": "13800000001"})) == 60104
    assert errcode(wc.post("user/update", {"userid": lisi, "new_userid": "zhangSAN"})) == 60102


@pytest.mark.parametrize(("override", "code"), [
    ({"userid": "-bad"}, 40003),
    ({"userid": "bad id"}, 40003),
    ({"userid": "中文"}, 40003),
    ({"userid": "a" * 65}, 40058),
    ({"userid": ""}, 41009),
    ({"name": ""}, 60112),
    ({"name": "名" * 65}, 60112),
    ({"department": [999]}, 60003),
    ({"department": []}, 40066),
    ({"mobile": "", "email": ""}, 60129),
    ({"mobile": "+86 138"}, 60103),
    ({"email": "not-an-email"}, 60105),
    ({"is_leader_in_dept": [1, 0]}, 60132),
    ({"gender": "3"}, 40058),
    ({"direct_leader": ["nobody"]}, 40031),
])
def test_user_create_rules(wc: Wecom, override: dict[str, Any], code: int) -> None:
    body = {**user("valid.User-1@x"), **override}
    assert errcode(wc.post("user/create", body)) == code


def test_valid_userid_characters_are_accepted(wc: Wecom) -> None:
    assert errcode(wc.post("user/create", user("9a_b-c@d.e"))) == 0
    assert errcode(wc.post("user/create", user("a" * 64, name="长", mobile="13900000000"))) == 0


def test_user_create_without_department_is_refused(wc: Wecom) -> None:
    body = user("nodept")
    del body["department"]
    assert errcode(wc.post("user/create", body)) == 60127


def test_wrong_json_format_answers_ok_with_a_warning_and_does_not_apply(wc: Wecom) -> None:
    wc.post("department/create", {"name": "研发部", "parentid": 1, "id": 2})
    wc.post("user/create", user("trap"))
    result = wc.post("user/update", {"userid": "trap", "department": "2", "position": "x"})
    assert result == {"errcode": 0, "errmsg": "updated. Warning: wrong json format. "}
    got = wc.get("user/get", userid="trap")
    assert got["department"] == [1]  # not applied
    assert got["position"] == "x"  # the well-typed field was
    result = wc.post("user/update", {"userid": "trap", "department": ["2"]})
    assert result["errmsg"] == "updated. Warning: wrong json format. "
    assert wc.get("user/get", userid="trap")["department"] == [1]
    assert wc.post("user/update", {"userid": "trap", "department": [2]})["errmsg"] == "updated"
    assert wc.get("user/get", userid="trap")["department"] == [2]


def test_malformed_bodies(wc: Wecom) -> None:
    raw = wc.http.post("/cgi-bin/user/create", params={"access_token": wc.token},
                       content=b"{not json")
    assert raw.status_code == 200 and errcode(raw.json()) == 40058
    assert errcode(wc.post("user/create", ["a", "list"])) == 40058
    empty = wc.http.post("/cgi-bin/user/update", params={"access_token": wc.token})
    assert errcode(empty.json()) == 40058


def test_changing_departments_keeps_flags_of_kept_departments(wc: Wecom) -> None:
    wc.post("department/create", {"name": "A", "parentid": 1, "id": 2})
    wc.post("department/create", {"name": "B", "parentid": 1, "id": 3})
    wc.post("user/create", user("flags", [1, 2], is_leader_in_dept=[0, 1], order=[7, 8]))
    wc.post("user/update", {"userid": "flags", "department": [2, 3]})
    got = wc.get("user/get", userid="flags")
    assert got["is_leader_in_dept"] == [1, 0] and got["order"] == [8, 0]
    assert got["main_department"] == 2  # the old main department (1) is gone


def test_batchdelete_is_all_or_nothing(wc: Wecom) -> None:
    for name in ("a1", "a2", "a3"):
        wc.post("user/create", user(name))
    refused = wc.post("user/batchdelete", {"useridlist": ["a1", "ghost"]})
    assert errcode(refused) == 40031
    assert errcode(wc.get("user/get", userid="a1")) == 0
    too_many = wc.post("user/batchdelete", {"useridlist": [f"u{i}" for i in range(201)]})
    assert errcode(too_many) == 40032
    assert wc.post("user/batchdelete", {"useridlist": ["a1", "A2"]}) == {
        "errcode": 0, "errmsg": "deleted"}
    assert [u["userid"] for u in wc.get("user/simplelist", department_id=1)["userlist"]] == ["a3"]


def test_simplelist_and_list_are_per_department_only(wc: Wecom) -> None:
    wc.post("department/create", {"name": "A", "parentid": 1, "id": 2})
    wc.post("user/create", user("top"))
    wc.post("user/create", user("child", [2]))
    simple = wc.get("user/simplelist", department_id=1, fetch_child=1)["userlist"]
    assert [u["userid"] for u in simple] == ["top"]  # fetch_child is no longer honoured
    assert set(simple[0]) == {"userid", "name", "department", "open_userid"}
    full = wc.get("user/list", department_id=2)["userlist"]
    assert [u["userid"] for u in full] == ["child"] and "mobile" in full[0]


# -- list_id -------------------------------------------------------------------------------


def test_list_id_walks_every_user_department_pair(sim: WeComSimulator, wc: Wecom) -> None:
    for dept_id in (2, 3, 4):
        wc.post("department/create", {"name": f"D{dept_id}", "parentid": 1, "id": dept_id})
    expected = set()
    for i in range(25):
        departments = [1] if i % 3 else [2, 3, 4]
        wc.post("user/create", user(f"user{i:02d}", departments))
        expected |= {(f"user{i:02d}", d) for d in departments}
    rows: list[tuple[str, int]] = []
    cursor, pages = "", 0
    while True:
        body = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = wc.post("user/list_id", body)
        assert page["errcode"] == 0 and len(page["dept_user"]) <= 4
        rows += [(r["userid"], r["department"]) for r in page["dept_user"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(rows) == len(expected) == 43  # one row per pair, none twice
    assert set(rows) == expected
    assert pages == 11 and len(page["dept_user"]) == 3


def test_list_id_cursor_survives_changes_between_pages(sim: WeComSimulator, wc: Wecom) -> None:
    for i in range(6):
        wc.post("user/create", user(f"p{i}"))
    first = wc.post("user/list_id", {"limit": 3})
    wc.get("user/delete", userid="p3")  # the first row of the next page
    sim.admin.rename_user("p4", "p4renamed")  # the admin console renames any userid
    second = wc.post("user/list_id", {"limit": 3, "cursor": first["next_cursor"]})
    assert [r["userid"] for r in second["dept_user"]] == ["p4renamed", "p5"]
    assert second["next_cursor"] == ""


@pytest.mark.parametrize(("body", "code"), [
    ({"limit": 0}, 40058),
    ({"limit": 10001}, 40058),
    ({"limit": 10, "cursor": "forged"}, 40058),
])
def test_list_id_parameter_rules(wc: Wecom, body: dict[str, Any], code: int) -> None:
    assert errcode(wc.post("user/list_id", body)) == code


def test_list_id_needs_the_contact_sync_secret(sim: WeComSimulator) -> None:
    app = Wecom(sim, APP_SECRET)
    assert errcode(app.post("user/list_id", {"limit": 10})) == 48002
    assert errcode(app.post("user/create", user("nope"))) == 48002
    assert errcode(app.post("department/create", {"name": "x", "parentid": 1})) == 48002
    assert errcode(app.get("user/delete", userid="x")) == 48002
    assert errcode(app.get("department/simplelist")) == 0  # reads are fine


# -- the 2022 restrictions -----------------------------------------------------------------


def test_restricted_reads_block_detail_reads_only(sim: WeComSimulator, wc: Wecom) -> None:
    wc.post("user/create", user("r1"))
    sim.configure(restricted_reads=True)
    assert errcode(wc.get("user/get", userid="r1")) == 48009
    assert errcode(wc.get("user/list", department_id=1)) == 48009
    assert errcode(wc.get("department/list")) == 48009
    assert errcode(wc.get("user/simplelist", department_id=1)) == 0
    assert errcode(wc.get("department/simplelist")) == 0
    assert errcode(wc.get("department/get", id=1)) == 0
    assert errcode(wc.post("user/list_id", {"limit": 10})) == 0


def test_withheld_sensitive_fields(sim: WeComSimulator, wc: Wecom) -> None:
    wc.post("user/create", user("s1", email="s1@example.com", gender="2", address="x"))
    sim.configure(withhold_sensitive=True)
    withheld = {"mobile", "email", "biz_mail", "avatar", "thumb_avatar", "gender", "address",
                "qr_code"}
    got = wc.get("user/get", userid="s1")
    assert withheld.isdisjoint(got) and got["name"] == "名s1"
    listed = wc.get("user/list", department_id=1)["userlist"][0]
    assert withheld.isdisjoint(listed)


# -- limits and faults ---------------------------------------------------------------------


def test_per_minute_rate_limit_is_per_endpoint(sim: WeComSimulator, wc: Wecom) -> None:
    sim.set_rate_limit(3)
    codes = [errcode(wc.get("department/simplelist")) for _ in range(5)]
    assert codes == [0, 0, 0, 45009, 45009]
    assert errcode(wc.get("department/get", id=1)) == 0  # another endpoint's budget


async def test_concurrency_cap_answers_45033(sim: WeComSimulator, wc: Wecom) -> None:
    sim.configure(concurrency_cap=2, latency_ms=400)
    async with httpx.AsyncClient(base_url=sim.url) as client:
        responses = await asyncio.gather(*(
            client.get("/cgi-bin/department/simplelist", params={"access_token": wc.token})
            for _ in range(6)))
    codes = sorted(errcode(r.json()) for r in responses)
    assert codes.count(0) == 2 and codes.count(45033) == 4
    assert sim.limits.gauge.peak == 2


def test_fault_injection_errors_hangs_and_drops(sim: WeComSimulator, wc: Wecom) -> None:
    wc.post("user/create", user("f1"))
    sim.fail_next("user/get", -1, times=2)
    assert [errcode(wc.get("user/get", userid="f1")) for _ in range(3)] == [-1, -1, 0]
    assert errcode(wc.get("department/get", id=1)) == 0  # other endpoints unaffected
    sim.fail_next("user/get", 0, http_status=502, errmsg="bad gateway")
    assert wc.http.get("/cgi-bin/user/get", params={"access_token": wc.token}).status_code == 502
    sim.hang_next("user/get", 0.4)
    with pytest.raises(httpx.ReadTimeout):
        wc.http.get("/cgi-bin/user/get", params={"access_token": wc.token, "userid": "f1"},
                    timeout=0.1)
    sim.drop_next("user/get")
    with pytest.raises(httpx.RemoteProtocolError):
        wc.http.get("/cgi-bin/user/get", params={"access_token": wc.token, "userid": "f1"})
    assert errcode(wc.get("user/get", userid="f1")) == 0


def test_latency_is_added_to_every_call(sim: WeComSimulator, wc: Wecom) -> None:
    sim.configure(latency_ms=50)
    started = time.monotonic()
    wc.get("department/simplelist")
    assert time.monotonic() - started >= 0.05


def test_stats_count_reads_and_writes_per_endpoint(sim: WeComSimulator, wc: Wecom) -> None:
    sim.faults.stats.reset()
    wc.get("department/simplelist")
    wc.post("user/list_id", {"limit": 10})
    assert sim.faults.stats.total_writes == 0
    wc.post("user/create", user("w1"))
    wc.post("user/create", user("w1"))  # refused, but still an attempted write
    assert sim.faults.stats.writes["user/create"] == 2
    assert sim.faults.stats.reads["department/simplelist"] == 1


def test_unknown_api_is_404_json(wc: Wecom) -> None:
    response = wc.http.get("/cgi-bin/user/teleport")
    assert response.status_code == 404 and response.json()["errcode"] == 404


# -- reference §3.6 write rules ------------------------------------------------------------

@pytest.mark.parametrize("body, code", [
    ({"id": 1, "parentid": 0}, 60124), ({"id": 1, "name": "总部", "parentid": 0}, 60124),
    ({"id": 1, "name": "总部", "parentid": 99}, 60124),
    ({"id": 1, "name": "总部", "parentid": 1}, 60010), ({"id": 1, "parentid": 2}, 60010),
])
def test_the_root_is_updated_without_parentid(sim: WeComSimulator, body: dict[str, Any],
                                              code: int) -> None:
    """Reference §3.6: with ``parentid: 0`` the root answers 60124, under a department
    60010, and stays as it was; without ``parentid``, a rename works."""
    w = Wecom(sim)
    assert w.post("department/create", {"name": "研发", "parentid": 1, "id": 2})["errcode"] == 0
    before = w.get("department/get", id=1)["department"]
    assert errcode(w.post("department/update", body)) == code
    assert w.get("department/get", id=1)["department"] == before
    assert w.post("department/update", {"id": 1, "name": "总部"})["errcode"] == 0
    assert w.get("department/get", id=1)["department"]["name"] == "总部"


def test_a_generated_userid_is_renamed_once_and_a_chosen_one_never(sim: WeComSimulator
                                                                   ) -> None:
    """Reference §3.6: ``new_userid`` works for a system-generated userid, once; the
    refusal changes nothing (not even the other fields of the same call)."""
    w = Wecom(sim)
    joined = sim.admin.join_user("赵六", mobile="13800000066")
    assert w.post("user/update", {"userid": joined, "new_userid": "zhaoliu"})["errcode"] == 0
    again = w.post("user/update", {"userid": "zhaoliu", "new_userid": "zhaoliu2",
                                   "position": "经理"})
    assert errcode(again) == 40058
    got = w.get("user/get", userid="zhaoliu")
    assert got["errcode"] == 0 and got["position"] == ""
    w.post("user/create", user("chosen"))
    assert errcode(w.post("user/update", {"userid": "chosen", "new_userid": "chosen"})) == 0
    assert errcode(w.post("user/update", {"userid": "chosen", "new_userid": "Chosen"})) == 40058
    assert w.get("user/get", userid="chosen")["userid"] == "chosen"


def test_no_write_body_is_an_http_error(sim: WeComSimulator) -> None:
    """Whatever a caller sends to a write endpoint, WeCom answers HTTP 200 with an
    errcode: a simulator 500 would hide the product's handling of the real answer."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    w = Wecom(sim)
    w.post("department/create", {"name": "研发", "parentid": 1, "id": 2})
    w.post("user/create", user("zhangsan", [2]))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.sampled_from([0, 1, 2, 3, 2**32, -1]), st.text(max_size=8),
                        st.sampled_from(["zhangsan", "1", "2", "", "研发"]))
    values = st.one_of(scalars, st.lists(scalars, max_size=3),
                       st.dictionaries(st.text(max_size=4), scalars, max_size=2))
    names = st.sampled_from(["id", "name", "parentid", "order", "name_en", "userid",
                             "new_userid", "department", "is_leader_in_dept",
                             "main_department", "mobile", "email", "enable", "useridlist",
                             "direct_leader", "extattr", "gender"])
    paths = st.sampled_from(["department/create", "department/update", "user/create",
                             "user/update", "user/batchdelete"])

    @settings(max_examples=150, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(path=paths, body=st.dictionaries(names, values, max_size=5))
    def check(path: str, body: dict[str, Any]) -> None:
        response = w.http.post(f"/cgi-bin/{path}", json=body,
                               params={"access_token": w.token})
        assert response.status_code == 200, (path, body, response.text)
        assert isinstance(response.json()["errcode"], int)

    check()
    for path, query in (("department/delete", {"id": "1"}), ("department/delete", {"id": "x"}),
                        ("user/delete", {"userid": "nobody"})):
        response = w.http.get(f"/cgi-bin/{path}", params={"access_token": w.token, **query})
        assert response.status_code == 200, response.text
