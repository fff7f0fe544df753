"""Canonical snapshots of both sides of the sync (pure, no I/O).

WeCom side: ``WeComUser`` and ``WeComDepartment``. Every attribute but the identity is
optional and ``None`` means UNKNOWN: the source did not send it (trimmed callbacks since
2022-08-15, fields withheld from new apps since 2022-06-20). ``None`` never means "cleared";
a field that is known to be empty is ``""`` (or ``()`` for lists).

Authing side: ``AuthingUser``, ``AuthingMembership`` and ``AuthingDepartment``, read from the
v3 DTOs. Here ``None`` means "Authing has no value" for attributes, and "not fetched" for the
collections (``custom_data``, ``memberships``), which the planner then treats with care.

Constructors raise ``ValueError`` naming the offending key when a payload has the wrong shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sync_core.wecom.events import ExtAttr, PartyChange, UserChange

# user/get withholds these from apps created after 2022-06-20 and may answer "" for them;
# an empty value from the API is therefore unknown, not "cleared". Gender "0" (undefined)
# is treated the same way: writing "U" over a gender an admin set in Authing gains nothing.
_API_WITHHELD = frozenset({"mobile", "email", "biz_mail", "avatar", "address", "gender"})


@dataclass(frozen=True, slots=True)
class WeComUser:
    """A WeCom member. ``renamed_from`` is the old userid when WeCom sent a NewUserID."""

    userid: str
    renamed_from: str | None = None
    name: str | None = None
    department: tuple[int, ...] | None = None
    main_department: int | None = None
    # 0/1 per entry of ``department``, same order (WeCom's own convention).
    is_leader_in_dept: tuple[int, ...] | None = None
    position: str | None = None
    mobile: str | None = None
    gender: int | None = None
    email: str | None = None
    biz_mail: str | None = None
    status: int | None = None
    avatar: str | None = None
    alias: str | None = None
    telephone: str | None = None
    address: str | None = None
    english_name: str | None = None
    direct_leader: tuple[str, ...] | None = None
    # (attribute name, displayed value): text value, web URL or mini-program title.
    extattr: tuple[tuple[str, str], ...] | None = None
    open_userid: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WeComUser:
        """From a ``user/get`` (or ``user/list`` item) response object."""
        userid = _str(data, "userid")
        if not userid:
            raise ValueError("WeCom user has no userid")

        def text(key: str) -> str | None:
            value = _str(data, key)
            if value == "" and key in _API_WITHHELD:
                return None
            return value

        gender = text("gender")
        return cls(
            userid=userid,
            name=_str(data, "name") or None,
            department=_int_tuple(data, "department"),
            main_department=_int(data, "main_department"),
            is_leader_in_dept=_int_tuple(data, "is_leader_in_dept"),
            position=text("position"),
            mobile=text("mobile"),
            gender=None if gender in (None, "0") else _parse_int("gender", gender),
            email=text("email"),
            biz_mail=text("biz_mail"),
            status=_int(data, "status"),
            avatar=text("avatar"),
            alias=text("alias"),
            telephone=text("telephone"),
            address=text("address"),
            english_name=text("english_name"),
            direct_leader=_str_tuple(data, "direct_leader"),
            extattr=_api_extattr(data.get("extattr")),
            open_userid=text("open_userid") or None,
        )

    @classmethod
    def from_event(cls, event: UserChange) -> WeComUser:
        """From a create_user/update_user callback; a NewUserID becomes a rename."""
        renamed = event.new_user_id and event.new_user_id != event.user_id
        # The event uses the same names as user/get for every shared attribute.
        shared = {f.name for f in fields(cls)} & {f.name for f in fields(UserChange)}
        values = {name: getattr(event, name) for name in shared}
        return cls(
            **{**values, "name": event.name or None},
            userid=event.new_user_id if renamed else event.user_id,  # type: ignore[arg-type]
            renamed_from=event.user_id if renamed else None,
            extattr=None if event.ext_attr is None else tuple(
                (attr.name, _event_extattr_value(attr)) for attr in event.ext_attr
            ),
            open_userid=event.open_user_id,
        )


@dataclass(frozen=True, slots=True)
class WeComDepartment:
    """A WeCom department; ``parent_id`` of the root (id 1) is 0."""

    id: int
    name: str | None = None
    parent_id: int | None = None
    order: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WeComDepartment:
        """From a ``department/get`` object or a ``department/simplelist`` row (no name)."""
        dept_id = _int(data, "id")
        if dept_id is None:
            raise ValueError("WeCom department has no id")
        return cls(
            id=dept_id,
            name=_str(data, "name") or None,
            parent_id=_int(data, "parentid"),
            order=_int(data, "order"),
        )

    @classmethod
    def from_event(cls, event: PartyChange) -> WeComDepartment:
        return cls(id=event.id, name=event.name or None, parent_id=event.parent_id,
                   order=event.order)


@dataclass(frozen=True, slots=True)
class AuthingMembership:
    """One department of an Authing user. Flags are ``None`` when the read did not say."""

    department_id: str
    open_department_id: str | None = None
    organization_code: str | None = None
    is_leader: bool | None = None
    is_main: bool | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AuthingMembership:
        """From one ``get-user-departments`` list item."""
        department_id = _str(item, "departmentId")
        if not department_id:
            raise ValueError("Authing membership has no departmentId")
        return cls(
            department_id=department_id,
            open_department_id=_str(item, "openDepartmentId") or None,
            organization_code=_str(item, "organizationCode") or None,
            is_leader=_bool(item, "isLeader"),
            is_main=_bool(item, "isMainDepartment"),
        )


@dataclass(frozen=True, slots=True)
class AuthingUser:
    """An Authing user as read. ``custom_data``/``memberships`` ``None`` = not fetched."""

    user_id: str
    external_id: str | None = None
    username: str | None = None
    name: str | None = None
    phone: str | None = None
    phone_country_code: str | None = None
    email: str | None = None
    gender: str | None = None
    status: str | None = None
    photo: str | None = None
    custom_data: tuple[tuple[str, Any], ...] | None = None
    memberships: tuple[AuthingMembership, ...] | None = None

    @classmethod
    def from_dto(cls, dto: Mapping[str, Any],
                 departments: Iterable[Mapping[str, Any]] | None = None) -> AuthingUser:
        """From a ``UserDto`` (read withCustomData, withDepartmentIds).

        ``departments`` are ``get-user-departments`` items; they carry the leader and main
        flags, which ``departmentIds`` lacks. Without either, memberships stay unknown.
        """
        user_id = _str(dto, "userId")
        if not user_id:
            raise ValueError("Authing user has no userId")
        memberships: tuple[AuthingMembership, ...] | None = None
        if departments is not None:
            memberships = tuple(AuthingMembership.from_item(item) for item in departments)
        elif dto.get("departmentIds") is not None:
            main = _str(dto, "mainDepartmentId")
            memberships = tuple(
                AuthingMembership(department_id=dept, is_main=(dept == main) if main else None)
                for dept in _str_tuple(dto, "departmentIds") or ()
            )
        return cls(
            user_id=user_id,
            external_id=_str(dto, "externalId") or None,
            username=_str(dto, "username") or None,
            name=_str(dto, "name") or None,
            phone=_str(dto, "phone") or None,
            phone_country_code=_str(dto, "phoneCountryCode") or None,
            email=_str(dto, "email") or None,
            gender=_str(dto, "gender") or None,
            status=_str(dto, "status") or None,
            photo=_str(dto, "photo") or None,
            custom_data=_custom_data(dto.get("customData")),
            memberships=memberships,
        )

    def custom(self) -> dict[str, Any]:
        return dict(self.custom_data or ())


@dataclass(frozen=True, slots=True)
class AuthingDepartment:
    """An Authing department; ``members_count`` counts direct members only."""

    department_id: str
    open_department_id: str | None = None
    name: str | None = None
    parent_department_id: str | None = None
    organization_code: str | None = None
    custom_data: tuple[tuple[str, Any], ...] | None = None
    members_count: int | None = None
    has_children: bool | None = None

    @classmethod
    def from_dto(cls, dto: Mapping[str, Any]) -> AuthingDepartment:
        """From a ``DepartmentDto``."""
        department_id = _str(dto, "departmentId")
        if not department_id:
            raise ValueError("Authing department has no departmentId")
        return cls(
            department_id=department_id,
            open_department_id=_str(dto, "openDepartmentId") or None,
            name=_str(dto, "name") or None,
            parent_department_id=_str(dto, "parentDepartmentId") or None,
            organization_code=_str(dto, "organizationCode") or None,
            custom_data=_custom_data(dto.get("customData")),
            members_count=_int(dto, "membersCount"),
            has_children=_bool(dto, "hasChildren"),
        )

    def custom(self) -> dict[str, Any]:
        return dict(self.custom_data or ())


# -- field helpers -------------------------------------------------------------------------


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value.__class__ is str:  # nearly always: skip the checks (10^5-user reads)
        return value.strip()  # type: ignore[no-any-return]
    if value is None:
        return None
    if isinstance(value, _NOT_SCALAR):
        raise ValueError(f"{key} must be a scalar, got {value!r}")
    return str(value).strip()


_NOT_SCALAR = (dict, list, tuple)


def _parse_int(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} is not an integer: {value!r}") from None


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = _str(data, key)
    return None if value is None or value == "" else _parse_int(key, value)


def _bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise ValueError(f"{key} is not a boolean: {value!r}")


def _list(data: Mapping[str, Any], key: str) -> list[Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):  # some responses send "1,2"
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return list(value)


def _int_tuple(data: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    items = _list(data, key)
    if items is None:
        return None
    try:
        return tuple(map(int, items))
    except (TypeError, ValueError):
        return tuple(_parse_int(key, item) for item in items)  # raises, naming the key


def _str_tuple(data: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    items = _list(data, key)
    return None if items is None else tuple(str(item).strip() for item in items)


def _custom_data(value: Any) -> tuple[tuple[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"customData must be an object, got {value!r}")
    return tuple(sorted((str(k), v) for k, v in value.items()))


def _api_extattr(value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    attrs = value.get("attrs") if isinstance(value, Mapping) else None
    if attrs is None:
        return ()
    if not isinstance(attrs, list):
        raise ValueError(f"extattr.attrs must be a list, got {attrs!r}")
    out = []
    for attr in attrs:
        if not isinstance(attr, Mapping) or not attr.get("name"):
            raise ValueError(f"extattr item must have a name, got {attr!r}")
        part = attr.get("text") or attr.get("web") or attr.get("miniprogram") or {}
        text = part.get("value") or part.get("url") or part.get("title") or ""
        out.append((str(attr["name"]), str(text)))
    return tuple(out)


def _event_extattr_value(attr: ExtAttr) -> str:
    if attr.text is not None:
        return attr.text
    if attr.web_url is not None:
        return attr.web_url
    return str((attr.miniprogram or {}).get("Title") or "")
