"""Async client for the WeCom contacts API (reference/wecom-platform.md §3).

Every response is an ``{"errcode", "errmsg", ...}`` envelope; the HTTP status says little.
A non-zero errcode becomes an error from ``errors.from_wecom``. The access token is
cached per (base URL, corp ID, secret), refreshed five minutes early, fetched once for
all concurrent callers, and refreshed once more when WeCom rejects it (40014/42001) —
"企业微信可能会出于运营需要，提前使access_token失效".

Writes pass through ``_write``, which refuses them when the client is in dry-run mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Unpack

import httpx
from pydantic import SecretStr

from sync_core.errors import (
    WECOM_TOKEN_EXPIRED,
    AuthError,
    BadRequestError,
    PermanentError,
    from_wecom,
    redact,
)
from sync_core.http.client import ClientOptions, TokenAuthClient
from sync_core.http.retry import chunked, json_object

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
# WeCom allows 1万次/分 per corp and API; the default leaves room for the corp's other users.
DEFAULT_RATE_PER_MINUTE = 600.0
BATCH_DELETE_MAX = 200  # "最多支持200个"
LIST_ID_MAX = 10000  # "limit … 取值范围 1 ~ 10000"
_WRONG_JSON = "wrong json format"
# Writes that may not be resent after an ambiguous failure: a second create may collide
# with the first, and a batch delete fails whole once part of it has been applied.
_NOT_IDEMPOTENT = frozenset({"department/create", "user/create", "user/batchdelete"})


class WeComClient(TokenAuthClient):
    """The WeCom contacts API, with the 通讯录同步 secret.

    ``rate_per_minute`` is one bucket for all endpoints, far under WeCom's documented
    "每企业调用单个cgi/api不可超过1万次/分", because one corp's quota is shared with
    whatever else calls WeCom with it.
    """

    remote_name = "wecom"
    path_prefix = "/cgi-bin/"

    def __init__(self, http: httpx.AsyncClient, corp_id: str, secret: str | SecretStr,
                 **options: Unpack[ClientOptions]) -> None:
        options.setdefault("base_url", DEFAULT_BASE_URL)
        options.setdefault("rate_per_minute", DEFAULT_RATE_PER_MINUTE)
        super().__init__(http, corp_id, secret, **options)
        self.corp_id = corp_id

    def __repr__(self) -> str:
        return f"WeComClient(corp_id={self.corp_id!r}, base={self._base!r}, dry_run={self.dry_run})"

    # -- token and envelope ----------------------------------------------------------

    async def get_token(self) -> str:
        """A valid access token (cached), retried like any other call."""
        return await self._remote.call("gettoken", self._token)

    async def _fetch_token(self) -> tuple[str, float]:
        async def attempt() -> tuple[str, float]:
            response = await self._remote.send(
                "GET", self._base + "gettoken", endpoint="gettoken",
                params={"corpid": self.corp_id, "corpsecret": self._secret})
            payload = self._decode("gettoken", response)
            token = payload.get("access_token")
            if not isinstance(token, str) or not token:
                raise AuthError("gettoken returned no access_token", remote="wecom",
                                endpoint="gettoken")
            return token, float(payload.get("expires_in") or 7200)

        return await self._remote.observed("gettoken", attempt)

    async def _exchange(self, method: str, endpoint: str, token: str,
                        params: Mapping[str, Any] | None, body: Any) -> httpx.Response:
        return await self._remote.send(method, self._base + endpoint, endpoint=endpoint,
                                         json=body,
                                         params={**(params or {}), "access_token": token})

    async def _read(self, endpoint: str, **params: Any) -> dict[str, Any]:
        payload: dict[str, Any] = await self._request("GET", endpoint, params=params)
        return payload

    async def _write(self, method: str, endpoint: str, *,
                     params: Mapping[str, Any] | None = None,
                     body: Any = None) -> dict[str, Any]:
        """The one path for calls that change WeCom; refuses them in dry-run mode."""
        self._refuse_in_dry_run(method, endpoint)
        payload: dict[str, Any] = await self._request(
            method, endpoint, params=params, body=body,
            idempotent=endpoint not in _NOT_IDEMPOTENT)
        return payload

    def _token_rejected(self, endpoint: str, response: httpx.Response) -> bool:
        payload = json_object(response, remote="wecom", endpoint=endpoint)
        return payload.get("errcode") in WECOM_TOKEN_EXPIRED

    def _decode(self, endpoint: str, response: httpx.Response) -> dict[str, Any]:
        payload = json_object(response, remote="wecom", endpoint=endpoint)
        errcode = payload.get("errcode", 0)
        errmsg = redact(str(payload.get("errmsg", "")), self._secret)
        if not isinstance(errcode, int):
            raise PermanentError(f"errcode is not an integer: {errcode!r}", remote="wecom",
                                 endpoint=endpoint)
        if errcode != 0:
            raise from_wecom(errcode, errmsg, endpoint=endpoint)
        if _WRONG_JSON in errmsg.lower():
            # errcode 0, yet WeCom may have ignored the mistyped field: not a success.
            raise BadRequestError(f"accepted with a warning, may not have applied: {errmsg}",
                                  code=0, remote="wecom", endpoint=endpoint)
        return payload

    # -- departments -------------------------------------------------------------------

    async def department_simplelist(self, id: int | None = None) -> list[dict[str, Any]]:
        """``[{"id", "parentid", "order"}]`` for ``id`` and below (everything when None);
        allowed for new IPs, unlike ``department_list``."""
        params = {} if id is None else {"id": id}
        payload = await self._read("department/simplelist", **params)
        return list(payload.get("department_id") or [])

    async def department_get(self, id: int) -> dict[str, Any]:
        payload = await self._read("department/get", id=id)
        return dict(payload.get("department") or {})

    async def department_list(self, id: int | None = None) -> list[dict[str, Any]]:
        """Full department records, recursive. Refused (RestrictedError) for sync-secret
        IPs added after 2022-08-15; prefer ``department_simplelist`` + ``department_get``."""
        params = {} if id is None else {"id": id}
        payload = await self._read("department/list", **params)
        return list(payload.get("department") or [])

    async def department_create(self, body: Mapping[str, Any]) -> int:
        """Create a department; returns its id (WeCom assigns one when ``id`` is absent)."""
        payload = await self._write("POST", "department/create", body=dict(body))
        new_id = payload.get("id", body.get("id"))
        if not isinstance(new_id, int):
            raise PermanentError(f"department/create answered without an id: {new_id!r}",
                                 remote="wecom", endpoint="department/create")
        return new_id

    async def department_update(self, body: Mapping[str, Any]) -> None:
        """Update the fields present in ``body`` (``id`` required); absent fields stay."""
        await self._write("POST", "department/update", body=dict(body))

    async def department_delete(self, id: int) -> None:
        await self._write("GET", "department/delete", params={"id": id})

    # -- users ---------------------------------------------------------------------------

    async def user_list_id(self, limit: int = LIST_ID_MAX) -> AsyncIterator[dict[str, Any]]:
        """Every ``{"userid", "department"}`` row, one per user-department pair, following
        ``next_cursor`` until WeCom returns none. Works only with the 通讯录同步 secret.

        A failure part-way raises: the rows yielded before it are not a full listing, and
        must never be read as "everyone else was deleted"."""
        if not 1 <= limit <= LIST_ID_MAX:
            raise ValueError(f"limit must be within 1..{LIST_ID_MAX}, got {limit}")
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"limit": limit}
            if cursor:
                body["cursor"] = cursor
            payload = await self._request("POST", "user/list_id", body=body)
            for row in payload.get("dept_user") or []:
                yield row
            next_cursor = payload.get("next_cursor") or None
            if next_cursor is None:
                return
            if next_cursor == cursor:
                raise PermanentError("user/list_id returned the same cursor twice",
                                     remote="wecom", endpoint="user/list_id")
            cursor = next_cursor

    async def user_get(self, userid: str) -> dict[str, Any]:
        """The member record (envelope fields removed); NotFoundError (60111) when gone."""
        payload = await self._read("user/get", userid=userid)
        return _without_envelope(payload)

    async def user_simplelist(self, dept_id: int) -> list[dict[str, Any]]:
        """Direct members of one department: ``[{"userid", "name", "department", ...}]``."""
        payload = await self._read("user/simplelist", department_id=dept_id)
        return list(payload.get("userlist") or [])

    async def user_list(self, dept_id: int) -> list[dict[str, Any]]:
        """Full records of one department's direct members (restricted like user_get)."""
        payload = await self._read("user/list", department_id=dept_id)
        return list(payload.get("userlist") or [])

    async def user_create(self, body: Mapping[str, Any]) -> None:
        await self._write("POST", "user/create", body=dict(body))

    async def user_update(self, body: Mapping[str, Any]) -> None:
        """Update the fields present in ``body`` (``userid`` required). Department lists
        must be int arrays, or WeCom answers "wrong json format" (BadRequestError)."""
        await self._write("POST", "user/update", body=dict(body))

    async def user_delete(self, userid: str) -> None:
        await self._write("GET", "user/delete", params={"userid": userid})

    async def user_batchdelete(self, userids: Iterable[str]) -> None:
        """Delete in chunks of 200, in order; an invalid userid fails its whole chunk, and
        the chunks before it stay deleted."""
        for chunk in chunked(list(userids), BATCH_DELETE_MAX):
            await self._write("POST", "user/batchdelete", body={"useridlist": chunk})


def _without_envelope(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ("errcode", "errmsg")}
