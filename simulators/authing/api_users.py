"""/api/v3 user endpoints (reference §2.2) and the token endpoint (§1.3)."""

from __future__ import annotations

from typing import Any

from .dto import USER_STATUSES, user_dto
from .endpoint import Deps, Endpoint
from .errors import bad_param, user_not_found
from .params import Params
from .queries import UserQuery
from .records import User

UPDATE_OPTIONS = {"userIdType", "resetPasswordOnFirstLogin", "resetPasswordOnNextLogin",
                  "passwordEncryptType", "autoGeneratePassword",
                  "sendPasswordResetedNotification"}
LIST_OPTIONS = {"pagination", "sort", "fuzzySearchOn", "withCustomData", "withPost",
                "withIdentities", "withDepartmentIds", "flatCustomData"}


def dto_flags(p: Params) -> dict[str, bool]:
    """The ``with*`` switches every user read accepts."""
    return {"with_custom": p.flag("withCustomData"), "with_departments": p.flag(
        "withDepartmentIds"), "flat_custom": p.flag("flatCustomData"),
        "with_identities": p.flag("withIdentities"), "with_post": p.flag("withPost")}


def resolve_users(d: Deps, ids: list[str], id_type: str | None) -> list[User]:
    """All or nothing: one unknown id fails the call with 404 用户不存在."""
    found = [d.state.find_user(i, id_type) for i in ids]
    if any(u is None for u in found):
        raise user_not_found()
    return [u for u in found if u is not None]


def get_management_token(d: Deps, p: Params) -> Any:
    return d.tokens.issue(p.get("accessKeyId"), p.get("accessKeySecret"))


def create_user(d: Deps, p: Params) -> Any:
    body = {k: v for k, v in p.data.items() if k != "options"}
    return user_dto(d.state.create_users([body], p.obj("options"))[0], with_custom=True,
                    with_departments=True)


def create_users_batch(d: Deps, p: Params) -> Any:
    p.only({"list", "options"})
    users = d.state.create_users(p.array("list", required=True) or [], p.obj("options"))
    return [user_dto(u, with_custom=True, with_departments=True) for u in users]


def update_user(d: Deps, p: Params) -> Any:
    opts = p.sub("options")
    opts.only(UPDATE_OPTIONS)
    user = d.state.user(p.req("userId"), opts.text("userIdType"))
    fields = {k: v for k, v in p.data.items() if k not in ("userId", "options")}
    return user_dto(d.state.update_users([(user, fields)])[0], with_custom=True,
                    with_departments=True)


def update_user_batch(d: Deps, p: Params) -> Any:
    p.only({"list", "options"})
    p.sub("options").only(UPDATE_OPTIONS - {"userIdType"})
    changes = []
    for item in p.array("list", required=True) or []:
        if not isinstance(item, dict):
            raise bad_param("list")
        user = d.state.user(Params(item).req("userId"))
        changes.append((user, {k: v for k, v in item.items() if k != "userId"}))
    return [user_dto(u, with_custom=True, with_departments=True)
            for u in d.state.update_users(changes)]


def delete_users_batch(d: Deps, p: Params) -> Any:
    p.only({"userIds", "options"})
    opts = p.sub("options")
    opts.only({"userIdType"})
    d.state.delete_users(resolve_users(d, p.texts("userIds", required=True) or [],
                                opts.text("userIdType")))
    return {"success": True}


def resign_user(d: Deps, p: Params) -> Any:
    p.only({"userId", "userIdType"})
    d.state.resign_users([d.state.user(p.req("userId"), p.text("userIdType"))])
    return {"success": True}


def resign_user_batch(d: Deps, p: Params) -> Any:
    p.only({"userIds", "userIdType"})
    d.state.resign_users(resolve_users(d, p.texts("userIds", required=True) or [],
                                p.text("userIdType")))
    return {"success": True}


def get_user(d: Deps, p: Params) -> Any:
    return user_dto(d.state.user(p.req("userId"), p.text("userIdType")), **dto_flags(p))


def get_user_batch(d: Deps, p: Params) -> Any:
    ids = p.texts("userIds", required=True) or []
    found = (d.state.find_user(i, p.text("userIdType")) for i in ids)
    return [user_dto(u, **dto_flags(p)) for u in found if u is not None]


def list_users(d: Deps, p: Params) -> Any:
    p.only({"keywords", "advancedFilter", "searchQuery", "options"})
    if p.get("searchQuery") is not None:
        raise bad_param("searchQuery")  # an ES query; the simulator does not parse them
    opts = p.sub("options")
    opts.only(LIST_OPTIONS)
    page, limit = opts.sub("pagination").page()
    query = UserQuery(d.state, p.array("advancedFilter", max_len=None),
                      p.text("keywords"), opts.texts("fuzzySearchOn", max_len=None),
                      opts.array("sort", max_len=None))
    total, users = query.run(page, limit)
    return {"totalCount": total, "list": [user_dto(u, **dto_flags(opts)) for u in users]}


def list_users_legacy(d: Deps, p: Params) -> Any:
    page, limit = p.page()
    query = UserQuery(d.state)
    status = p.text("status", choices=USER_STATUSES)
    if status is not None:
        query.where(f"status={status}", lambda u: u.status == status)
    start, end = p.integer("updatedAtStart"), p.integer("updatedAtEnd")
    if start is not None:  # seconds, inclusive
        query.where(f"start={start}", lambda u: u.updated_at // 1000 >= start)
    if end is not None:
        query.where(f"end={end}", lambda u: u.updated_at // 1000 <= end)
    total, users = query.run(page, limit)
    return {"totalCount": total, "list": [user_dto(u, **dto_flags(p)) for u in users]}


def is_user_exists(d: Deps, p: Params) -> Any:
    p.only({"username", "email", "phone", "externalId"})
    keys = {"username": "username", "email": "email", "phone": "phone",
            "externalId": "external_id"}
    exists = any(d.state.find_user(value, keys[name]) is not None
                 for name in keys if (value := p.text(name)) is not None)
    return {"exists": exists}


ENDPOINTS = [
    Endpoint("get-management-token", "POST", get_management_token, public=True),
    Endpoint("create-user", "POST", create_user, write=True),
    Endpoint("create-users-batch", "POST", create_users_batch, write=True),
    Endpoint("update-user", "POST", update_user, write=True),
    Endpoint("update-user-batch", "POST", update_user_batch, write=True),
    Endpoint("delete-users-batch", "POST", delete_users_batch, write=True),
    Endpoint("resign-user", "POST", resign_user, write=True),
    Endpoint("resign-user-batch", "POST", resign_user_batch, write=True),
    Endpoint("get-user", "GET", get_user),
    Endpoint("get-user-batch", "GET", get_user_batch),
    Endpoint("list-users", "POST", list_users),
    Endpoint("list-users", "GET", list_users_legacy),
    Endpoint("is-user-exists", "POST", is_user_exists),
]
