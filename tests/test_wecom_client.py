"""WeComClient against MockTransport handlers that answer with WeCom's real envelopes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from sync_core.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    DryRunRejected,
    NotFoundError,
    PermanentError,
    RestrictedError,
    SyncError,
    TransientError,
)
from sync_core.wecom.client import WeComClient
from tests.remote_fakes import FakeTime, Recorder, body, sequence

SECRET = "corp-secret-do-not-leak-1234567890"
CORP = "ww0123456789abcdef"


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def err(code: int, message: str = "failed") -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{message}, hint: [1700000000_1_abc], "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"}


class TokenServer:
    """gettoken that hands out tok-1, tok-2, ... and counts the calls."""

    def __init__(self, expires_in: int = 7200) -> None:
        self.calls = 0
        self.expires_in = expires_in

    async def __call__(self, request: httpx.Request) -> dict[str, Any]:
        assert request.url.params["corpid"] == CORP
        assert request.url.params["corpsecret"] == SECRET
        self.calls += 1
        await asyncio.sleep(0)
        return ok(access_token=f"tok-{self.calls}", expires_in=self.expires_in)


def make(routes: dict[str, Any], time: FakeTime | None = None, **options: Any
         ) -> tuple[WeComClient, Recorder, TokenServer, FakeTime]:
    time = time or FakeTime()
    tokens = TokenServer()
    recorder = Recorder({"gettoken": tokens, **routes})
    options.setdefault("retry_attempts", 3)
    client = WeComClient(recorder.client(), CORP, SECRET, base_url="https://wecom.test",
                         clock=time.clock, sleep=time.sleep, **options)
    return client, recorder, tokens, time


# -- token ---------------------------------------------------------------------------------

async def test_token_is_cached_and_sent_as_query_parameter() -> None:
    client, recorder, tokens, _ = make({"user/get": lambda r: ok(userid="zs")})
    await client.user_get("zs")
    await client.user_get("zs")
    assert tokens.calls == 1
    assert [r.url.params["access_token"] for r in recorder.paths("user/get")] == ["tok-1"] * 2


async def test_token_is_refreshed_five_minutes_before_expiry() -> None:
    client, _, tokens, time = make({"user/get": lambda r: ok(userid="zs")})
    await client.get_token()
    time.now += 7200 - 301
    assert await client.get_token() == "tok-1"
    time.now += 2
    assert await client.get_token() == "tok-2"
    assert tokens.calls == 2


async def test_concurrent_callers_share_one_gettoken() -> None:
    client, _, tokens, _ = make({"user/get": lambda r: ok(userid=r.url.params["userid"])})
    users = await asyncio.gather(*(client.user_get(f"u{i}") for i in range(20)))
    assert tokens.calls == 1
    assert [u["userid"] for u in users] == [f"u{i}" for i in range(20)]


async def test_token_cache_is_shared_between_clients_with_the_same_credentials() -> None:
    client, recorder, tokens, time = make({"user/get": lambda r: ok(userid="zs")})
    twin = WeComClient(recorder.client(), CORP, SECRET, base_url="https://wecom.test",
                       clock=time.clock, sleep=time.sleep, token_cache=client._tokens)
    await client.user_get("zs")
    await twin.user_get("zs")
    assert tokens.calls == 1


@pytest.mark.parametrize("code", [40014, 42001])
async def test_rejected_token_is_refreshed_once_and_the_call_repeated(code: int) -> None:
    client, recorder, tokens, _ = make({"user/get": sequence(err(code), ok(userid="zs"))})
    assert (await client.user_get("zs"))["userid"] == "zs"
    assert tokens.calls == 2
    assert [r.url.params["access_token"] for r in recorder.paths("user/get")] == [
        "tok-1", "tok-2"]


@pytest.mark.parametrize("code", [40014, 42001])
async def test_token_rejected_after_refresh_is_an_auth_error_not_retried(code: int) -> None:
    client, recorder, tokens, time = make({"user/get": lambda r: err(code)})
    with pytest.raises(AuthError) as info:
        await client.user_get("zs")
    assert info.value.code == code
    assert len(recorder.paths("user/get")) == 2
    assert tokens.calls == 2
    assert time.sleeps == []


async def test_wrong_secret_fails_fast_and_is_not_asked_again_at_once() -> None:
    client, recorder, _, _ = make({})
    recorder.routes["gettoken"] = lambda r: err(40001, "invalid credential")
    with pytest.raises(AuthError):
        await client.user_get("zs")
    with pytest.raises(AuthError):
        await client.user_get("ls")
    # Repeated wrong-secret calls get the IP banned for an hour: one call only.
    assert len(recorder.paths("gettoken")) == 1


# -- errcode table (reference/wecom-platform.md §3.4) --------------------------------------

ERRCODES: list[tuple[int, type[SyncError]]] = [
    (-1, TransientError),
    (40001, AuthError),
    (40013, AuthError),
    (40014, AuthError),  # after one refresh
    (41001, AuthError),
    (42001, AuthError),  # after one refresh
    (45009, TransientError),
    (45033, TransientError),
    (45029, BadRequestError),
    (48002, RestrictedError),
    (48009, RestrictedError),
    (60003, NotFoundError),
    (60004, BadRequestError),
    (60005, BadRequestError),
    (60006, BadRequestError),
    (60007, BadRequestError),
    (60008, ConflictError),
    (60011, PermanentError),
    (60020, RestrictedError),
    (60102, ConflictError),
    (60103, BadRequestError),
    (60104, ConflictError),
    (60105, BadRequestError),
    (60106, ConflictError),
    (60110, BadRequestError),
    (60111, NotFoundError),
    (60123, NotFoundError),
    (60124, BadRequestError),
    (60129, BadRequestError),
    (60132, BadRequestError),
    (99999, BadRequestError),
]


@pytest.mark.parametrize(("code", "expected"), ERRCODES)
async def test_errcode_maps_to_its_error(code: int, expected: type[SyncError]) -> None:
    client, _, _, _ = make({"user/get": lambda r: err(code)}, retry_total_seconds=600)
    with pytest.raises(SyncError) as info:
        await client.user_get("zs")
    assert type(info.value) is expected
    assert info.value.code == code
    assert info.value.remote == "wecom"
    assert info.value.endpoint == "user/get"


async def test_45009_waits_at_least_a_minute_before_retrying() -> None:
    client, recorder, _, time = make({"user/get": sequence(err(45009), ok(userid="zs"))})
    await client.user_get("zs")
    assert len(recorder.paths("user/get")) == 2
    assert max(time.sleeps) >= 60


async def test_rate_limit_ban_longer_than_the_retry_budget_is_returned_to_the_caller() -> None:
    client, recorder, _, _ = make({"user/get": lambda r: err(45009)}, retry_total_seconds=30)
    with pytest.raises(TransientError) as info:
        await client.user_get("zs")
    assert info.value.retry_after == 60
    assert len(recorder.paths("user/get")) == 1


async def test_wrong_json_format_warning_with_errcode_zero_is_a_bad_request() -> None:
    warning = {"errcode": 0, "errmsg": "updated. Warning: wrong json format. "}
    client, _, _, _ = make({"user/update": lambda r: warning})
    with pytest.raises(BadRequestError, match="wrong json format"):
        await client.user_update({"userid": "zs", "department": "1"})


# -- transient failures and bounds -----------------------------------------------------------

async def test_busy_then_success_is_retried_with_backoff() -> None:
    client, recorder, _, time = make({"user/get": sequence(err(-1), err(-1), ok(userid="zs"))})
    assert (await client.user_get("zs"))["userid"] == "zs"
    assert len(recorder.paths("user/get")) == 3
    assert len(time.sleeps) == 2 and all(s > 0 for s in time.sleeps)


async def test_gives_up_after_the_configured_attempts() -> None:
    client, recorder, _, _ = make({"user/get": lambda r: err(-1)}, retry_attempts=4)
    with pytest.raises(TransientError):
        await client.user_get("zs")
    assert len(recorder.paths("user/get")) == 4


async def test_creates_are_not_resent_after_an_ambiguous_failure() -> None:
    client, recorder, _, _ = make({"user/create": sequence(err(-1), ok(errmsg="created")),
                                   "user/update": sequence(err(-1), ok(errmsg="updated"))})
    with pytest.raises(TransientError) as info:
        await client.user_create({"userid": "zs", "name": "张三", "department": [1]})
    assert info.value.maybe_applied and len(recorder.paths("user/create")) == 1
    await client.user_update({"userid": "zs", "name": "张三"})  # idempotent: retried
    assert len(recorder.paths("user/update")) == 2


@pytest.mark.parametrize("refusal", [err(45033), httpx.ConnectError("refused")])
async def test_creates_are_resent_when_surely_not_applied(refusal: Any) -> None:
    client, recorder, _, _ = make({"user/create": sequence(refusal, ok(errmsg="created"))})
    await client.user_create({"userid": "zs", "name": "张三", "department": [1]})
    assert len(recorder.paths("user/create")) == 2


async def test_timeout_then_success() -> None:
    timeout = httpx.ReadTimeout("read timed out")
    client, recorder, _, _ = make({"user/get": sequence(timeout, ok(userid="zs"))})
    assert (await client.user_get("zs"))["userid"] == "zs"
    assert len(recorder.paths("user/get")) == 2


async def test_non_json_503_then_success() -> None:
    unavailable = httpx.Response(503, text="Service Unavailable")
    client, _, _, _ = make({"user/get": sequence(unavailable, ok(userid="zs"))})
    assert (await client.user_get("zs"))["userid"] == "zs"


async def test_every_request_carries_a_timeout() -> None:
    client, recorder, _, _ = make({"user/get": lambda r: ok(userid="zs")}, timeout=3.5)
    await client.user_get("zs")
    assert all(r.extensions["timeout"]["read"] == 3.5 for r in recorder.requests)


async def test_concurrency_is_capped() -> None:
    client, recorder, _, _ = make({"user/get": lambda r: ok(userid="x")}, max_concurrency=3)
    await client.get_token()
    await asyncio.gather(*(client.user_get(f"u{i}") for i in range(30)))
    assert recorder.max_in_flight <= 3


async def test_rate_limit_spaces_out_calls() -> None:
    client, _, _, time = make({"user/get": lambda r: ok(userid="x")}, rate_per_minute=60,
                              max_concurrency=1)
    for i in range(4):
        await client.user_get(f"u{i}")
    # gettoken + 4 calls at 1/s with a burst of 1: three or four one-second waits.
    assert sum(time.sleeps) >= 3


async def test_observer_counts_calls_per_endpoint_and_outcome() -> None:
    seen: list[tuple[str, str, str]] = []

    def observer(remote: str, endpoint: str, outcome: str, seconds: float) -> None:
        seen.append((remote, endpoint, outcome))

    client, _, _, _ = make({"user/get": sequence(err(-1), ok(userid="zs")),
                            "user/delete": lambda r: err(60111)}, observer=observer)
    await client.user_get("zs")
    with pytest.raises(NotFoundError):
        await client.user_delete("gone")
    assert seen == [("wecom", "gettoken", "ok"), ("wecom", "user/get", "transient"),
                    ("wecom", "user/get", "ok"), ("wecom", "user/delete", "not_found")]


# -- endpoints -------------------------------------------------------------------------------

async def test_list_id_walks_every_cursor() -> None:
    pages = {None: ok(next_cursor="c1", dept_user=[{"userid": "a", "department": 1},
                                                   {"userid": "a", "department": 2}]),
             "c1": ok(next_cursor="c2", dept_user=[{"userid": "b", "department": 1}]),
             "c2": ok(next_cursor="", dept_user=[{"userid": "c", "department": 3}])}
    client, recorder, _, _ = make({"user/list_id": lambda r: pages[body(r).get("cursor")]})
    rows = [row async for row in client.user_list_id(limit=2)]
    assert [(r["userid"], r["department"]) for r in rows] == [("a", 1), ("a", 2), ("b", 1),
                                                              ("c", 3)]
    assert [body(r) for r in recorder.paths("user/list_id")] == [
        {"limit": 2}, {"limit": 2, "cursor": "c1"}, {"limit": 2, "cursor": "c2"}]


async def test_list_id_stops_on_a_repeated_cursor() -> None:
    client, _, _, _ = make({"user/list_id": lambda r: ok(next_cursor="same", dept_user=[])})
    with pytest.raises(PermanentError, match="same cursor"):
        [row async for row in client.user_list_id()]


@pytest.mark.parametrize("limit", [0, 10001])
async def test_list_id_limit_is_checked(limit: int) -> None:
    client, _, _, _ = make({})
    with pytest.raises(ValueError):
        [row async for row in client.user_list_id(limit=limit)]


async def test_batchdelete_sends_chunks_of_200() -> None:
    client, recorder, _, _ = make({"user/batchdelete": lambda r: ok(errmsg="deleted")})
    await client.user_batchdelete([f"u{i}" for i in range(450)])
    sizes = [len(body(r)["useridlist"]) for r in recorder.paths("user/batchdelete")]
    assert sizes == [200, 200, 50]


async def test_reads_return_the_payload_without_the_envelope() -> None:
    client, recorder, _, _ = make({
        "department/simplelist": lambda r: ok(department_id=[{"id": 2, "parentid": 1,
                                                              "order": 10}]),
        "department/get": lambda r: ok(department={"id": 2, "name": "R&D"}),
        "department/list": lambda r: ok(department=[{"id": 1, "name": "Corp"}]),
        "user/simplelist": lambda r: ok(userlist=[{"userid": "zs", "name": "张三"}]),
        "user/list": lambda r: ok(userlist=[{"userid": "zs", "mobile": "138"}]),
        "user/get": lambda r: ok(userid="zs", department=[1, 2]),
    })
    assert await client.department_simplelist() == [{"id": 2, "parentid": 1, "order": 10}]
    assert (await client.department_get(2))["name"] == "R&D"
    assert (await client.department_list(1))[0]["name"] == "Corp"
    assert (await client.user_simplelist(1))[0]["name"] == "张三"
    assert (await client.user_list(1))[0]["mobile"] == "138"
    assert await client.user_get("zs") == {"userid": "zs", "department": [1, 2]}
    assert "id" not in recorder.paths("department/simplelist")[0].url.params
    assert recorder.paths("department/list")[0].url.params["id"] == "1"
    assert recorder.paths("user/list")[0].url.params["department_id"] == "1"


async def test_department_create_returns_the_new_id() -> None:
    client, recorder, _, _ = make({"department/create": lambda r: ok(errmsg="created", id=7)})
    assert await client.department_create({"name": "Ops", "parentid": 1}) == 7
    assert body(recorder.paths("department/create")[0]) == {"name": "Ops", "parentid": 1}


# -- dry run ---------------------------------------------------------------------------------

WRITES = [
    ("department_create", ({"name": "x", "parentid": 1},)),
    ("department_update", ({"id": 2, "name": "y"},)),
    ("department_delete", (2,)),
    ("user_create", ({"userid": "zs", "name": "张三", "department": [1]},)),
    ("user_update", ({"userid": "zs", "name": "张三"},)),
    ("user_delete", ("zs",)),
    ("user_batchdelete", (["zs", "ls"],)),
]


@pytest.mark.parametrize(("method", "args"), WRITES, ids=[w[0] for w in WRITES])
async def test_dry_run_refuses_every_write_before_any_request(method: str,
                                                              args: tuple[Any, ...]) -> None:
    client, recorder, _, _ = make({"": lambda r: ok()}, dry_run=True)
    with pytest.raises(DryRunRejected):
        await getattr(client, method)(*args)
    assert recorder.requests == []


async def test_dry_run_allows_reads() -> None:
    client, _, _, _ = make({"user/get": lambda r: ok(userid="zs")}, dry_run=True)
    assert (await client.user_get("zs"))["userid"] == "zs"


# -- secrets ---------------------------------------------------------------------------------

async def test_secrets_never_appear_in_errors_repr_or_logs(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = {"errcode": 40001,
             "errmsg": f"invalid credential, corpsecret={SECRET} access_token=tok-1"}
    client, recorder, _, _ = make({"user/get": lambda r: err(-1)}, retry_attempts=2)
    with pytest.raises(TransientError) as transient:
        await client.user_get("zs")
    recorder.routes["gettoken"] = lambda r: leaky
    client._tokens.invalidate(client._token_key, "tok-1")
    with pytest.raises(AuthError) as auth:
        await client.user_get("zs")
    texts = [str(transient.value), repr(transient.value), str(auth.value), repr(auth.value),
             repr(client), caplog.text]
    for text in texts:
        assert SECRET not in text
        assert "tok-1" not in text
    assert "corpsecret=***" in str(auth.value)
    assert "access_token=***" in caplog.text  # httpx's request lines are redacted, not lost


async def test_network_error_message_is_redacted() -> None:
    failing = httpx.ConnectError(f"https://wecom.test/x?access_token=tok-1&corpsecret={SECRET}")
    client, _, _, _ = make({"user/get": sequence(failing)}, retry_attempts=1)
    with pytest.raises(TransientError) as info:
        await client.user_get("zs")
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert SECRET not in str(info.value) and "tok-1" not in str(info.value)
