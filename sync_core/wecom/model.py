"""The WeCom side as read (pure, no I/O): ``WeComUser`` and ``WeComDepartment``.

Every attribute but the identity is optional and ``None`` means UNKNOWN: the source did not
send it (trimmed callbacks since 2022-08-15, fields withheld from new apps since 2022-06-20).
``None`` never means "cleared"; a field that is known to be empty is ``""`` (or ``()`` for
lists).

Constructors raise ``ValueError`` naming the offending key when a payload has the wrong shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sync_core.http import fields as f
from sync_core.wecom.events import ExtAttr, PartyChange, UserChange

# user/get withholds these from apps created after 2022-06-20 and may answer "" for them;
# an empty value from the API is therefore unknown, not "cleared". Withheld, gender may
# show as "0": "0" is the known 未定义 only beside a shown mobile or email (a member has
# one of them: user/create refuses neither, 60129), else unknown too.
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
    # Not WeCom's: the digest of what downstream last wrote to this member (link table),
    # set by the downstream target reader where WeCom shows less than it wrote.
    last_written: str | None = None
    # Not WeCom's: WeCom no longer holds this member, which upstream synced from WeCom (a
    # WeCom deletion upstream has not applied yet; set by the downstream target reader).
    removed: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WeComUser:
        """From a ``user/get`` (or ``user/list`` item) response object."""
        userid = f.text(data, "userid")
        if not userid:
            raise ValueError("WeCom user has no userid")

        def text(key: str) -> str | None:
            value = f.text(data, key)
            if value == "" and key in _API_WITHHELD:
                return None
            return value

        gender = text("gender")
        return cls(
            userid=userid,
            name=f.text(data, "name") or None,
            department=f.int_tuple(data, "department"),
            main_department=f.integer(data, "main_department"),
            is_leader_in_dept=f.int_tuple(data, "is_leader_in_dept"),
            position=text("position"),
            mobile=text("mobile"),
            gender=None if gender is None or (gender == "0" and not (
                text("mobile") or text("email"))) else f.parse_int("gender", gender),
            email=text("email"),
            biz_mail=text("biz_mail"),
            status=f.integer(data, "status"),
            avatar=text("avatar"),
            alias=text("alias"),
            telephone=text("telephone"),
            address=text("address"),
            english_name=text("english_name"),
            direct_leader=f.str_tuple(data, "direct_leader"),
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
    removed: bool = False  # as ``WeComUser.removed``

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WeComDepartment:
        """From a ``department/get`` object or a ``department/simplelist`` row (no name)."""
        dept_id = f.integer(data, "id")
        if dept_id is None:
            raise ValueError("WeCom department has no id")
        return cls(
            id=dept_id,
            name=f.text(data, "name") or None,
            parent_id=f.integer(data, "parentid"),
            order=f.integer(data, "order"),
        )

    @classmethod
    def from_event(cls, event: PartyChange) -> WeComDepartment:
        return cls(id=event.id, name=event.name or None, parent_id=event.parent_id,
                   order=event.order)


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
