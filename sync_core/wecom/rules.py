"""WeCom's write-side field rules (pure), checked before any call so that a record that
would be refused gets a clear per-item error and no WeCom call.

Sources: reference/wecom-platform.md §3.3 (user/create: userid 1-64 bytes of letters,
digits and ``_-@.``, first a letter or digit; name 1-64 characters; at most 100
departments; a mobile or an email on create, 60129), §3.2 and §3.6 (department names 1-32
characters, none of ``\\:*?"<>|``; at most 15 levels).
Each check answers the problems it found, as sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

USERID_MAX_BYTES = 64
NAME_MAX_CHARS = 64
MAX_MEMBER_DEPARTMENTS = 100
DEPARTMENT_NAME_MAX_CHARS = 32
DEPARTMENT_NAME_FORBIDDEN = '\\:*?"<>|'
MAX_DEPARTMENT_LEVELS = 15

NO_DEPARTMENT = ("a WeCom member needs at least one department: the Authing user is in no "
                 "department of the synced organization")
NO_CONTACT = ("a new WeCom member needs a mobile or an email (user/create refuses neither, "
              "60129): the Authing user has neither")
_USERID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-@.]*$")


def userid_problem(userid: str | None) -> str | None:
    if not userid:
        return "no WeCom userid: the user has no externalId, wechatwork_user_id or a " \
               "value for the configured userid rule"
    if len(userid.encode("utf-8")) > USERID_MAX_BYTES:
        return f"WeCom userid {userid!r} is longer than {USERID_MAX_BYTES} bytes"
    if not userid.isascii() or not _USERID_RE.match(userid):
        return (f"WeCom userid {userid!r} may hold only letters, digits and _-@. and must "
                "start with a letter or digit")
    return None


def user_problems(userid: str | None, name: str | None,
                  departments: Sequence[str]) -> list[str]:
    """A member needs a valid userid, a name, and 1-100 departments in the organization."""
    problems = [p for p in (userid_problem(userid),) if p]
    if not name or not name.strip():
        problems.append("a WeCom member needs a name: the Authing user has none")
    elif len(name) > NAME_MAX_CHARS:
        problems.append(f"name is longer than {NAME_MAX_CHARS} characters")
    if not departments:
        problems.append(NO_DEPARTMENT)
    elif len(departments) > MAX_MEMBER_DEPARTMENTS:
        problems.append(f"{len(departments)} departments exceed WeCom's limit of "
                        f"{MAX_MEMBER_DEPARTMENTS} per member")
    return problems


def department_name(name: str | None) -> str | None:
    """The name as WeCom will hold it: surrounding spaces dropped (inner spaces and ``_``
    are allowed by WeCom; Authing's FAQ lists them among failures of its own sync, which
    sends them untrimmed)."""
    return name.strip() if name is not None else None


def department_problems(name: str | None, level: int | None = None) -> list[str]:
    """``level``: the department's WeCom level (the root is 1), when known."""
    problems = []
    if not name:
        problems.append("a WeCom department needs a name")
    else:
        if len(name) > DEPARTMENT_NAME_MAX_CHARS:
            problems.append(f"department name {name!r} is longer than "
                            f"{DEPARTMENT_NAME_MAX_CHARS} characters")
        bad = sorted(set(name) & set(DEPARTMENT_NAME_FORBIDDEN))
        if bad:
            problems.append(f"department name {name!r} holds {' '.join(bad)}, which WeCom "
                            f"refuses in a department name (none of {DEPARTMENT_NAME_FORBIDDEN})")
    if level is not None and level > MAX_DEPARTMENT_LEVELS:
        problems.append(f"department would be at level {level} in WeCom, which allows "
                        f"{MAX_DEPARTMENT_LEVELS} levels")
    return problems
