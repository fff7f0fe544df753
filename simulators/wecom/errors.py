"""WeCom errcodes the simulator answers with, and the one exception that carries them.

Real WeCom answers every business error with HTTP 200 and ``{"errcode", "errmsg"}`` in the
body, so a client must read the body, never the status. Codes and meanings follow the
official global table (reference/wecom-platform.md §3.4, copied from path/90313). Where
the docs do not say which code an endpoint uses, the choice is written next to the code.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

SYSTEM_BUSY = -1
INVALID_SECRET = 40001
INVALID_USERID = 40003
INVALID_CORPID = 40013
INVALID_TOKEN = 40014
INVALID_USERID_LIST = 40031  # batchdelete: an unknown userid; direct_leader: unknown userid
INVALID_USERID_LIST_SIZE = 40032  # batchdelete: empty or more than 200
INVALID_PARAMETER = 40058  # malformed JSON, over-long values, bad cursor / limit
INVALID_DEPARTMENT_LIST = 40066  # empty or duplicated department list
INVALID_TAG_ID = 40068
INVALID_TAG_NAME = 40071
MISSING_TOKEN = 41001
MISSING_CORPID = 41002
MISSING_SECRET = 41004
MISSING_USERID = 41009
TOKEN_EXPIRED = 42001
FREQ_LIMIT = 45009
CONCURRENCY_LIMIT = 45033
NO_PERMISSION = 48002
NEW_IP_FORBIDDEN = 48009
DEPT_NAME_LENGTH = 60001
DEPT_NOT_FOUND = 60003  # writes that target a missing department, user department lists
PARENT_NOT_FOUND = 60004
DEPT_HAS_MEMBERS = 60005
DEPT_HAS_CHILDREN = 60006
DELETE_ROOT = 60007
DEPT_EXISTS = 60008
DEPT_NAME_CHARS = 60009
DEPT_CYCLE = 60010
USERID_EXISTS = 60102
MOBILE_INVALID = 60103
MOBILE_EXISTS = 60104
EMAIL_INVALID = 60105
EMAIL_EXISTS = 60106
TOO_MANY_DEPARTMENTS = 60110
USERID_NOT_FOUND = 60111
USER_NAME_INVALID = 60112
INVALID_DEPT_ID = 60123  # reads of a missing department, ids <= 1 or beyond 32 bits on create
INVALID_PARENT_ID = 60124  # also: the parent is already at the 15th level (no public code)
MISSING_DEPARTMENT = 60127
NO_MOBILE_NOR_EMAIL = 60129
LEADER_COUNT_MISMATCH = 60132
POSITION_INVALID = 301012

_ERRMSG: dict[int, str] = {
    SYSTEM_BUSY: "system busy",
    INVALID_SECRET: "invalid credential",
    INVALID_USERID: "invalid userid",
    INVALID_CORPID: "invalid corpid",
    INVALID_TOKEN: "invalid access_token",
    INVALID_USERID_LIST: "invalid userid list",
    INVALID_USERID_LIST_SIZE: "invalid userid list size",
    INVALID_PARAMETER: "invalid parameter",
    INVALID_DEPARTMENT_LIST: "invalid department list",
    INVALID_TAG_ID: "invalid tagid",
    INVALID_TAG_NAME: "invalid tag name",
    MISSING_TOKEN: "access_token missing",
    MISSING_CORPID: "corpid missing",
    MISSING_SECRET: "corpsecret missing",
    MISSING_USERID: "userid missing",
    TOKEN_EXPIRED: "access_token expired",
    FREQ_LIMIT: "api freq out of limit",
    CONCURRENCY_LIMIT: "api concurrent out of limit",
    NO_PERMISSION: "api forbidden",
    NEW_IP_FORBIDDEN: "api forbidden, contact sync is not allowed to read details from new ip",
    DEPT_NAME_LENGTH: "invalid department name length",
    DEPT_NOT_FOUND: "department not found",
    PARENT_NOT_FOUND: "parent department not found",
    DEPT_HAS_MEMBERS: "department contains user",
    DEPT_HAS_CHILDREN: "department contains sub-department",
    DELETE_ROOT: "not allow to delete root department",
    DEPT_EXISTS: "department existed",
    DEPT_NAME_CHARS: "department name contains invalid characters",
    DEPT_CYCLE: "department cycle",
    USERID_EXISTS: "userid existed",
    MOBILE_INVALID: "mobile invalid",
    MOBILE_EXISTS: "mobile existed",
    EMAIL_INVALID: "email invalid",
    EMAIL_EXISTS: "email existed",
    TOO_MANY_DEPARTMENTS: "user department count exceeds limit",
    USERID_NOT_FOUND: "userid not found",
    USER_NAME_INVALID: "invalid name",
    INVALID_DEPT_ID: "invalid party id",
    INVALID_PARENT_ID: "invalid parent party id",
    MISSING_DEPARTMENT: "department missing",
    NO_MOBILE_NOR_EMAIL: "missing mobile or email",
    LEADER_COUNT_MISMATCH: "is_leader_in_dept count not equal to department count",
    POSITION_INVALID: "invalid position",
}


class ApiError(Exception):
    """A business error, answered as ``{"errcode", "errmsg"}`` with HTTP 200."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        super().__init__(f"{errcode} {detail or describe(errcode)}")
        self.errcode = errcode
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return error_body(self.errcode, self.detail)


def describe(errcode: int) -> str:
    return _ERRMSG.get(errcode, "error")


def error_body(errcode: int, detail: str | None = None) -> dict[str, Any]:
    """``{"errcode": 60111, "errmsg": "userid not found: bob, hint: [...], more info at ..."}``.

    The hint and link mimic WeCom's errmsg shape, so a client that matches errmsg text
    instead of errcode fails here as it would in production.
    """
    text = describe(errcode) + (f": {detail}" if detail else "")
    hint = f"{int(time.time())}-{secrets.token_hex(4)}"
    return {
        "errcode": errcode,
        "errmsg": f"{text}, hint: [{hint}], more info at "
                  f"https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }
