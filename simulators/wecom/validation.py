"""Field types and format rules for request bodies (pure: no state, no I/O).

Two layers, because WeCom fails in two ways:

* a field of the wrong JSON type (``"department": "1"`` for an int array) is *not an
  error*: the call answers errcode 0 with ``"updated. Warning: wrong json format. "`` and
  the field is silently not applied (reference §3.3, user/update pitfall). ``read_fields``
  reproduces that: it drops the field and reports that a warning is due.
* a well-typed value that breaks a rule (userid characters, name length...) is an error
  with its own errcode; the ``check_*`` functions raise ``ApiError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from . import errors
from .errors import ApiError


class Kind(Enum):
    STR = "string"
    INT = "integer"
    BOOL = "boolean"
    INT_LIST = "integer array"
    STR_LIST = "string array"
    OBJECT = "object"


USER_FIELDS: dict[str, Kind] = {
    "userid": Kind.STR, "new_userid": Kind.STR, "name": Kind.STR, "alias": Kind.STR,
    "mobile": Kind.STR, "department": Kind.INT_LIST, "order": Kind.INT_LIST,
    "position": Kind.STR, "gender": Kind.STR, "email": Kind.STR, "biz_mail": Kind.STR,
    "is_leader_in_dept": Kind.INT_LIST, "direct_leader": Kind.STR_LIST, "enable": Kind.INT,
    "avatar_mediaid": Kind.STR, "telephone": Kind.STR, "address": Kind.STR,
    "main_department": Kind.INT, "extattr": Kind.OBJECT, "to_invite": Kind.BOOL,
    "external_position": Kind.STR, "external_profile": Kind.OBJECT,
}
DEPARTMENT_FIELDS: dict[str, Kind] = {
    "id": Kind.INT, "name": Kind.STR, "name_en": Kind.STR, "parentid": Kind.INT,
    "order": Kind.INT,
}

MAX_USER_DEPARTMENTS = 100  # user/create: department "不超过100个"
MAX_DIRECT_LEADERS = 5
MAX_DEPT_ID = 2**32 - 1  # "32位整型", unsigned: ids up to 2^32 - 1 are accepted
MAX_ORDER = 2**32 - 1  # order "值范围是[0, 2^32)"

_USERID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]*$")
_MOBILE_RE = re.compile(r"^[0-9+\-]{1,32}$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")
_DEPT_NAME_FORBIDDEN = set('\\:?"<>|')


def wrong_format_suffix(errmsg: str) -> str:
    """``"updated"`` -> ``"updated. Warning: wrong json format. "`` (WeCom's exact text)."""
    return f"{errmsg}. Warning: wrong json format. "


def _matches(value: Any, kind: Kind) -> bool:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if kind is Kind.STR:
        return isinstance(value, str)
    if kind is Kind.INT:
        return is_int(value)
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.INT_LIST:
        return isinstance(value, list) and all(is_int(v) for v in value)
    if kind is Kind.STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict)


def read_fields(body: Mapping[str, Any],
                spec: Mapping[str, Kind]) -> tuple[dict[str, Any], list[str]]:
    """Keep the known fields whose JSON type is right; name the ones dropped.

    ``read_fields({"userid": "a", "department": "1"}, USER_FIELDS)``
    -> ``({"userid": "a"}, ["department"])``. Unknown keys are ignored, ``null`` is absent.
    """
    values: dict[str, Any] = {}
    wrong: list[str] = []
    for name, kind in spec.items():
        if name not in body or body[name] is None:
            continue
        value = body[name]
        if _matches(value, kind):
            values[name] = list(value) if isinstance(value, list) else value
        else:
            wrong.append(name)
    return values, wrong


def check_userid(userid: str) -> None:
    """1-64 bytes; digits, letters and ``_-@.``; the first character a letter or digit."""
    if not userid:
        raise ApiError(errors.MISSING_USERID)
    if len(userid.encode("utf-8")) > 64:
        raise ApiError(errors.INVALID_PARAMETER, "userid longer than 64 bytes")
    if not _USERID_RE.match(userid) or not userid.isascii():
        raise ApiError(errors.INVALID_USERID, userid)


def check_user_name(name: str) -> None:
    if not name.strip() or len(name) > 64:
        raise ApiError(errors.USER_NAME_INVALID)


def check_mobile(mobile: str) -> None:
    """Up to 32 characters, digits, ``+`` and ``-`` only (no spaces)."""
    if mobile and not _MOBILE_RE.match(mobile):
        raise ApiError(errors.MOBILE_INVALID, mobile)


def check_email(email: str, *, errcode: int = errors.EMAIL_INVALID) -> None:
    if email and (len(email) > 64 or not _EMAIL_RE.match(email)):
        raise ApiError(errcode, email)


def check_gender(gender: str) -> None:
    if gender not in ("0", "1", "2"):
        raise ApiError(errors.INVALID_PARAMETER, f"gender must be '0', '1' or '2', not {gender!r}")


def check_position(position: str) -> None:
    if len(position) > 128:
        raise ApiError(errors.POSITION_INVALID)


def check_extattr(extattr: Mapping[str, Any]) -> None:
    """``{"attrs": [{"type": 0, "name", "text": {"value"}} | {"type": 1, "name", "web"}]}``.

    Checked here because a malformed item would otherwise break the callback rendering."""
    attrs = extattr.get("attrs", [])
    if not isinstance(attrs, list):
        raise ApiError(errors.INVALID_PARAMETER, "extattr.attrs must be an array")
    for attr in attrs:
        kind = attr.get("type", 0) if isinstance(attr, dict) else None
        body = attr.get("web" if kind == 1 else "text") if isinstance(attr, dict) else None
        if (kind not in (0, 1) or not isinstance(attr.get("name"), str)
                or not isinstance(body, dict)):
            raise ApiError(errors.INVALID_PARAMETER, f"invalid extattr item {attr!r}")


def check_department_name(name: str) -> None:
    """1-32 characters, none of ``\\:?"<>|``."""
    if not name or len(name) > 32:
        raise ApiError(errors.DEPT_NAME_LENGTH)
    bad = _DEPT_NAME_FORBIDDEN.intersection(name)
    if bad:
        raise ApiError(errors.DEPT_NAME_CHARS, "".join(sorted(bad)))


def check_order(order: int) -> None:
    if not 0 <= order <= MAX_ORDER:
        raise ApiError(errors.INVALID_PARAMETER, "order out of range [0, 2^32)")


def check_department_list(department: list[int]) -> None:
    """Shape only; existence is the directory's job."""
    if not department:
        raise ApiError(errors.INVALID_DEPARTMENT_LIST, "empty department list")
    if len(department) > MAX_USER_DEPARTMENTS:
        raise ApiError(errors.TOO_MANY_DEPARTMENTS)
    if len(set(department)) != len(department):
        raise ApiError(errors.INVALID_DEPARTMENT_LIST, "duplicated department id")


def check_flags(flags: list[int], department: list[int], *, errcode: int, label: str) -> None:
    """``order`` and ``is_leader_in_dept`` pair up one-to-one with ``department``."""
    if len(flags) != len(department):
        raise ApiError(errcode, f"{label} has {len(flags)} items for {len(department)} departments")
