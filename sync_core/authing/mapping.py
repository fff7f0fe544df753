"""WeCom → Authing field mapping (pure, no I/O).

``map_user`` and ``map_department`` turn a canonical WeCom snapshot into the Authing
attributes it determines, and only those: a WeCom field that is unknown (``None``) yields no
Authing attribute at all, so a trimmed callback never blanks anything. A field WeCom sent as
empty yields ``None`` for a top-level Authing attribute (clear it) and ``""`` in customData.

Identity: externalId = userid; openDepartmentId = str(WeCom department id), or, for a
department known only from an exported address book's paths, a synthetic key
``excel-<12 hex digits>`` (see ``excel.tree``): never numeric, so it cannot collide with a
WeCom id (WeCom ids are 32-bit integers, reference §3.2). Inside the sync such a department
carries the int ``SYNTHETIC_BASE + key`` (above any 32-bit id); ``department_open_id`` and
``department_id_of`` convert between the two. The extension
fields Authing's own WeCom guide uses are always written: users ``wechatwork_user_id`` and
``wechatwork_department_ids`` (comma-joined, only when the departments are known),
departments ``wechatwork_department_id`` and ``wechatwork_parent_department_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sync_core.directory.model import Membership
from sync_core.wecom.model import WeComDepartment, WeComUser

USER_ID_FIELD = "wechatwork_user_id"
USER_DEPARTMENTS_FIELD = "wechatwork_department_ids"
DEPARTMENT_ID_FIELD = "wechatwork_department_id"
PARENT_DEPARTMENT_FIELD = "wechatwork_parent_department_id"
EXTENSION_FIELDS = frozenset(
    {USER_ID_FIELD, USER_DEPARTMENTS_FIELD, DEPARTMENT_ID_FIELD, PARENT_DEPARTMENT_FIELD}
)
# Authing refuses customData values of 1024 characters or more ("customData must be less
# than 1024 characters", reference/authing-api.md §1.5, §2.6).
CUSTOM_VALUE_MAX = 1023
# set-user-departments takes at most 50 departments per call ("数组长度限制：50",
# reference/authing-api.md §2.3, §2.7), where WeCom allows 100 per member (§3.3).
SET_DEPARTMENTS_MAX = 50

# WeCom attributes that may be copied into customData; "extattr.<name>" also works.
CUSTOM_SOURCES = frozenset({
    "name", "position", "mobile", "email", "biz_mail", "alias", "telephone", "address",
    "english_name", "avatar", "main_department", "direct_leader", "open_userid", "gender",
    "status",
})

# Synthetic department ids (see the module docstring): 48-bit keys above WeCom's 32-bit ids.
SYNTHETIC_BASE = 1 << 48
SYNTHETIC_PREFIX = "excel-"
_SYNTHETIC_RE = re.compile(r"excel-([0-9a-f]{12})")

# WeCom's codes as canonical values (``directory.model``).
GENDERS = {0: "unknown", 1: "male", 2: "female"}
# 4 (未激活, invited but not yet joined) is still an employee whose account must work as
# soon as they join, so it maps to active (Activated), not suspended.
STATUSES = {1: "active", 2: "suspended", 4: "active", 5: "resigned"}
# Canonical values as Authing's (create-user's enums, reference/authing-api.md §2.2).
AUTHING_GENDERS = {"male": "M", "female": "F", "unknown": "U"}
AUTHING_STATUSES = {"active": "Activated", "suspended": "Suspended", "resigned": "Resigned"}
# Canonical user field → Authing's, where one holds the other (``mobile`` is two).
_AUTHING_NAMES = {"name": "name", "username": "username", "email": "email",
                  "gender": "gender", "status": "status", "avatar": "photo"}

# E.164 country calling codes form a prefix code, so a "+<digits>" mobile without a
# separator splits unambiguously on the first match. Common codes for WeCom tenants only;
# anything else needs WeCom's usual "+<code> <number>" form.
KNOWN_CODES = ("+86", "+852", "+853", "+886", "+1", "+7", "+33", "+44", "+49", "+60",
                "+61", "+62", "+63", "+65", "+66", "+81", "+82", "+84", "+91", "+971")
_CODE_RE = re.compile(r"^\+\d{1,4}$")
_NATIONAL_RE = re.compile(r"^\d{3,15}$")
# "+852 6123 4567", "+86-138...", "0086 138...": an explicit code before a separator.
_SPLIT_RE = re.compile(r"^(?:\+|00)(\d{1,4})[\s\-](.+)$")


class UsernameSource(StrEnum):
    """Where an Authing username comes from.

    ``userid``: set to the userid when the user is created (Authing needs one of username,
    phone and email, and withheld data often has neither), and renamed along with a userid
    rename when it still equals the old userid; otherwise left to Authing admins.
    ``alias``: kept equal to the WeCom alias (the userid when the alias is empty).
    ``none``: never written.
    """

    USERID = "userid"
    NONE = "none"
    ALIAS = "alias"


@dataclass(frozen=True, slots=True)
class MappingPolicy:
    username_source: UsernameSource = UsernameSource.USERID
    default_country_code: str = "+86"
    # (WeCom attribute or "extattr.<name>", customData key), e.g. ("position", "title").
    custom_fields: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _CODE_RE.match(self.default_country_code):
            raise ValueError(f"default_country_code must look like +86, "
                             f"got {self.default_country_code!r}")
        for source, key in self.custom_fields:
            if source not in CUSTOM_SOURCES and not source.startswith("extattr."):
                raise ValueError(f"custom_fields: unknown WeCom field {source!r}")
            if key in EXTENSION_FIELDS or not key:
                raise ValueError(f"custom_fields: customData key {key!r} is reserved or empty")


@dataclass(slots=True)  # not frozen, as ``directory.model.User``: one per planned user
class DesiredUser:
    """The state a WeCom user determines.

    ``values``: known fields in canonical names (``directory.model``; ``""`` = clear).
    ``initial``: written only when the user is created (the default username).
    ``fields`` and ``create_only`` are the same in Authing's names (``None`` = clear).
    ``memberships`` ``None`` = unknown. ``unfit``: why a value WeCom sent cannot be
    written to Authing (it is left out).
    """

    external_id: str
    renamed_from: str | None
    values: Mapping[str, str]
    initial: tuple[tuple[str, str], ...]
    custom_data: tuple[tuple[str, str], ...]
    memberships: tuple[Membership, ...] | None
    unfit: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[tuple[str, str | None], ...]:
        return tuple(authing_values(self.values).items())

    @property
    def create_only(self) -> tuple[tuple[str, str | None], ...]:
        return tuple(authing_values(dict(self.initial)).items())

    def get(self, name: str) -> str | None:
        """An identifier Authing keeps unique (``username``, ``phone``, ``email``) as
        Authing will hold it, the create-only value first; None when not known or empty."""
        if name == "phone":
            return self.values.get("mobile", "").partition("-")[2] or None
        return dict(self.initial).get(name) or self.values.get(name) or None


def authing_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical user ``fields`` as Authing's top-level fields (None: clear), in their
    order: ``mobile`` (``+<code>-<national>``) is ``phone`` and ``phoneCountryCode``,
    ``avatar`` is ``photo``; names Authing has no top-level field for are left out."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "mobile":
            code, _, national = value.partition("-")
            if not value:
                values["phone"] = None
            elif national:
                values["phone"], values["phoneCountryCode"] = national, code
        elif name in _AUTHING_NAMES:
            if name == "gender":
                value = AUTHING_GENDERS.get(value, value)
            elif name == "status":
                value = AUTHING_STATUSES.get(value, value)
            values[_AUTHING_NAMES[name]] = value or None
    return values


@dataclass(frozen=True, slots=True)
class DesiredDepartment:
    """The Authing state a WeCom department determines. Parent ``None`` = unknown."""

    wecom_id: int
    open_department_id: str
    name: str | None
    parent_id: int | None
    custom_data: tuple[tuple[str, str], ...]


def map_user(user: WeComUser, policy: MappingPolicy | None = None) -> DesiredUser:
    policy = policy or MappingPolicy()
    values: dict[str, str] = {}
    if user.name:
        values["name"] = user.name
    username = _username(user, policy)
    if username is not None:
        values["username"] = username
    if user.mobile is not None:
        if user.mobile == "":
            values["mobile"] = ""
        elif (split := split_mobile(user.mobile, policy.default_country_code)) is not None:
            values["mobile"] = f"{split[0]}-{split[1]}"
    if user.email is not None:
        values["email"] = user.email
    if user.gender is not None and user.gender in GENDERS:
        values["gender"] = GENDERS[user.gender]
    if user.status is not None and user.status in STATUSES:
        values["status"] = STATUSES[user.status]
    if user.avatar is not None:
        values["avatar"] = user.avatar

    initial: tuple[tuple[str, str], ...] = ()
    if policy.username_source is UsernameSource.USERID:
        initial = (("username", user.userid),)

    custom = [(USER_ID_FIELD, user.userid)]
    unfit: list[str] = []
    if user.department is not None:
        joined = ",".join([str(d) for d in user.department if d < SYNTHETIC_BASE])
        if len(joined) <= CUSTOM_VALUE_MAX:
            custom.append((USER_DEPARTMENTS_FIELD, joined))
        else:  # a part of the list would be a wrong list: leave it out, say why
            unfit.append(f"customData.{USER_DEPARTMENTS_FIELD} not written: "
                         f"{len(user.department)} department ids make {len(joined)} "
                         f"characters, Authing takes at most {CUSTOM_VALUE_MAX} per value")
    for source, key in policy.custom_fields:
        value = _custom_source(user, source)
        if value is not None:
            custom.append((key, value[:CUSTOM_VALUE_MAX]))

    return DesiredUser(
        external_id=user.userid,
        renamed_from=user.renamed_from,
        values=values,
        initial=initial,
        custom_data=tuple(custom),
        memberships=memberships_of(user),
        unfit=tuple(unfit),
    )


def is_synthetic(dept_id: int) -> bool:
    """An id invented from an address-book path, not one WeCom gave."""
    return dept_id >= SYNTHETIC_BASE


def department_open_id(dept_id: int) -> str:
    """The openDepartmentId of a department: ``2`` → ``"2"``; a synthetic id →
    ``"excel-00000000002a"``."""
    if is_synthetic(dept_id):
        return f"{SYNTHETIC_PREFIX}{dept_id - SYNTHETIC_BASE:012x}"
    return str(dept_id)


def department_id_of(open_id: str | None) -> int | None:
    """The inverse of ``department_open_id``; ``None`` for an openDepartmentId that is
    neither (a department someone else created)."""
    if not open_id:
        return None
    if open_id.isdigit():
        return int(open_id)
    match = _SYNTHETIC_RE.fullmatch(open_id)
    return SYNTHETIC_BASE + int(match[1], 16) if match else None


def _wecom_id_text(dept_id: int) -> str:
    """The extension fields hold WeCom's ids: empty while only a synthetic one is known."""
    return "" if is_synthetic(dept_id) else str(dept_id)


