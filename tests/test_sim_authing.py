"""The Authing simulator answers like real Authing (reference/authing-api.md §1-§3), over HTTP.

Each rule the product depends on has a test: the envelope, the token and pool header,
limits, one-of username/phone/email, uniqueness, custom-field definitions and the 1024 limit,
delete-department refusals, not-found answers, id types, paging, membership replace, resign.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.authing import AuthingSimulator
from simulators.authing.testing import ApiClient

POOL, SECRET = "pool-under-test", "s3cret"
ORG = "wecom"


class Clock:
    """Seconds, moved by hand: token expiry without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[AuthingSimulator]:
    with AuthingSimulator(userpool_id=POOL, secret=SECRET, clock=clock, token_ttl=600) as sim:
        yield sim


@pytest.fixture
def sim(server: AuthingSimulator) -> AuthingSimulator:
    server.admin.reset()
    server.admin.create_organization(ORG, "WeCom", "1")
    server.admin.define_custom_fields("USER", "wechatwork_user_id", "wechatwork_department_ids")
    server.admin.define_custom_fields("DEPARTMENT", "wechatwork_department_id")
    return server


@pytest.fixture
def api(sim: AuthingSimulator) -> Iterator[ApiClient]:
    client = ApiClient(sim.url, POOL, SECRET)
    yield client
    client.close()


def fails(envelope: dict[str, Any], status: int, message: str | None = None) -> None:
    assert envelope["statusCode"] == status, envelope
    assert envelope["apiCode"] and envelope["requestId"] and envelope["data"] is None
    if message is not None:
        assert envelope["message"] == message


def dept(api: ApiClient, name: str, open_id: str, parent: str = "1", **extra: Any) -> Any:
    return api.data("POST", "create-department", {
        "organizationCode": ORG, "name": name, "parentDepartmentId": parent,
        "departmentIdType": "open_department_id", "openDepartmentId": open_id, **extra})


