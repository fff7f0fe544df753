"""AuthingClient against MockTransport handlers that answer with Authing's v3 envelopes."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from sync_core.authing.client import EXTENSION_FIELDS, AuthingClient, scoped_userpool_id
from sync_core.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    DryRunRejected,
    NotFoundError,
    PermanentError,
    TransientError,
)
from tests.remote_fakes import FakeTime, Recorder, body, sequence

KEY_ID = "pool-key-id"
SECRET = "pool-secret-do-not-leak-0987654321"
POOL = "6f0c0c0c0c0c0c0c0c0c0c0c"


def jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2lnbmF0dXJl"


def ok(data: Any = None) -> dict[str, Any]:
    return {"statusCode": 200, "message": "操作成功", "data": data}


def fail(status: int, message: str = "failed", api_code: int | None = None,
         http_status: int = 200) -> httpx.Response:
    envelope: dict[str, Any] = {"statusCode": status, "message": message,
                                "requestId": "req-42"}
    if api_code is not None:
        envelope["apiCode"] = api_code
    return httpx.Response(http_status, json=envelope)


class TokenServer:
    def __init__(self, claims: dict[str, Any] | None = None) -> None:
        self.calls = 0
        self.claims = {"scoped_userpool_id": POOL} if claims is None else claims

    async def __call__(self, request: httpx.Request) -> dict[str, Any]:
        assert body(request) == {"accessKeyId": KEY_ID, "accessKeySecret": SECRET}
        self.calls += 1
        await asyncio.sleep(0)
        return ok({"access_token": jwt({**self.claims, "n": self.calls}), "expires_in": 7200})


def make(routes: dict[str, Any], *, claims: dict[str, Any] | None = None, **options: Any
         ) -> tuple[AuthingClient, Recorder, TokenServer, FakeTime]:
    time = FakeTime()
    tokens = TokenServer(claims)
    recorder = Recorder({"get-management-token": tokens, **routes})
    options.setdefault("retry_attempts", 3)
    client = AuthingClient(recorder.client(), KEY_ID, SECRET, base_url="https://authing.test",
                           organization_code="wecom", clock=time.clock, sleep=time.sleep,
                           **options)
    return client, recorder, tokens, time


def users(start: int, count: int) -> list[dict[str, Any]]:
    return [{"userId": f"id{i}", "externalId": f"u{i}"} for i in range(start, start + count)]


# -- token and headers -------------------------------------------------------------------

async def test_requests_carry_bearer_token_and_userpool_from_the_jwt_claim() -> None:
    client, recorder, tokens, _ = make({"get-user": lambda r: ok({"userId": "id1"})})
    await client.get_user(user_id="id1")
    await client.get_user(user_id="id1")
    request = recorder.paths("get-user")[0]
    assert request.headers["authorization"].startswith("Bearer eyJ")
    assert request.headers["x-authing-userpool-id"] == POOL
    assert tokens.calls == 1


async def test_userpool_header_falls_back_to_the_access_key_id() -> None:
    client, recorder, _, _ = make({"get-user": lambda r: ok({})}, claims={})
    await client.get_user(user_id="id1")
    assert recorder.paths("get-user")[0].headers["x-authing-userpool-id"] == KEY_ID


@pytest.mark.parametrize("token", ["opaque", "a.%%%.c", "a.bm90IGpzb24.c"])
def test_unreadable_tokens_have_no_userpool_claim(token: str) -> None:
    assert scoped_userpool_id(token) is None


async def test_token_is_refreshed_early() -> None:
    client, _, tokens, time = make({"get-user": lambda r: ok({})})
    await client.get_user(user_id="a")
    time.now += 7200 - 299
    await client.get_user(user_id="a")
    assert tokens.calls == 2


async def test_concurrent_callers_share_one_token_fetch() -> None:
    client, _, tokens, _ = make({"get-user": lambda r: ok({"userId": r.url.params["userId"]})})
    found = await asyncio.gather(*(client.get_user(user_id=f"id{i}") for i in range(25)))
    assert tokens.calls == 1
    assert [u["userId"] for u in found if u] == [f"id{i}" for i in range(25)]


async def test_unreadable_401_after_refresh_is_an_auth_error() -> None:
    client, _, tokens, _ = make({"get-user": lambda r: httpx.Response(401, text="nope")})
    with pytest.raises(AuthError):
        await client.get_user(user_id="a")
    assert tokens.calls == 2


@pytest.mark.parametrize("rejection", [fail(401, "token expired"),
                                       fail(401, "token expired", http_status=401),
                                       httpx.Response(401, text="Unauthorized")])
async def test_auth_failure_refreshes_the_token_once(rejection: httpx.Response) -> None:
    client, recorder, tokens, _ = make({"get-user": sequence(rejection, ok({"userId": "a"}))})
    assert await client.get_user(user_id="a") == {"userId": "a"}
    assert tokens.calls == 2
    sent = [r.headers["authorization"] for r in recorder.paths("get-user")]
    assert len(sent) == 2 and sent[0] != sent[1]


async def test_auth_failure_after_refresh_stops() -> None:
    client, recorder, tokens, time = make({"get-user": lambda r: fail(401, "invalid token")})
    with pytest.raises(AuthError) as info:
        await client.get_user(user_id="a")
    assert info.value.request_id == "req-42"
    assert len(recorder.paths("get-user")) == 2 and tokens.calls == 2 and time.sleeps == []


@pytest.mark.parametrize("answer", [fail(400, "accessKeySecret 错误"), fail(401, "bad key"),
                                    fail(403, "forbidden")])
async def test_refused_management_token_is_an_auth_error(answer: httpx.Response) -> None:
    client, recorder, _, _ = make({"get-user": lambda r: ok({})})
    recorder.routes["get-management-token"] = lambda r: answer
    with pytest.raises(AuthError) as info:
        await client.get_user(user_id="a")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert recorder.paths("get-user") == []


# -- envelope ------------------------------------------------------------------------------

async def test_http_200_with_statuscode_400_is_a_bad_request_with_context() -> None:
    client, _, _, _ = make({"create-user": lambda r: fail(400, "参数 email 格式错误", 2001)})
    with pytest.raises(BadRequestError) as info:
        await client.create_user({"email": "nope"})
    assert (info.value.status, info.value.code, info.value.request_id) == (400, 2001, "req-42")
    assert "req-42" in str(info.value)


async def test_statuscode_404_reads_as_absent() -> None:
    client, _, _, _ = make({"get-user": lambda r: fail(404, "用户不存在"),
                            "get-department": lambda r: fail(404, "department not found"),
                            "get-organization": lambda r: fail(404, "organization not found")})
    assert await client.get_user(external_id="ghost") is None
    assert await client.get_department(open_department_id="9") is None
    assert await client.get_organization() is None


async def test_statuscode_404_on_a_write_is_not_found() -> None:
    client, _, _, _ = make({"update-user": lambda r: fail(404, "用户不存在")})
    with pytest.raises(NotFoundError):
        await client.update_user({"name": "x"}, external_id="ghost")


async def test_an_html_404_is_never_mistaken_for_an_absent_user() -> None:
    client, _, _, _ = make({"get-user": lambda r: httpx.Response(404, text="<html>nginx")})
    with pytest.raises(PermanentError) as info:
        await client.get_user(external_id="zs")
    assert not isinstance(info.value, NotFoundError)


@pytest.mark.parametrize(("message", "api_code"), [("用户已存在", 2026), ("手机号已被绑定", None),
                                                   ("externalId already exists", None)])
async def test_uniqueness_errors_are_conflicts(message: str, api_code: int | None) -> None:
    client, _, _, _ = make({"create-user": lambda r: fail(400, message, api_code)})
    with pytest.raises(ConflictError):
        await client.create_user({"externalId": "zs"})


@pytest.mark.parametrize("status", [500, 503, 1000])
async def test_statuscode_5xx_and_busy_are_retried_then_transient(status: int) -> None:
    client, recorder, _, time = make({"get-user": lambda r: fail(status, "busy")})
    with pytest.raises(TransientError):
        await client.get_user(user_id="a")
    assert len(recorder.paths("get-user")) == 3 and len(time.sleeps) == 2


async def test_429_waits_for_retry_after() -> None:
    limited = httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "7"})
    client, _, _, time = make({"get-user": sequence(limited, ok({"userId": "a"}))})
    assert await client.get_user(user_id="a") == {"userId": "a"}
    assert max(time.sleeps) >= 7


async def test_503_then_success() -> None:
    client, _, _, _ = make({"get-user": sequence(httpx.Response(503, text="upstream down"),
                                                 ok({"userId": "a"}))})
    assert await client.get_user(user_id="a") == {"userId": "a"}


async def test_create_is_not_resent_after_a_read_timeout_but_update_is() -> None:
    client, recorder, _, _ = make({
        "create-user": sequence(httpx.ReadTimeout("slow"), ok({"userId": "id1"})),
        "update-user": sequence(httpx.ReadTimeout("slow"), ok({"userId": "id1"}))})
    with pytest.raises(TransientError) as info:
        await client.create_user({"externalId": "zs"})
    assert info.value.maybe_applied and len(recorder.paths("create-user")) == 1
    assert await client.update_user({"name": "x"}, external_id="zs") == {"userId": "id1"}
    assert len(recorder.paths("update-user")) == 2


async def test_create_is_resent_after_429() -> None:
    limited = fail(429, "too many requests", http_status=429)
    client, recorder, _, _ = make({"create-user": sequence(limited, ok({"userId": "id1"}))})
    assert await client.create_user({"externalId": "zs"}) == {"userId": "id1"}
    assert len(recorder.paths("create-user")) == 2


async def test_timeout_then_success() -> None:
    client, recorder, _, _ = make({"get-user": sequence(httpx.ConnectTimeout("slow"),
                                                        ok({"userId": "a"}))})
    assert await client.get_user(user_id="a") == {"userId": "a"}
    assert len(recorder.paths("get-user")) == 2


async def test_gives_up_after_the_configured_attempts() -> None:
    client, recorder, _, _ = make({"get-user": sequence(httpx.ReadTimeout("slow"))},
                                  retry_attempts=5)
    with pytest.raises(TransientError):
        await client.get_user(user_id="a")
    assert len(recorder.paths("get-user")) == 5


# -- pagination and batches -----------------------------------------------------------------

async def test_list_users_fetches_pages_of_50_concurrently_within_the_cap() -> None:
    everyone = users(0, 230)

    def page(request: httpx.Request) -> dict[str, Any]:
        pagination = body(request)["options"]["pagination"]
        start = (pagination["page"] - 1) * pagination["limit"]
        return ok({"totalCount": 230, "list": everyone[start:start + pagination["limit"]]})

    client, recorder, _, _ = make({"list-users": page}, max_concurrency=2)
    listed = [u async for u in client.list_users()]
    assert listed == everyone
    options = [body(r)["options"] for r in recorder.paths("list-users")]
    assert sorted(o["pagination"]["page"] for o in options) == [1, 2, 3, 4, 5]
    assert all(o["pagination"]["limit"] == 50 and o["withCustomData"]
               and o["withDepartmentIds"] for o in options)
    assert recorder.max_in_flight == 2


async def test_list_users_yields_a_row_shifted_across_pages_once() -> None:
    pages = {1: users(0, 50), 2: users(49, 50)}

    def page(request: httpx.Request) -> dict[str, Any]:
        return ok({"totalCount": 100, "list": pages[body(request)["options"]["pagination"]
                                                     ["page"]]})

    client, _, _, _ = make({"list-users": page})
    assert [u["userId"] for u in [u async for u in client.list_users()]] == [
        f"id{i}" for i in range(99)]


async def test_users_by_external_ids_asks_in_chunks_of_50() -> None:
    def lookup(request: httpx.Request) -> dict[str, Any]:
        (condition,) = body(request)["advancedFilter"]
        assert condition["field"] == "externalId" and condition["operator"] == "IN"
        found = [{"userId": f"id-{x}", "externalId": x} for x in condition["value"]
                 if x != "u7"]
        return ok({"totalCount": len(found), "list": found})

    client, recorder, _, _ = make({"list-users": lookup})
    ids = [f"u{i}" for i in range(120)] + ["u3"]
    found = await client.get_users_by_external_ids(ids)
    assert set(found) == {f"u{i}" for i in range(120)} - {"u7"}
    sizes = [len(body(r)["advancedFilter"][0]["value"]) for r in recorder.paths("list-users")]
    assert sorted(sizes) == [20, 50, 50]


async def test_batches_are_chunked_at_50() -> None:
    client, recorder, _, _ = make({
        "create-users-batch": lambda r: ok([{"userId": "x"}] * len(body(r)["list"])),
        "update-user-batch": lambda r: ok([{"userId": "x"}] * len(body(r)["list"])),
        "delete-users-batch": lambda r: ok({"success": True}),
    })
    created = await client.create_users_batch([{"externalId": f"u{i}"} for i in range(120)])
    await client.update_user_batch([{"userId": f"id{i}", "name": "n"} for i in range(51)])
    await client.delete_users([f"u{i}" for i in range(101)], id_type="external_id")
    assert len(created) == 120
    assert [len(body(r)["list"]) for r in recorder.paths("create-users-batch")] == [50, 50, 20]
    assert [len(body(r)["list"]) for r in recorder.paths("update-user-batch")] == [50, 1]
    deletes = [body(r) for r in recorder.paths("delete-users-batch")]
    assert [len(d["userIds"]) for d in deletes] == [50, 50, 1]
    assert all(d["options"] == {"userIdType": "external_id"} for d in deletes)


async def test_user_departments_are_paged() -> None:
    memberships = [{"departmentId": f"d{i}"} for i in range(60)]

    def page(request: httpx.Request) -> dict[str, Any]:
        number = int(request.url.params["page"])
        assert request.url.params["limit"] == "50"
        return ok({"totalCount": 60, "list": memberships[(number - 1) * 50:number * 50]})

    client, _, _, _ = make({"get-user-departments": page})
    assert await client.get_user_departments("id1") == memberships


async def test_department_members_are_paged_with_the_department_selector() -> None:
    def page(request: httpx.Request) -> dict[str, Any]:
        params = request.url.params
        assert (params["departmentId"], params["departmentIdType"]) == ("5",
                                                                        "open_department_id")
        assert params["includeChildrenDepartments"] == "true"
        return ok({"totalCount": 3, "list": users(0, 3)})

    client, _, _, _ = make({"list-department-members": page})
    members = [u async for u in client.list_department_members(open_department_id="5",
                                                               include_children=True)]
    assert members == users(0, 3)


# -- request shapes -------------------------------------------------------------------------

async def test_update_user_by_external_id_sets_the_id_type() -> None:
    client, recorder, _, _ = make({"update-user": lambda r: ok({"userId": "id1"})})
    await client.update_user({"name": "张三", "options": {"resetPasswordOnNextLogin": False}},
                             external_id="zs")
    assert body(recorder.paths("update-user")[0]) == {
        "name": "张三", "userId": "zs",
        "options": {"resetPasswordOnNextLogin": False, "userIdType": "external_id"}}


async def test_a_selector_is_required_exactly_once() -> None:
    client, _, _, _ = make({})
    with pytest.raises(ValueError):
        await client.get_user()
    with pytest.raises(ValueError):
        await client.get_department(open_department_id="2", department_id="abc")


async def test_department_calls_use_the_organization_and_id_type() -> None:
    client, recorder, _, _ = make({
        "get-department": lambda r: ok({"departmentId": "abc", "openDepartmentId": "2"}),
        "get-all-departments": lambda r: ok({"totalCount": 1, "list": [{"departmentId": "a"}]}),
        "list-children-departments": lambda r: ok({"totalCount": 0, "list": []}),
        "create-department": lambda r: ok({"departmentId": "new"}),
        "update-department": lambda r: ok({"departmentId": "abc"}),
        "delete-department": lambda r: ok({"success": True}),
    })
    assert await client.get_department(open_department_id="2") == {
        "departmentId": "abc", "openDepartmentId": "2"}
    assert await client.get_all_departments() == [{"departmentId": "a"}]
    assert await client.list_children_departments(open_department_id="1") == []
    await client.create_department({"name": "R&D", "parentDepartmentId": "1",
                                    "openDepartmentId": "2",
                                    "departmentIdType": "open_department_id"})
    await client.update_department({"name": "研发"}, open_department_id="2")
    await client.delete_department(open_department_id="2")
    got = recorder.paths("get-department")[0].url.params
    assert (got["organizationCode"], got["departmentId"], got["departmentIdType"]) == (
        "wecom", "2", "open_department_id")
    assert body(recorder.paths("create-department")[0])["organizationCode"] == "wecom"
    assert body(recorder.paths("update-department")[0]) == {
        "organizationCode": "wecom", "name": "研发", "departmentId": "2",
        "departmentIdType": "open_department_id"}


async def test_too_many_departments_for_one_user_fail_before_any_call() -> None:
    client, recorder, _, _ = make({})
    with pytest.raises(BadRequestError):
        await client.set_user_departments("id1", [{"departmentId": f"d{i}"} for i in range(51)])
    assert recorder.requests == []


# -- custom fields --------------------------------------------------------------------------

class FieldStore:
    def __init__(self, existing: list[tuple[str, str]]) -> None:
        self.fields = [{"targetType": t, "key": k, "dataType": "STRING"} for t, k in existing]

    def get(self, request: httpx.Request) -> dict[str, Any]:
        target = request.url.params["targetType"]
        return ok([f for f in self.fields if f["targetType"] == target])

    def set(self, request: httpx.Request) -> dict[str, Any]:
        added = body(request)["list"]
        self.fields.extend(added)
        return ok(added)


async def test_ensure_custom_fields_defines_only_the_missing_ones_once() -> None:
    store = FieldStore([("USER", "wechatwork_user_id"), ("USER", "unrelated")])
    client, recorder, _, _ = make({"get-custom-fields": store.get,
                                   "set-custom-fields": store.set})
    assert await client.ensure_custom_fields() == (
        "wechatwork_department_ids", "wechatwork_department_id",
        "wechatwork_parent_department_id")
    assert await client.ensure_custom_fields() == ()
    (sent,) = [body(r)["list"] for r in recorder.paths("set-custom-fields")]
    assert all(f["dataType"] == "STRING" for f in sent)
    assert {(f["targetType"], f["key"]) for f in store.fields} >= {
        (t, k) for t, k, _ in EXTENSION_FIELDS}


# -- dry run --------------------------------------------------------------------------------

WRITES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("create_user", ({"externalId": "zs"},), {}),
    ("create_users_batch", ([{"externalId": "zs"}],), {}),
    ("update_user", ({"name": "x"},), {"external_id": "zs"}),
    ("update_user_batch", ([{"userId": "id1", "name": "x"}],), {}),
    ("delete_users", (["id1"],), {}),
    ("resign_user", (), {"external_id": "zs"}),
    ("set_user_departments", ("id1", [{"departmentId": "d"}]), {}),
    ("create_organization", ("WeCom",), {}),
    ("create_department", ({"name": "R&D", "parentDepartmentId": "1"},), {}),
    ("update_department", ({"name": "x"},), {"open_department_id": "2"}),
    ("delete_department", (), {"open_department_id": "2"}),
    ("set_custom_fields", ([{"targetType": "USER", "key": "k", "dataType": "STRING"}],), {}),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), WRITES, ids=[w[0] for w in WRITES])
async def test_dry_run_refuses_every_write_before_any_request(
        method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    client, recorder, _, _ = make({"": lambda r: ok({})}, dry_run=True)
    with pytest.raises(DryRunRejected):
        await getattr(client, method)(*args, **kwargs)
    assert recorder.requests == []


async def test_dry_run_allows_reads_and_list_queries() -> None:
    client, _, _, _ = make({"get-user": lambda r: ok({"userId": "a"}),
                            "list-users": lambda r: ok({"totalCount": 1, "list": users(0, 1)})},
                           dry_run=True)
    assert await client.get_user(user_id="a") == {"userId": "a"}
    assert [u async for u in client.list_users()] == users(0, 1)
    assert await client.get_users_by_external_ids(["u0"]) == {"u0": users(0, 1)[0]}


async def test_dry_run_ensure_custom_fields_refuses_only_when_something_is_missing() -> None:
    complete = FieldStore([(t, k) for t, k, _ in EXTENSION_FIELDS])
    client, _, _, _ = make({"get-custom-fields": complete.get}, dry_run=True)
    assert await client.ensure_custom_fields() == ()
    partial = FieldStore([])
    client, _, _, _ = make({"get-custom-fields": partial.get}, dry_run=True)
    with pytest.raises(DryRunRejected):
        await client.ensure_custom_fields()


async def test_secret_and_token_absent_from_errors_and_repr() -> None:
    client, _, _, _ = make({"get-user": lambda r: fail(
        400, f"bad request accessKeySecret={SECRET} authorization: Bearer eyJabc.def.ghi")})
    with pytest.raises(BadRequestError) as info:
        await client.get_user(user_id="a")
    for text in (str(info.value), repr(info.value), repr(client)):
        assert SECRET not in text and "eyJabc" not in text
