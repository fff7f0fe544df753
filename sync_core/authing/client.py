"""Async client for the Authing Management API v3 (reference/authing-api.md §1–3).

Authentication is the bearer-token option (§1.3): a management token from
``get-management-token``, cached and refreshed early, sent with ``x-authing-userpool-id``
taken from the token's ``scoped_userpool_id`` claim. On an auth failure the token is
refreshed once and the call repeated.

Authing answers errors with HTTP 200 as often as not, so success is the body's
``statusCode == 200`` and nothing else; a failure becomes an error from
``errors.from_authing``. Pages hold at most 50 rows and batches at most 50 items.

Every call that changes Authing goes through ``_write``, which refuses it in dry-run mode.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import math
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Unpack

import httpx
from pydantic import SecretStr

from sync_core.errors import AuthError, BadRequestError, NotFoundError, PermanentError, from_authing
from sync_core.http.client import ClientOptions, TokenAuthClient
from sync_core.http.retry import (
    chunked,
    decode_json,
    gather_or_cancel,
    in_order,
    json_object,
    parse_retry_after,
)
from sync_core.http.shared import read_once

DEFAULT_BASE_URL = "https://api.authing.cn"
_DONE = object()  # the end of a listing
PAGE_LIMIT = 50  # "limit must less than 50"
BATCH_LIMIT = 50  # "数组长度限制：50"
_TOKEN_ENDPOINT = "get-management-token"
# Writes that may not be resent after an ambiguous failure (timeout, 5xx): Authing has no
# idempotency key, and openDepartmentId is not documented as unique (reference §3).
_NOT_IDEMPOTENT = frozenset({"create-user", "create-users-batch", "delete-users-batch",
                             "create-organization", "create-department"})

EXTENSION_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("USER", "wechatwork_user_id", "企业微信成员 UserID"),
    ("USER", "wechatwork_department_ids", "企业微信部门 ID 列表"),
    ("DEPARTMENT", "wechatwork_department_id", "企业微信部门 ID"),
    ("DEPARTMENT", "wechatwork_parent_department_id", "企业微信父部门 ID"),
)
"""(targetType, key, label) of the STRING extension fields DESIGN.md names."""


class AuthingClient(TokenAuthClient):
    """The Authing management API for one user pool and one organization."""

    remote_name = "authing"
    path_prefix = "/api/v3/"

    def __init__(self, http: httpx.AsyncClient, access_key_id: str,
                 access_key_secret: str | SecretStr, *, organization_code: str = "wecom",
                 **options: Unpack[ClientOptions]) -> None:
        options.setdefault("base_url", DEFAULT_BASE_URL)
        super().__init__(http, access_key_id, access_key_secret, **options)
        self.access_key_id = access_key_id
        self.organization_code = organization_code
        self._parsed: weakref.WeakKeyDictionary[httpx.Response, Any] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return (f"AuthingClient(access_key_id={self.access_key_id!r}, base={self._base!r}, "
                f"organization_code={self.organization_code!r}, dry_run={self.dry_run})")

    # -- token and envelope ----------------------------------------------------------

    async def _fetch_token(self) -> tuple[str, float]:
        async def attempt() -> tuple[str, float]:
            response = await self._remote.send(
                "POST", self._base + _TOKEN_ENDPOINT, endpoint=_TOKEN_ENDPOINT,
                json={"accessKeyId": self.access_key_id, "accessKeySecret": self._secret})
            try:
                data = self._decode(_TOKEN_ENDPOINT, response)
            except PermanentError as exc:
                # A refused key is a configuration error, whatever statusCode says.
                raise AuthError(f"management token refused: {exc.message}", code=exc.code,
                                status=exc.status, request_id=exc.request_id,
                                remote="authing", endpoint=_TOKEN_ENDPOINT) from exc
            token = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise AuthError("get-management-token returned no access_token",
                                remote="authing", endpoint=_TOKEN_ENDPOINT)
            return token, float(data.get("expires_in") or 7200)

        return await self._remote.observed(_TOKEN_ENDPOINT, attempt)

    async def _exchange(self, method: str, endpoint: str, token: str,
                        params: Mapping[str, Any] | None, body: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}",
                   "x-authing-userpool-id": scoped_userpool_id(token) or self.access_key_id}
        return await self._remote.send(method, self._base + endpoint, endpoint=endpoint,
                                         params=params, json=body, headers=headers)

    def _token_rejected(self, endpoint: str, response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        try:
            body = decode_json(response)
        except ValueError:
            return False
        # Kept for _decode, which comes next: a list-users page is worth parsing once.
        self._parsed[response] = body
        return isinstance(body, dict) and body.get("statusCode") == 401

    async def _get(self, endpoint: str, **params: Any) -> Any:
        return await self._request("GET", endpoint, params=_drop_none(params))

    async def _get_or_none(self, endpoint: str, **params: Any) -> Any:
        try:
            return await self._get(endpoint, **params)
        except NotFoundError:
            return None

    async def _query(self, endpoint: str, body: Mapping[str, Any]) -> Any:
        """A read that Authing models as a POST (list-users with filters)."""
        return await self._request("POST", endpoint, body=dict(body))

    async def send_planned(self, endpoint: str, body: Mapping[str, Any]) -> Any:
        """Carry out one planned ``Request`` (endpoint after ``/api/v3/``): the executor's
        way in, through the same dry-run choke point as every other write."""
        return await self._write(endpoint, body)

    async def _write(self, endpoint: str, body: Mapping[str, Any]) -> Any:
        """The one path for calls that change Authing; refuses them in dry-run mode."""
        self._refuse_in_dry_run("POST", endpoint)
        return await self._request("POST", endpoint, body=_drop_none(body),
                                   idempotent=endpoint not in _NOT_IDEMPOTENT)

    def _decode(self, endpoint: str, response: httpx.Response) -> Any:
        body = self._parsed.pop(response, None)
        if not isinstance(body, dict):
            body = json_object(response, remote="authing", endpoint=endpoint)
        status = body.get("statusCode")
        if status is None and response.status_code != 200:
            status = response.status_code
        if not isinstance(status, int):
            raise PermanentError(f"response without a statusCode (HTTP {response.status_code})",
                                 remote="authing", endpoint=endpoint)
        if status == 200:
            return body.get("data")
        raise from_authing(status, str(body.get("message") or ""), api_code=body.get("apiCode"),
                           request_id=body.get("requestId"), endpoint=endpoint,
                           retry_after=parse_retry_after(response))

    async def _pages(self, fetch: Callable[[int], Awaitable[Any]],
                     key: str) -> AsyncIterator[dict[str, Any]]:
        """Rows of a ``{totalCount, list}`` listing: page 1 first, then the remaining pages
        ``max_concurrency`` at a time, in page order. Rows shifted onto a second page by a
        concurrent insert are yielded once (deduplicated by ``key``)."""
        first = await fetch(1)
        total = int(first.get("totalCount") or 0) if isinstance(first, dict) else 0
        seen: set[Any] = set()
        # Twice the call cap ahead: the next calls wait at the cap, not behind our parsing.
        pages = (fetch(page) for page in range(2, math.ceil(total / PAGE_LIMIT) + 1))
        async with contextlib.aclosing(in_order(pages, 2 * self._remote.max_concurrency)
                                       ) as rest:
            data: Any = first
            while data is not _DONE:
                for row in _rows(data):
                    ident = row.get(key)
                    if ident is None or ident not in seen:
                        seen.add(ident)
                        yield row
                data = await anext(rest, _DONE)

    # -- users ---------------------------------------------------------------------------

    async def get_user(self, *, external_id: str | None = None, user_id: str | None = None,
                       username: str | None = None) -> dict[str, Any] | None:
        """The user with custom data and department ids, or None when absent. One selector:
        its ``userIdType`` (reference/authing-api.md §2.1)."""
        ident, id_type = _one_of(user_id=user_id, external_id=external_id, username=username)
        # One read for the source and the target reader of one entity (http.shared); the
        # record is shared, so neither may change it.
        user: dict[str, Any] | None = await read_once(("get-user", ident, id_type), lambda: (
            self._get_or_none("get-user", userId=ident, userIdType=id_type,
                              withCustomData=True, withDepartmentIds=True)))
        return user

    async def get_users_by_external_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{externalId: user}`` for those of ``ids`` that exist; 50 ids per list-users
        call (``externalId IN [...]``), the calls run concurrently."""
        unique = list(dict.fromkeys(ids))

        async def lookup(chunk: list[str]) -> Any:
            return await self._query("list-users", {
                "advancedFilter": [{"field": "externalId", "operator": "IN", "value": chunk}],
                "options": _list_options(1)})

        found: dict[str, dict[str, Any]] = {}
        for data in await gather_or_cancel(lookup(c) for c in chunked(unique, BATCH_LIMIT)):
            for user in _rows(data):
                if user.get("externalId") is not None:
                    found[user["externalId"]] = user
        return found

    async def find_users(self, field: str, value: str) -> list[dict[str, Any]]:
        """Users whose ``field`` (email, phone, username, ...) equals ``value``: how an
        unmanaged account that would collide with a WeCom user is found."""
        data = await self._query("list-users", {
            "advancedFilter": [{"field": field, "operator": "EQUAL", "value": value}],
            "options": _list_options(1)})
        return list(_rows(data))

    async def list_users(self) -> AsyncIterator[dict[str, Any]]:
        """Every user in the pool, with custom data and department ids. A failed page
        raises part-way: what was yielded before is not a full listing."""
        async def page(number: int) -> Any:
            return await self._query("list-users", {"options": _list_options(number)})

        async for user in self._pages(page, "userId"):
            yield user

    async def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self._write("create-user", body) or {})

    async def create_users_batch(self, users: Sequence[Mapping[str, Any]],
                                 options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Create in chunks of 50, in order; a failing chunk stops the rest."""
        created: list[dict[str, Any]] = []
        for chunk in chunked(list(users), BATCH_LIMIT):
            created.extend(await self._write("create-users-batch",
                                             {"list": chunk, "options": _copy(options)}) or [])
        return created

    async def update_user(self, fields: Mapping[str, Any], *, user_id: str | None = None,
                          external_id: str | None = None) -> dict[str, Any]:
        ident, id_type = _one_of(user_id=user_id, external_id=external_id)
        options = {**(fields.get("options") or {}), "userIdType": id_type}
        body = {**fields, "userId": ident, "options": options}
        return dict(await self._write("update-user", body) or {})

    async def update_user_batch(self, users: Sequence[Mapping[str, Any]],
                                options: Mapping[str, Any] | None = None
                                ) -> list[dict[str, Any]]:
        """Update in chunks of 50. Batch updates take Authing ``userId``s only."""
        updated: list[dict[str, Any]] = []
        for chunk in chunked(list(users), BATCH_LIMIT):
            updated.extend(await self._write("update-user-batch",
                                             {"list": chunk, "options": _copy(options)}) or [])
        return updated

    async def delete_users(self, ids: Iterable[str], id_type: str = "user_id") -> None:
        """Hard-delete in chunks of 50 (``id_type``: user_id, external_id, ...)."""
        for chunk in chunked(list(ids), BATCH_LIMIT):
            await self._write("delete-users-batch",
                              {"userIds": chunk, "options": {"userIdType": id_type}})

    async def resign_user(self, *, user_id: str | None = None,
                          external_id: str | None = None) -> None:
        """Mark the user resigned: memberships removed, account disabled, record kept."""
        ident, id_type = _one_of(user_id=user_id, external_id=external_id)
        await self._write("resign-user", {"userId": ident, "userIdType": id_type})

    async def set_user_departments(self, user_id: str,
                                   departments: Sequence[Mapping[str, Any]], *,
                                   id_type: str = "user_id") -> None:
        """Replace the user's memberships; ``departments`` hold Authing department ids
        (``{departmentId, isLeader?, isMainDepartment?}``), at most 50."""
        if len(departments) > BATCH_LIMIT:
            raise BadRequestError(f"{len(departments)} departments exceed Authing's limit of "
                                  f"{BATCH_LIMIT}", remote="authing",
                                  endpoint="set-user-departments")
        await self._write("set-user-departments", {
            "userId": user_id, "departments": [dict(d) for d in departments],
            "options": {"userIdType": id_type}})

    async def get_user_departments(self, user_id: str, *,
                                   id_type: str = "user_id") -> list[dict[str, Any]]:
        async def page(number: int) -> Any:
            return await self._get("get-user-departments", userId=user_id, userIdType=id_type,
                                   page=number, limit=PAGE_LIMIT, withCustomData=True)

        return [row async for row in self._pages(page, "departmentId")]

    # -- organization and departments -----------------------------------------------------

    async def get_organization(self, code: str | None = None) -> dict[str, Any] | None:
        org: dict[str, Any] | None = await self._get_or_none(
            "get-organization", organizationCode=code or self.organization_code)
        return org

    async def create_organization(self, name: str, *, code: str | None = None,
                                  open_department_id: str = "1",
                                  description: str | None = None) -> dict[str, Any]:
        """The tree root; ``open_department_id`` "1" makes it WeCom's root department."""
        return dict(await self._write("create-organization", {
            "organizationName": name, "organizationCode": code or self.organization_code,
            "openDepartmentId": open_department_id, "description": description}) or {})

    async def get_department(self, *, open_department_id: str | None = None,
                             department_id: str | None = None) -> dict[str, Any] | None:
        ident, id_type = _one_of(department_id=department_id,
                                 open_department_id=open_department_id)
        dept: dict[str, Any] | None = await self._get_or_none("get-department",
                                       organizationCode=self.organization_code,
                                       departmentId=ident, departmentIdType=id_type,
                                       withCustomData=True)
        return dept

    async def get_all_departments(self) -> list[dict[str, Any]]:
        """Every department of the organization below its root, with custom data."""
        data = await self._get("get-all-departments", organizationCode=self.organization_code,
                               withCustomData=True)
        return _rows(data)

    async def list_children_departments(self, *, open_department_id: str | None = None,
                                        department_id: str | None = None
                                        ) -> list[dict[str, Any]]:
        ident, id_type = _one_of(department_id=department_id,
                                 open_department_id=open_department_id)
        data = await self._get("list-children-departments",
                               organizationCode=self.organization_code, departmentId=ident,
                               departmentIdType=id_type, withCustomData=True)
        return _rows(data)

    async def create_department(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` as create-department takes it (``departmentIdType`` types the parent id);
        ``organizationCode`` defaults to the client's."""
        full = {"organizationCode": self.organization_code, **body}
        return dict(await self._write("create-department", full) or {})

    async def update_department(self, fields: Mapping[str, Any], *,
                                open_department_id: str | None = None,
                                department_id: str | None = None) -> dict[str, Any]:
        ident, id_type = _one_of(department_id=department_id,
                                 open_department_id=open_department_id)
        body = {"organizationCode": self.organization_code, **fields,
                "departmentId": ident, "departmentIdType": id_type}
        return dict(await self._write("update-department", body) or {})

    async def delete_department(self, *, open_department_id: str | None = None,
                                department_id: str | None = None) -> None:
        """Authing refuses to delete a department that still has members or children."""
        ident, id_type = _one_of(department_id=department_id,
                                 open_department_id=open_department_id)
        await self._write("delete-department", {
            "organizationCode": self.organization_code, "departmentId": ident,
            "departmentIdType": id_type})

    async def list_department_members(self, *, open_department_id: str | None = None,
                                      department_id: str | None = None,
                                      include_children: bool = False
                                      ) -> AsyncIterator[dict[str, Any]]:
        ident, id_type = _one_of(department_id=department_id,
                                 open_department_id=open_department_id)

        async def page(number: int) -> Any:
            return await self._get("list-department-members",
                                   organizationCode=self.organization_code,
                                   departmentId=ident, departmentIdType=id_type,
                                   includeChildrenDepartments=include_children, page=number,
                                   limit=PAGE_LIMIT, withCustomData=True,
                                   withDepartmentIds=True)

        async for user in self._pages(page, "userId"):
            yield user

    # -- custom fields ---------------------------------------------------------------------

    async def get_custom_fields(self, target_type: str) -> list[dict[str, Any]]:
        return _rows(await self._get("get-custom-fields", targetType=target_type))

    async def set_custom_fields(self, fields: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create or update field definitions (key and dataType cannot change later)."""
        return _rows(await self._write("set-custom-fields", {"list": [dict(f) for f in fields]}))

    async def ensure_custom_fields(self) -> tuple[str, ...]:
        """Define the missing ``EXTENSION_FIELDS``; returns the keys it defined (none when
        all exist), so calling it at every start-up writes nothing after the first."""
        missing: list[dict[str, Any]] = []
        for target in dict.fromkeys(target for target, _, _ in EXTENSION_FIELDS):
            existing = {f.get("key") for f in await self.get_custom_fields(target)}
            missing.extend(
                {"targetType": target, "key": key, "dataType": "STRING", "label": label}
                for t, key, label in EXTENSION_FIELDS if t == target and key not in existing)
        if missing:
            await self.set_custom_fields(missing)
        return tuple(f["key"] for f in missing)


@functools.lru_cache(maxsize=8)
def scoped_userpool_id(token: str) -> str | None:
    """The ``scoped_userpool_id`` claim of a JWT, read without verifying the signature (the
    token came straight from Authing over TLS); None when absent or unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    value = claims.get("scoped_userpool_id") if isinstance(claims, dict) else None
    return value if isinstance(value, str) and value else None


def _one_of(**selectors: str | None) -> tuple[str, str]:
    """``(value, id_type)`` of the one selector given: ``_one_of(user_id=None,
    external_id="zs")`` → ``("zs", "external_id")``."""
    given = [(value, name) for name, value in selectors.items() if value is not None]
    if len(given) != 1:
        raise ValueError(f"pass exactly one of {', '.join(selectors)}")
    return given[0]


def _list_options(page: int) -> dict[str, Any]:
    return {"pagination": {"page": page, "limit": PAGE_LIMIT},
            "withCustomData": True, "withDepartmentIds": True}


def _rows(data: Any) -> list[dict[str, Any]]:
    """The rows of a ``data`` that is either a list or ``{totalCount, list}``."""
    if isinstance(data, dict):
        data = data.get("list")
    return [row for row in data or [] if isinstance(row, dict)]


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _copy(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(options) if options is not None else None