# token, pool header, envelope ---------------------------------------------------------------
def test_token_is_a_jwt_scoped_to_the_pool(sim: AuthingSimulator) -> None:
    import base64
    import json
    body = httpx.post(sim.url + "/api/v3/get-management-token",
                      json={"accessKeyId": POOL, "accessKeySecret": SECRET}).json()
    assert body["statusCode"] == 200 and body["message"]
    assert body["data"]["expires_in"] == 600
    payload = body["data"]["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["scoped_userpool_id"] == POOL and claims["exp"] > time.time()


def test_wrong_secret_gets_no_token(sim: AuthingSimulator) -> None:
    response = httpx.post(sim.url + "/api/v3/get-management-token",
                          json={"accessKeyId": POOL, "accessKeySecret": "nope"})
    assert response.status_code == 200
    fails(response.json(), 401)


@pytest.mark.parametrize("headers", [
    {},
    {"x-authing-userpool-id": POOL},
    {"authorization": "Bearer not.a.jwt", "x-authing-userpool-id": POOL},
    {"authorization": "Basic abc", "x-authing-userpool-id": POOL},
])
def test_calls_without_a_valid_token_are_refused_in_the_body(
        sim: AuthingSimulator, headers: dict[str, str]) -> None:
    response = httpx.get(sim.url + "/api/v3/get-organization",
                         params={"organizationCode": ORG}, headers=headers)
    assert response.status_code == 200  # business errors live in the body
    fails(response.json(), 401)


def test_pool_header_must_match_the_token(sim: AuthingSimulator, api: ApiClient) -> None:
    for pool in (None, "another-pool"):
        headers = {"authorization": f"Bearer {api.token()}"}
        if pool:
            headers["x-authing-userpool-id"] = pool
        body = api.http.get("/api/v3/get-organization", params={"organizationCode": ORG},
                            headers=headers).json()
        fails(body, 401)
        assert "x-authing-userpool-id" in body["message"]


def test_token_expires(sim: AuthingSimulator, api: ApiClient, clock: Clock) -> None:
    assert api.get("get-organization", {"organizationCode": ORG})["statusCode"] == 200
    clock.now += 601
    body = api.get("get-organization", {"organizationCode": ORG})
    fails(body, 401)
    assert "expired" in body["message"]


def test_success_envelope(api: ApiClient) -> None:
    body = api.get("get-organization", {"organizationCode": ORG})
    assert body["statusCode"] == 200 and body["message"] and "apiCode" not in body
    org = body["data"]
    assert org["organizationCode"] == ORG and org["openDepartmentId"] == "1"


# users: required fields, formats, uniqueness ---------------------------------------------------
@pytest.mark.parametrize("body,message", [
    ({"name": "nobody", "externalId": "x"},
     "Must contain one of the following fields: username, phone, email"),
    ({"email": "test1@qqq"}, "参数 email 格式错误"),
    ({"email": "a@b.com", "phoneCountryCode": "+86"}, "phone cannot be empty"),
    ({"username": "u", "status": "Frozen"}, "参数 status 格式错误"),
    ({"username": "u", "gender": "X"}, "参数 gender 格式错误"),
    ({"username": "u", "departmentIDs": []}, "property departmentIDs should not exist"),
])
def test_create_user_validation(api: ApiClient, body: dict[str, Any], message: str) -> None:
    fails(api.post("create-user", body), 400, message)


@pytest.mark.parametrize("field,value,clash,api_code", [
    ("externalId", "zs", "zs", 2026),
    ("email", "zs@example.com", "ZS@Example.com", 2200),
    ("phone", "13800000000", "13800000000", 2035),
    ("username", "zhangsan", "zhangsan", 2034),
])
def test_unique_keys(api: ApiClient, field: str, value: str, clash: str, api_code: int) -> None:
    api.data("POST", "create-user", {"username": "first", field: value})
    body = api.post("create-user", {"username": "second", field: clash} if field != "username"
                    else {field: clash})
    fails(body, 400)
    assert body["apiCode"] == api_code and field in body["message"]
    other = api.data("POST", "create-user", {"username": "third"})
    fails(api.post("update-user", {"userId": other["userId"], field: clash}), 400)


def test_batch_is_checked_whole_before_any_write(api: ApiClient, sim: AuthingSimulator) -> None:
    body = api.post("create-users-batch", {"list": [
        {"username": "a", "externalId": "dup"}, {"username": "b", "externalId": "dup"}]})
    fails(body, 400)
    assert sim.state.counts()["users"] == 0
    fails(api.post("create-users-batch", {"list": [{"username": f"u{i}"} for i in range(51)]}),
          400)
    assert len(api.data("POST", "create-users-batch",
                        {"list": [{"username": f"u{i}"} for i in range(50)]})) == 50


def test_custom_data_needs_defined_keys_and_short_values(api: ApiClient) -> None:
    fails(api.post("create-user", {"username": "u", "customData": {"undefined_key": "x"}}), 400)
    fails(api.post("create-user", {"email": "test1@qq.com",
                                   "customData": {"wechatwork_user_id": "hello" * 205}}),
          400, "customData must be less than 1024 characters")
    user = api.data("POST", "create-user", {
        "username": "u", "customData": {"wechatwork_user_id": "x" * 1023}})
    assert user["customData"]["wechatwork_user_id"] == "x" * 1023
    fails(api.post("create-department", {
        "organizationCode": ORG, "name": "d", "parentDepartmentId": "root",
        "customData": {"wechatwork_user_id": "1"}}), 400)  # a USER key, not a DEPARTMENT one


def test_custom_fields_define_read_and_set_data(api: ApiClient) -> None:
    fields = api.data("POST", "set-custom-fields", {"list": [
        {"targetType": "USER", "key": "title", "dataType": "STRING", "label": "Title"}]})
    assert fields[0]["key"] == "title"
    fails(api.post("set-custom-fields", {"list": [
        {"targetType": "USER", "key": "title", "dataType": "NUMBER", "label": "T"}]}), 400)
    fails(api.post("set-custom-fields", {"list": [
        {"targetType": "USER", "key": "email", "dataType": "STRING", "label": "E"}]}), 400)
    keys = {f["key"] for f in api.data("GET", "get-custom-fields", {"targetType": "USER"})}
    assert {"title", "wechatwork_user_id"} <= keys
    user = api.data("POST", "create-user", {"username": "u"})
    api.data("POST", "set-custom-data", {"targetType": "USER", "targetIdentifier": user["userId"],
                                         "list": [{"key": "title", "value": "CTO"}]})
    assert api.data("GET", "get-custom-data", {"targetType": "USER",
                                               "targetIdentifier": user["userId"]}) == {
        "title": "CTO"}


# not found ----------------------------------------------------------------------------------
def test_unknown_user_is_404(api: ApiClient) -> None:
    fails(api.get("get-user", {"userId": "nope"}), 404, "用户不存在")
    fails(api.post("update-user", {"userId": "nope", "name": "x"}), 404, "用户不存在")
    fails(api.get("get-user-departments", {"userId": "nope"}), 404, "用户不存在")
    fails(api.post("delete-users-batch", {"userIds": ["nope"]}), 404, "用户不存在")


def test_unknown_or_malformed_organization(api: ApiClient) -> None:
    fails(api.get("get-organization", {"organizationCode": "nope"}), 404,
          "organization not found for code: nope")
    fails(api.post("create-department", {"organizationCode": "nope", "name": "d",
                                         "parentDepartmentId": "root"}), 404,
          "organization not found for code: nope")
    fails(api.post("create-organization", {"organizationCode": "x" * 65,
                                           "organizationName": "X"}),
          400, "参数 organizationCode 格式错误")


# limits ---------------------------------------------------------------------------------------
def test_limit_at_most_50(api: ApiClient) -> None:
    fails(api.post("list-users", {"options": {"pagination": {"page": 1, "limit": 51}}}), 400,
          "limit must less than 50")
    fails(api.get("list-users", {"page": 1, "limit": 51}), 400, "limit must less than 50")
    fails(api.get("list-department-members", {"organizationCode": ORG, "departmentId": "root",
                                              "limit": 51}), 400, "limit must less than 50")
    assert api.post("list-users", {"options": {"pagination": {"limit": 50}}})["statusCode"] == 200


def test_empty_user_ids(api: ApiClient) -> None:
    fails(api.post("delete-users-batch", {"userIds": []}), 400, "参数 userIds 格式错误")
    fails(api.get("get-user-batch", {"userIds": ""}), 400, "参数 userIds 格式错误")


# id types ---------------------------------------------------------------------------------------
def test_external_id_and_open_department_id_addressing(api: ApiClient) -> None:
    sales = dept(api, "Sales", "2")
    east = dept(api, "East", "3", parent="2")
    assert east["parentDepartmentId"] == sales["departmentId"]
    user = api.data("POST", "create-user", {
        "username": "zs", "externalId": "zhangsan", "departmentIds": ["3"],
        "options": {"departmentIdType": "open_department_id"}})
    assert user["departmentIds"] == [east["departmentId"]]
    api.data("POST", "update-user", {"userId": "zhangsan", "name": "张三",
                                     "options": {"userIdType": "external_id"}})
    got = api.data("GET", "get-user", {"userId": "zhangsan", "userIdType": "external_id",
                                       "withDepartmentIds": "true"})
    assert got["name"] == "张三" and got["departmentIds"] == [east["departmentId"]]
    assert "customData" not in got
    found = api.data("GET", "get-department", {"organizationCode": ORG, "departmentId": "3",
                                               "departmentIdType": "open_department_id"})
    assert found["departmentId"] == east["departmentId"] and found["membersCount"] == 1
    api.data("POST", "update-department", {"organizationCode": ORG, "departmentId": "3",
                                           "departmentIdType": "open_department_id",
                                           "name": "East 2"})
    root = api.data("GET", "get-department", {"organizationCode": ORG, "departmentId": "root"})
    assert root["openDepartmentId"] == "1" and root["hasChildren"]
    fails(api.post("create-department", {
        "organizationCode": ORG, "name": "Dup", "parentDepartmentId": "root",
        "openDepartmentId": "2"}), 400)


def test_open_department_id_is_unique_per_organization_only(api: ApiClient) -> None:
    dept(api, "A", "2")
    api.data("POST", "create-organization", {"organizationCode": "other",
                                             "organizationName": "Other"})
    api.data("POST", "create-department", {"organizationCode": "other", "name": "A",
                                           "parentDepartmentId": "root", "openDepartmentId": "2"})


def test_get_user_batch_accepts_repeated_and_comma_separated_ids(api: ApiClient) -> None:
    ids = [api.data("POST", "create-user", {"username": f"u{i}"})["userId"] for i in range(3)]
    repeated = api.data("GET", "get-user-batch", [("userIds", i) for i in ids])
    comma = api.data("GET", "get-user-batch", {"userIds": ",".join(ids)})
    assert [u["userId"] for u in repeated] == [u["userId"] for u in comma] == ids


# listing --------------------------------------------------------------------------------------
def test_paging_visits_every_user_once(api: ApiClient, sim: AuthingSimulator) -> None:
    sim.admin.seed_users([{"username": f"u{i}", "externalId": f"e{i}"} for i in range(120)])
    seen: list[str] = []
    for page in (1, 2, 3, 4):
        data = api.data("POST", "list-users", {"options": {"pagination": {
            "page": page, "limit": 50}}})
        assert data["totalCount"] == 120
        seen += [u["externalId"] for u in data["list"]]
    assert len(seen) == len(set(seen)) == 120


def test_advanced_filter(api: ApiClient, sim: AuthingSimulator) -> None:
    sim.admin.seed_users([{"username": f"u{i}", "externalId": f"e{i}",
                           "customData": {"wechatwork_user_id": f"w{i}"}} for i in range(10)])
    api.data("POST", "update-user", {"userId": "e3", "status": "Suspended",
                                     "options": {"userIdType": "external_id"}})

    def ext_ids(filters: list[dict[str, Any]]) -> set[str]:
        data = api.data("POST", "list-users", {"advancedFilter": filters,
                                               "options": {"withCustomData": True}})
        return {u["externalId"] for u in data["list"]}

    assert ext_ids([{"field": "externalId", "operator": "IN",
                     "value": ["e1", "e2", "missing"]}]) == {"e1", "e2"}
    assert ext_ids([{"field": "status", "operator": "EQUAL", "value": "Suspended"}]) == {"e3"}
    assert ext_ids([{"field": "wechatwork_user_id", "operator": "EQUAL", "value": "w4"}]) == {
        "e4"}
    assert ext_ids([{"field": "username", "operator": "EQUAL", "value": "u5"}]) == {"e5"}
    fails(api.post("list-users", {"advancedFilter": [
        {"field": "nonsense", "operator": "EQUAL", "value": 1}]}), 400)


def test_legacy_list_users_since(api: ApiClient, sim: AuthingSimulator, clock: Clock) -> None:
    sim.admin.seed_users([{"username": f"u{i}"} for i in range(5)])
    clock.now += 10
    since = int(clock.now)
    api.data("POST", "update-user", {"userId": "u2", "name": "changed",
                                     "options": {"userIdType": "username"}})
    data = api.data("GET", "list-users", {"page": 1, "limit": 10, "updatedAtStart": since})
    assert [u["username"] for u in data["list"]] == ["u2"]


def test_updated_at_moves_only_on_real_change(api: ApiClient) -> None:
    user = api.data("POST", "create-user", {"username": "u", "name": "A"})
    same = api.data("POST", "update-user", {"userId": user["userId"], "name": "A"})
    assert same["updatedAt"] == user["updatedAt"]
    changed = api.data("POST", "update-user", {"userId": user["userId"], "name": "B"})
    assert changed["updatedAt"] > user["updatedAt"]


# membership, departments, resign ----------------------------------------------------------------
def test_set_user_departments_replaces(api: ApiClient) -> None:
    a, b, c = (dept(api, n, i) for n, i in (("A", "2"), ("B", "3"), ("C", "4")))
    user = api.data("POST", "create-user", {"username": "u", "externalId": "u",
                                            "departmentIds": [a["departmentId"]]})
    api.data("POST", "set-user-departments", {"userId": "u", "options": {
        "userIdType": "external_id"}, "departments": [
        {"departmentId": b["departmentId"], "isLeader": True, "isMainDepartment": True},
        {"departmentId": c["departmentId"]}]})
    got = api.data("GET", "get-user", {"userId": user["userId"], "withDepartmentIds": True})
    assert got["departmentIds"] == [b["departmentId"], c["departmentId"]]
    assert got["mainDepartmentId"] == b["departmentId"]
    rows = api.data("GET", "get-user-departments", {"userId": user["userId"]})["list"]
    assert {(r["openDepartmentId"], r["isLeader"], r["isMainDepartment"]) for r in rows} == {
        ("3", True, True), ("4", False, False)}
    leaders = api.data("GET", "get-department", {"organizationCode": ORG,
                                                 "departmentId": b["departmentId"]})
    assert leaders["leaderUserIds"] == [user["userId"]]
    fails(api.post("set-user-departments", {"userId": user["userId"], "departments": [
        {"departmentId": "root"}]}), 404)
    fails(api.post("set-user-departments", {"userId": user["userId"], "departments": [
        {"departmentId": a["departmentId"]}] * 51}), 400)


def test_delete_department_refuses_children_and_members(api: ApiClient) -> None:
    parent = dept(api, "P", "2")
    dept(api, "C", "3", parent="2")
    target = {"organizationCode": ORG, "departmentId": "2",
              "departmentIdType": "open_department_id"}
    fails(api.post("delete-department", target), 400)
    api.data("POST", "delete-department", {**target, "departmentId": "3"})
    user = api.data("POST", "create-user", {"username": "u"})
    api.data("POST", "add-department-members", {"organizationCode": ORG, "userIds": [
        user["userId"]], "departmentId": parent["departmentId"]})
    fails(api.post("delete-department", target), 400)
    api.data("POST", "remove-department-members", {"organizationCode": ORG, "userIds": [
        user["userId"]], "departmentId": parent["departmentId"]})
    api.data("POST", "delete-department", target)
    fails(api.get("get-department", target), 404)
    fails(api.post("delete-department", {"organizationCode": ORG, "departmentId": "root"}), 400)


def test_move_department(api: ApiClient) -> None:
    a, b = dept(api, "A", "2"), dept(api, "B", "3", parent="2")
    fails(api.post("update-department", {"organizationCode": ORG,
                                         "departmentId": a["departmentId"],
                                         "parentDepartmentId": b["departmentId"]}), 400)
    moved = api.data("POST", "update-department", {
        "organizationCode": ORG, "departmentId": "3", "departmentIdType": "open_department_id",
        "parentDepartmentId": "root"})
    root = api.data("GET", "get-organization", {"organizationCode": ORG})["departmentId"]
    assert moved["parentDepartmentId"] == root
    children = api.data("GET", "list-children-departments", {"organizationCode": ORG,
                                                             "departmentId": "root"})
    assert {d["openDepartmentId"] for d in children["list"]} == {"2", "3"}
    everything = api.data("GET", "get-all-departments", {"organizationCode": ORG})
    assert everything["totalCount"] == 2


def test_members_with_children(api: ApiClient) -> None:
    dept(api, "A", "2")
    dept(api, "B", "3", parent="2")
    api.data("POST", "create-user", {"username": "a", "departmentIds": ["2"],
                                     "options": {"departmentIdType": "open_department_id"}})
    api.data("POST", "create-user", {"username": "b", "departmentIds": ["3"],
                                     "options": {"departmentIdType": "open_department_id"}})
    query = {"organizationCode": ORG, "departmentId": "2",
             "departmentIdType": "open_department_id"}
    assert api.data("GET", "list-department-members", query)["totalCount"] == 1
    deep = api.data("GET", "list-department-members",
                    {**query, "includeChildrenDepartments": "true"})
    assert {u["username"] for u in deep["list"]} == {"a", "b"}
    assert len(api.data("GET", "list-department-member-ids", query)) == 1


def test_resign_keeps_the_user_and_drops_memberships(api: ApiClient) -> None:
    dept(api, "A", "2")
    user = api.data("POST", "create-user", {
        "username": "u", "externalId": "u", "departmentIds": ["2"],
        "options": {"departmentIdType": "open_department_id"}})
    api.data("POST", "resign-user", {"userId": "u", "userIdType": "external_id"})
    got = api.data("GET", "get-user", {"userId": user["userId"], "withDepartmentIds": True})
    assert got["status"] == "Resigned" and got["departmentIds"] == []
    members = api.data("GET", "list-department-members", {
        "organizationCode": ORG, "departmentId": "2", "departmentIdType": "open_department_id"})
    assert members["totalCount"] == 0
    api.data("POST", "delete-users-batch", {"userIds": ["u"],
                                            "options": {"userIdType": "external_id"}})
    fails(api.get("get-user", {"userId": user["userId"]}), 404, "用户不存在")
