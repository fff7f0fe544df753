"""The contacts API under ``/cgi-bin/`` (reference §3), as a list of Starlette routes.

Every answer is HTTP 200 with ``{"errcode", "errmsg", ...}``, errors included. Checks run
in WeCom's order: access token (41001/40014/42001), permission of the secret (48002),
the 2022 new-IP restriction (48009), then the parameters. Writes made here are never
called back: they come from the contact-sync secret, and WeCom does not echo those.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import errors
from .changes import Change
from .errors import ApiError
from .model import ROOT_ID
from .state import MAX_LIST_ID_LIMIT, Directory
from .tokens import Role, TokenStore
from .validation import (
    DEPARTMENT_FIELDS,
    USER_FIELDS,
    Kind,
    read_fields,
    wrong_format_suffix,
)

_BATCH_DELETE_FIELDS = {"useridlist": Kind.STR_LIST}
_LIST_ID_FIELDS = {"cursor": Kind.STR, "limit": Kind.INT}


@dataclass
class ApiSwitches:
    """The 2022 restrictions, switchable at run time."""

    restricted_reads: bool = False  # user/get, user/list, department/list answer 48009
    withhold_sensitive: bool = False  # no mobile, email, avatar, gender... in user views
    # Another app of the corp with its own callback URL sees the contact-sync secret's
    # writes (reference §3.6, last point): they are then called back like admin changes.
    callback_api_writes: bool = False


class Access:
    """What an endpoint demands of the caller's token."""

    READ = "read"  # any secret
    CONTACT_READ = "contact_read"  # the contact-sync secret only (user/list_id)
    WRITE = "write"  # the contact-sync secret only
    DETAIL_READ = "detail_read"  # any secret, unless restricted_reads (48009)


