"""Typed WeCom callback events, parsed from a decrypted message (pure, no I/O).

Field tables: reference/wecom-platform.md §2. A field WeCom did not send stays ``None``:
since 2022-08-15 callbacks may carry only IDs, and an absent field means "unknown", never
"cleared". ``to_payload()`` therefore omits ``None`` fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

from sync_core.directory.vocabulary import Kind
from sync_core.http.documents import MalformedDocument
from sync_core.wecom.envelope import message_fields

USER_CHANGES = frozenset({"create_user", "update_user", "delete_user"})
PARTY_CHANGES = frozenset({"create_party", "update_party", "delete_party"})
SUITE_INFO_TYPES = frozenset(
    {"suite_ticket", "create_auth", "change_auth", "cancel_auth", "reset_permanent_code"}
)


@dataclass(frozen=True, slots=True)
class Header:
    to_user_name: str | None = None
    from_user_name: str | None = None
    create_time: int | None = None
    msg_type: str | None = None
    event: str | None = None
    # Third-party (指令回调) variant.
    suite_id: str | None = None
    auth_corp_id: str | None = None
    info_type: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class ExtAttr:
    name: str
    type: int
    text: str | None = None
    web_title: str | None = None
    web_url: str | None = None
    miniprogram: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserChange:
    change_type: str
    user_id: str
    new_user_id: str | None = None
    open_user_id: str | None = None
    name: str | None = None
    english_name: str | None = None
    department: tuple[int, ...] | None = None
    main_department: int | None = None
    is_leader_in_dept: tuple[int, ...] | None = None
    direct_leader: tuple[str, ...] | None = None
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
    ext_attr: tuple[ExtAttr, ...] | None = None
    header: Header = field(default_factory=Header)

    kind = Kind.USER

    @property
    def entity_key(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class PartyChange:
    change_type: str
    id: int
    name: str | None = None
    parent_id: int | None = None
    order: int | None = None
    header: Header = field(default_factory=Header)

    kind = Kind.DEPARTMENT

    @property
    def entity_key(self) -> str:
        return str(self.id)


@dataclass(frozen=True, slots=True)
class TagChange:
    tag_id: int
    add_user_items: tuple[str, ...] | None = None
    del_user_items: tuple[str, ...] | None = None
    add_party_items: tuple[int, ...] | None = None
    del_party_items: tuple[int, ...] | None = None
    change_type: str = "update_tag"
    header: Header = field(default_factory=Header)

    kind = Kind.TAG

    @property
    def entity_key(self) -> str:
        return str(self.tag_id)


@dataclass(frozen=True, slots=True)
class BatchJobResult:
    job_id: str
    job_type: str | None = None
    err_code: int | None = None
    err_msg: str | None = None
    header: Header = field(default_factory=Header)

    kind = Kind.JOB
    change_type = "batch_job_result"

    @property
    def entity_key(self) -> str:
        return self.job_id


@dataclass(frozen=True, slots=True)
class SuiteCommand:
    """suite_ticket, create_auth, change_auth, cancel_auth, reset_permanent_code."""

    info_type: str
    suite_id: str
    suite_ticket: str | None = None
    auth_code: str | None = None
    auth_corp_id: str | None = None
    state: str | None = None
    extra_info: str | None = None
    header: Header = field(default_factory=Header)

    kind = Kind.SUITE

    @property
    def change_type(self) -> str:
        return self.info_type

    @property
    def entity_key(self) -> str:
        return self.suite_id


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """Anything else (text messages, unknown events): kept so nothing is silently lost."""

    change_type: str
    fields: dict[str, Any]
    header: Header = field(default_factory=Header)

    kind = Kind.OTHER

    @property
    def entity_key(self) -> str:
        return self.change_type


WeComEvent = UserChange | PartyChange | TagChange | BatchJobResult | SuiteCommand | OtherMessage


def dedupe_key(plaintext: bytes) -> str:
    """WeCom retries resend the same message: its digest identifies the delivery."""
    return hashlib.sha256(plaintext).hexdigest()


def parse_event(plaintext: bytes) -> WeComEvent:
    """Decrypted message bytes → typed event. Raises MalformedDocument on bad input."""
    raw = message_fields(plaintext)
    header = _header(raw)
    event = (header.event or "").strip()
    info_type = (header.info_type or "").strip()

    if event == "change_contact" or info_type == "change_contact":
        change = _text(raw, "ChangeType") or ""
        if change in USER_CHANGES:
            return _user(change, raw, header)
        if change in PARTY_CHANGES:
            return _party(change, raw, header)
        if change == "update_tag":
            return _tag(raw, header)
        return OtherMessage(change_type=change or "change_contact", fields=raw, header=header)
    if event == "batch_job_result" or info_type == "batch_job_result":
        return _batch_job(raw, header)
    if info_type in SUITE_INFO_TYPES:
        return SuiteCommand(
            info_type=info_type,
            suite_id=_required(raw, "SuiteId"),
            suite_ticket=_text(raw, "SuiteTicket"),
            auth_code=_text(raw, "AuthCode"),
            auth_corp_id=_text(raw, "AuthCorpId"),
            state=_text(raw, "State"),
            extra_info=_text(raw, "ExtraInfo"),
            header=header,
        )
    label = event or info_type or header.msg_type or "unknown"
    return OtherMessage(change_type=label, fields=raw, header=header)


def to_payload(event: WeComEvent) -> dict[str, Any]:
    """JSON-ready dict with only the fields WeCom sent."""
    out: dict[str, Any] = {"kind": str(event.kind), "change_type": event.change_type}
    for f in fields(event):
        value = getattr(event, f.name)
        if value is None or f.name == "change_type":
            continue
        out[f.name] = _jsonable(value)
    return out


# -- field helpers -------------------------------------------------------------------------


def _header(raw: dict[str, Any]) -> Header:
    return Header(
        to_user_name=_text(raw, "ToUserName"),
        from_user_name=_text(raw, "FromUserName"),
        create_time=_int(raw, "CreateTime"),
        msg_type=_text(raw, "MsgType"),
        event=_text(raw, "Event"),
        suite_id=_text(raw, "SuiteId"),
        auth_corp_id=_text(raw, "AuthCorpId"),
        info_type=_text(raw, "InfoType"),
        timestamp=_int(raw, "TimeStamp"),
    )


def _user(change: str, raw: dict[str, Any], header: Header) -> UserChange:
    return UserChange(
        change_type=change,
        user_id=_required(raw, "UserID"),
        new_user_id=_text(raw, "NewUserID"),
        open_user_id=_text(raw, "OpenUserID"),
        name=_text(raw, "Name"),
        english_name=_text(raw, "EnglishName"),
        department=_int_list(raw, "Department"),
        main_department=_int(raw, "MainDepartment"),
        is_leader_in_dept=_int_list(raw, "IsLeaderInDept"),
        direct_leader=_str_list(raw, "DirectLeader"),
        position=_text(raw, "Position"),
        mobile=_text(raw, "Mobile"),
        gender=_int(raw, "Gender"),
        email=_text(raw, "Email"),
        biz_mail=_text(raw, "BizMail"),
        status=_int(raw, "Status"),
        avatar=_text(raw, "Avatar"),
        alias=_text(raw, "Alias"),
        telephone=_text(raw, "Telephone"),
        address=_text(raw, "Address"),
        ext_attr=_ext_attrs(raw.get("ExtAttr")),
        header=header,
    )


def _party(change: str, raw: dict[str, Any], header: Header) -> PartyChange:
    party_id = _int(raw, "Id")
    if party_id is None:
        raise MalformedDocument(f"{change} event has no Id")
    return PartyChange(
        change_type=change,
        id=party_id,
        name=_text(raw, "Name"),
        parent_id=_int(raw, "ParentId"),
        order=_int(raw, "Order"),
        header=header,
    )


def _tag(raw: dict[str, Any], header: Header) -> TagChange:
    tag_id = _int(raw, "TagId")
    if tag_id is None:
        raise MalformedDocument("update_tag event has no TagId")
    return TagChange(
        tag_id=tag_id,
        add_user_items=_str_list(raw, "AddUserItems"),
        del_user_items=_str_list(raw, "DelUserItems"),
        add_party_items=_int_list(raw, "AddPartyItems"),
        del_party_items=_int_list(raw, "DelPartyItems"),
        header=header,
    )


def _batch_job(raw: dict[str, Any], header: Header) -> BatchJobResult:
    job = raw.get("BatchJob")
    if not isinstance(job, dict):
        raise MalformedDocument("batch_job_result event has no BatchJob")
    return BatchJobResult(
        job_id=_required(job, "JobId"),
        job_type=_text(job, "JobType"),
        err_code=_int(job, "ErrCode"),
        err_msg=_text(job, "ErrMsg"),
        header=header,
    )


def _ext_attrs(value: Any) -> tuple[ExtAttr, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else (value.get("Item") if isinstance(value, dict)
                                                   else None)
    if items is None or items == "":
        return ()
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise MalformedDocument("ExtAttr is not a list of items")
    attrs = []
    for item in items:
        if not isinstance(item, dict):
            raise MalformedDocument("ExtAttr item is not an element")
        text, web, mini = item.get("Text"), item.get("Web"), item.get("Miniprogram")
        attrs.append(ExtAttr(
            name=_required(item, "Name"),
            type=_int(item, "Type") or 0,
            text=_text(text, "Value") if isinstance(text, dict) else None,
            web_title=_text(web, "Title") if isinstance(web, dict) else None,
            web_url=_text(web, "Url") if isinstance(web, dict) else None,
            miniprogram=mini if isinstance(mini, dict) else None,
        ))
    return tuple(attrs)


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise MalformedDocument(f"{key} must be text")
    return str(value).strip()


def _required(raw: dict[str, Any], key: str) -> str:
    value = _text(raw, key)
    if not value:
        raise MalformedDocument(f"missing {key}")
    return value


def _int(raw: dict[str, Any], key: str) -> int | None:
    value = _text(raw, key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise MalformedDocument(f"{key} is not an integer") from None


def _str_list(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, list):  # JSON variant
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = _text(raw, key) or ""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _int_list(raw: dict[str, Any], key: str) -> tuple[int, ...] | None:
    items = _str_list(raw, key)
    if items is None:
        return None
    try:
        return tuple(int(item) for item in items)
    except ValueError:
        raise MalformedDocument(f"{key} is not a list of integers") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Header):
        return {f.name: getattr(value, f.name) for f in fields(value)
                if getattr(value, f.name) is not None}
    if isinstance(value, ExtAttr):
        return {f.name: getattr(value, f.name) for f in fields(value)
                if getattr(value, f.name) is not None}
    return value


def change_from_payload(payload: dict[str, Any]) -> UserChange | PartyChange:
    """The inverse of ``to_payload`` for contact changes: rebuild the event stored in the
    inbox so the worker can apply it from its own fields when the API may not be read."""
    kind = payload.get("kind")
    cls: type[UserChange] | type[PartyChange]
    cls = UserChange if kind == Kind.USER else PartyChange
    if kind not in (Kind.USER, Kind.DEPARTMENT):
        raise ValueError(f"not a contact change payload: kind={kind!r}")
    names = {f.name for f in fields(cls)} - {"header"}
    values: dict[str, Any] = {k: v for k, v in payload.items() if k in names}
    for key, value in list(values.items()):
        if key == "ext_attr":
            values[key] = tuple(ExtAttr(**item) for item in value)
        elif isinstance(value, list):
            values[key] = tuple(value)
    values["change_type"] = payload["change_type"]
    return cls(**values)