def map_department(dept: WeComDepartment) -> DesiredDepartment:
    custom = [(DEPARTMENT_ID_FIELD, _wecom_id_text(dept.id))]
    if dept.parent_id is not None:
        custom.append((PARENT_DEPARTMENT_FIELD, _wecom_id_text(dept.parent_id)))
    return DesiredDepartment(
        wecom_id=dept.id,
        open_department_id=department_open_id(dept.id),
        name=dept.name,
        parent_id=dept.parent_id,
        custom_data=tuple(custom),
    )


def split_mobile(mobile: str, default_country_code: str = "+86") -> tuple[str, str] | None:
    """``"+852 61234567"`` → ``("+852", "61234567")``; ``"13800000000"`` → default code.

    ``None`` when the number cannot be split with confidence: then the phone is left
    unknown rather than written wrong.
    """
    text = mobile.strip()
    if not text:
        return None
    if text.isdecimal() and 3 <= len(text) <= 15 and _CODE_RE.match(default_country_code):
        return default_country_code, text  # a national number: what most members have
    if (match := _SPLIT_RE.match(text)) is not None:
        code, national = "+" + match[1], match[2]
    elif text.startswith("+"):
        code = next((c for c in KNOWN_CODES if text.startswith(c)), "")
        national = text[len(code):]
    else:
        code, national = default_country_code, text
    national = re.sub(r"[\s\-()]", "", national)
    if not _CODE_RE.match(code) or not _NATIONAL_RE.match(national):
        return None
    return code, national


def memberships_of(user: WeComUser) -> tuple[Membership, ...] | None:
    """Departments (WeCom ids) with leader/main flags; flags WeCom did not send stay
    ``None``."""
    if user.department is None:
        return None
    leaders = user.is_leader_in_dept
    if leaders is not None and len(leaders) != len(user.department):
        leaders = None  # misaligned lists say nothing reliable
    out: list[Membership] = []
    seen: set[int] = set()
    main = user.main_department
    for i, dept in enumerate(user.department):
        if dept in seen:
            continue
        seen.add(dept)
        out.append(Membership(dept, None if leaders is None else bool(leaders[i]),
                              None if main is None else dept == main))
    return tuple(out)


def _username(user: WeComUser, policy: MappingPolicy) -> str | None:
    if policy.username_source is UsernameSource.ALIAS and user.alias is not None:
        return user.alias or user.userid
    return None


def _custom_source(user: WeComUser, source: str) -> str | None:
    if source.startswith("extattr."):
        if user.extattr is None:
            return None
        return dict(user.extattr).get(source.removeprefix("extattr."), "")
    value = getattr(user, source)
    if value is None:
        return None
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
