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
from dataclasses import dataclass
from enum import StrEnum

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

GENDERS = {0: "U", 1: "M", 2: "F"}
# 4 (未激活, invited but not yet joined) is still an employee whose account must work as
# soon as they join, so it maps to Activated, not Suspended.
STATUSES = {1: "Activated", 2: "Suspended", 4: "Activated", 5: "Resigned"}

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


@dataclass(frozen=True, slots=True)
class DesiredUser:
    """The Authing state a WeCom user determines, in Authing field names.

    ``fields``: known top-level attributes (``None`` = clear). ``create_only``: written only
    when the user is created (the default username). ``memberships`` ``None`` = unknown.
    ``unfit``: why a value WeCom sent cannot be written to Authing (it is left out).
    """

    external_id: str
    renamed_from: str | None
    fields: tuple[tuple[str, str | None], ...]
    create_only: tuple[tuple[str, str], ...]
    custom_data: tuple[tuple[str, str], ...]
    memberships: tuple[Membership, ...] | None
    unfit: tuple[str, ...] = ()

    def get(self, name: str) -> str | None:
        return dict(self.create_only).get(name) or dict(self.fields).get(name)


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
    fields: list[tuple[str, str | None]] = []
    if user.name:
        fields.append(("name", user.name))
    username = _username(user, policy)
    if username is not None:
        fields.append(("username", username))
    if user.mobile is not None:
        if user.mobile == "":
            fields.append(("phone", None))
        elif (split := split_mobile(user.mobile, policy.default_country_code)) is not None:
            fields += [("phone", split[1]), ("phoneCountryCode", split[0])]
    if user.email is not None:
        fields.append(("email", user.email or None))
    if user.gender is not None and user.gender in GENDERS:
        fields.append(("gender", GENDERS[user.gender]))
    if user.status is not None and user.status in STATUSES:
        fields.append(("status", STATUSES[user.status]))
    if user.avatar is not None:
        fields.append(("photo", user.avatar or None))

    create_only: tuple[tuple[str, str], ...] = ()
    if policy.username_source is UsernameSource.USERID:
        create_only = (("username", user.userid),)

    custom = [(USER_ID_FIELD, user.userid)]
    unfit: list[str] = []
    if user.department is not None:
        joined = ",".join(str(d) for d in user.department if not is_synthetic(d))
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
        fields=tuple(fields),
        create_only=create_only,
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
    for i, dept in enumerate(user.department):
        if dept in seen:
            continue
        seen.add(dept)
        out.append(Membership(
            department=dept,
            leader=None if leaders is None else bool(leaders[i]),
            main=None if user.main_department is None else dept == user.main_department,
        ))
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