@dataclass
class Call:
    request: Request
    raw_body: bytes

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def optional_id(self, name: str) -> int | None:
        """A department id from the query; a non-number is an invalid id (60123)."""
        text = self.query(name)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise ApiError(errors.INVALID_DEPT_ID, f"{name}={text!r}") from None

    def required_id(self, name: str) -> int:
        dept_id = self.optional_id(name)
        if dept_id is None:
            raise ApiError(errors.INVALID_DEPT_ID, f"{name} missing")
        return dept_id

    def body(self) -> dict[str, Any]:
        if not self.raw_body.strip():
            raise ApiError(errors.INVALID_PARAMETER, "empty request body")
        try:
            value = json.loads(self.raw_body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(errors.INVALID_PARAMETER, "invalid json") from None
        if not isinstance(value, dict):
            raise ApiError(errors.INVALID_PARAMETER, "json body must be an object")
        return value


Handler = Callable[[Call], dict[str, Any]]


class ContactsApi:
    def __init__(self, directory: Directory, tokens: TokenStore, switches: ApiSwitches,
                 publish: Callable[[list[Change]], object] | None = None) -> None:
        self.directory = directory
        self.tokens = tokens
        self.switches = switches
        self._publish = publish

    def _written(self, changes: list[Change]) -> None:
        """Called back only when another app listens (``callback_api_writes``)."""
        if self.switches.callback_api_writes and self._publish is not None and changes:
            with self.directory.lock:
                self._publish(changes)

    def routes(self) -> list[Route]:
        table: list[tuple[str, str | None, Handler]] = [
            ("gettoken", None, self.gettoken),
            ("department/create", Access.WRITE, self.department_create),
            ("department/update", Access.WRITE, self.department_update),
            ("department/delete", Access.WRITE, self.department_delete),
            ("department/list", Access.DETAIL_READ, self.department_list),
            ("department/simplelist", Access.READ, self.department_simplelist),
            ("department/get", Access.READ, self.department_get),
            ("user/create", Access.WRITE, self.user_create),
            ("user/update", Access.WRITE, self.user_update),
            ("user/delete", Access.WRITE, self.user_delete),
            ("user/batchdelete", Access.WRITE, self.user_batchdelete),
            ("user/get", Access.DETAIL_READ, self.user_get),
            ("user/list", Access.DETAIL_READ, self.user_list),
            ("user/simplelist", Access.READ, self.user_simplelist),
            ("user/list_id", Access.CONTACT_READ, self.user_list_id),
        ]
        routes = [Route(f"/cgi-bin/{path}", self._endpoint(access, handler),
                        methods=["GET", "POST"], name=f"wecom:{path}")
                  for path, access, handler in table]
        routes.append(Route("/cgi-bin/{rest:path}", _unknown_api, methods=["GET", "POST"]))
        return routes

    def _endpoint(self, access: str | None,
                  handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            call = Call(request, await request.body())
            try:
                if access is not None:
                    self._authorize(call, access)
                return JSONResponse(handler(call))
            except ApiError as exc:
                return JSONResponse(exc.body())

        return endpoint

    def _authorize(self, call: Call, access: str) -> None:
        grant = self.tokens.check(call.query("access_token"))
        if access in (Access.WRITE, Access.CONTACT_READ) and grant.role is not Role.CONTACT:
            raise ApiError(errors.NO_PERMISSION, "this api needs the contact-sync secret")
        if access == Access.DETAIL_READ and self.switches.restricted_reads:
            raise ApiError(errors.NEW_IP_FORBIDDEN)

    # -- token ----------------------------------------------------------------------------

    def gettoken(self, call: Call) -> dict[str, Any]:
        grant = self.tokens.issue(call.query("corpid"), call.query("corpsecret"))
        return {"errcode": 0, "errmsg": "ok", "access_token": grant.token,
                "expires_in": math.ceil(self.tokens.ttl)}

    # -- departments ----------------------------------------------------------------------

    def department_create(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body(), DEPARTMENT_FIELDS)
        dept_id, changes = self.directory.create_department(values)
        self._written(changes)
        return {"errcode": 0, "errmsg": _ok("created", wrong), "id": dept_id}

    def department_update(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body(), DEPARTMENT_FIELDS)
        self._written(self.directory.update_department(values))
        return {"errcode": 0, "errmsg": _ok("updated", wrong)}

    def department_delete(self, call: Call) -> dict[str, Any]:
        dept_id = call.required_id("id")
        self._written(self.directory.delete_department(dept_id))
        return {"errcode": 0, "errmsg": "deleted"}

    def department_list(self, call: Call) -> dict[str, Any]:
        root = call.optional_id("id") or ROOT_ID
        with self.directory.lock:
            departments = self.directory.department_list(root)
        return {"errcode": 0, "errmsg": "ok", "department": departments}

    def department_simplelist(self, call: Call) -> dict[str, Any]:
        root = call.optional_id("id") or ROOT_ID
        with self.directory.lock:
            rows = self.directory.department_ids(root)
        return {"errcode": 0, "errmsg": "ok", "department_id": rows}

    def department_get(self, call: Call) -> dict[str, Any]:
        dept_id = call.required_id("id")
        with self.directory.lock:
            view = self.directory.department_view(self.directory.departments.get(dept_id))
        return {"errcode": 0, "errmsg": "ok", "department": view}

    # -- users ----------------------------------------------------------------------------

    def user_create(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body(), USER_FIELDS)
        values.pop("new_userid", None)
        self._written(self.directory.create_user(values))
        return {"errcode": 0, "errmsg": _ok("created", wrong)}

    def user_update(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body(), USER_FIELDS)
        if not values.get("userid"):
            raise ApiError(errors.MISSING_USERID)
        self._written(self.directory.update_user(values, by_api=True))
        return {"errcode": 0, "errmsg": _ok("updated", wrong)}

    def user_delete(self, call: Call) -> dict[str, Any]:
        userid = call.query("userid")
        if not userid:
            raise ApiError(errors.MISSING_USERID)
        self._written(self.directory.delete_user(userid))
        return {"errcode": 0, "errmsg": "deleted"}

    def user_batchdelete(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body(), _BATCH_DELETE_FIELDS)
        self._written(self.directory.batch_delete_users(values.get("useridlist", [])))
        return {"errcode": 0, "errmsg": _ok("deleted", wrong)}

    def user_get(self, call: Call) -> dict[str, Any]:
        userid = call.query("userid")
        if not userid:
            raise ApiError(errors.MISSING_USERID)
        with self.directory.lock:
            view = self.directory.users.find(userid).view(
                withhold_sensitive=self.switches.withhold_sensitive)
        return {"errcode": 0, "errmsg": "ok", **view}

    def user_list(self, call: Call) -> dict[str, Any]:
        dept_id = call.required_id("department_id")
        withhold = self.switches.withhold_sensitive
        with self.directory.lock:
            users = [u.view(withhold_sensitive=withhold) for u in self.directory.members(dept_id)]
        return {"errcode": 0, "errmsg": "ok", "userlist": users}

    def user_simplelist(self, call: Call) -> dict[str, Any]:
        dept_id = call.required_id("department_id")
        with self.directory.lock:
            users = [u.simple_view() for u in self.directory.members(dept_id)]
        return {"errcode": 0, "errmsg": "ok", "userlist": users}

    def user_list_id(self, call: Call) -> dict[str, Any]:
        values, wrong = read_fields(call.body() if call.raw_body.strip() else {}, _LIST_ID_FIELDS)
        rows, next_cursor = self.directory.list_id(values.get("cursor", ""),
                                                   values.get("limit", MAX_LIST_ID_LIMIT))
        return {"errcode": 0, "errmsg": _ok("ok", wrong), "next_cursor": next_cursor,
                "dept_user": rows}


def _ok(errmsg: str, wrong_fields: list[str]) -> str:
    return wrong_format_suffix(errmsg) if wrong_fields else errmsg


async def _unknown_api(request: Request) -> JSONResponse:
    path = request.url.path
    return JSONResponse({"errcode": 404, "errmsg": f"unknown api {path}"}, status_code=404)
