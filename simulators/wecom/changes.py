"""Directory changes and the decrypted ``change_contact`` XML that announces them.

A ``Change`` always holds the full payload (what a pre-2022 callback URL receives). The
renderer trims it for post-2022-08-15 configurations (reference §2): user events carry
only UserID/Department (+NewUserID), party events only Id/ParentId, and update_party is
sent only when ParentId changed, so a rename announces nothing.

The layout copies the official samples, CDATA where they use CDATA (reference §2.1-2.7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

USER_EVENTS = frozenset({"create_user", "update_user", "delete_user"})
PARTY_EVENTS = frozenset({"create_party", "update_party", "delete_party"})

# Tags the official samples write as plain text; everything else is CDATA.
_PLAIN_TAGS = frozenset({"MainDepartment", "Mobile", "Gender", "Status", "Id", "Order",
                         "TagId", "CreateTime"})


@dataclass(frozen=True, slots=True)
class Change:
    """One change as WeCom would announce it; ``fields`` are XML tags in official order."""

    change_type: str
    fields: tuple[tuple[str, Any], ...]
    department: tuple[int, ...] | None = None  # the user's departments now (trimmed payloads)

    @property
    def key(self) -> str:
        """The entity the change is about: userid, department id or tag id."""
        for tag in ("UserID", "Id", "TagId"):
            for name, value in self.fields:
                if name == tag:
                    return str(value)
        return ""

    def field(self, tag: str) -> Any:
        return next((value for name, value in self.fields if name == tag), None)


def trim(change: Change) -> Change | None:
    """The post-2022 payload for ``change``, or None when WeCom would send nothing."""
    if change.change_type in USER_EVENTS:
        kept = [(n, v) for n, v in change.fields if n in ("UserID", "NewUserID")]
        if change.change_type != "delete_user" and change.department is not None:
            kept.append(("Department", list(change.department)))
        return Change(change.change_type, tuple(kept), change.department)
    if change.change_type in PARTY_EVENTS:
        if change.change_type == "update_party" and change.field("ParentId") is None:
            return None
        kept = [(n, v) for n, v in change.fields if n in ("Id", "ParentId")]
        return Change(change.change_type, tuple(kept))
    return change


def render(change: Change, *, corp_id: str, create_time: int) -> bytes:
    """The decrypted message: ``<xml><ToUserName>…<ChangeType>…<UserID>…</xml>`` as UTF-8."""
    change_type_tag = (_cdata("ChangeType", change.change_type)
                       if change.change_type == "update_tag"
                       else f"<ChangeType>{escape(change.change_type)}</ChangeType>")
    lines = [
        "<xml>",
        _cdata("ToUserName", corp_id),
        _cdata("FromUserName", "sys"),
        f"<CreateTime>{create_time}</CreateTime>",
        _cdata("MsgType", "event"),
        _cdata("Event", "change_contact"),
        change_type_tag,
    ]
    for tag, value in change.fields:
        lines.append(_element(tag, value))
    lines.append("</xml>")
    return "\n".join(lines).encode("utf-8")


def _element(tag: str, value: Any) -> str:
    if tag == "ExtAttr":
        return _ext_attr(value)
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if tag in _PLAIN_TAGS:
        return f"<{tag}>{escape(text)}</{tag}>"
    return _cdata(tag, text)


def _cdata(tag: str, text: str) -> str:
    # "]]>" cannot appear inside CDATA: close the section and reopen it around the ">".
    safe = text.replace("]]>", "]]]]><![CDATA[>")
    return f"<{tag}><![CDATA[{safe}]]></{tag}>"


def _ext_attr(attrs: Iterable[dict[str, Any]]) -> str:
    """API ``extattr.attrs`` -> ``<ExtAttr><Item><Name/><Type/><Text><Value/>…``."""
    items = []
    for attr in attrs:
        kind = int(attr.get("type", 0))
        parts = [_cdata("Name", str(attr.get("name", ""))), f"<Type>{kind}</Type>"]
        if kind == 1:
            web = attr.get("web") or {}
            parts.append("<Web>" + _cdata("Title", str(web.get("title", "")))
                         + _cdata("Url", str(web.get("url", ""))) + "</Web>")
        else:
            text = attr.get("text") or {}
            parts.append("<Text>" + _cdata("Value", str(text.get("value", ""))) + "</Text>")
        items.append("<Item>" + "".join(parts) + "</Item>")
    return "<ExtAttr>" + "".join(items) + "</ExtAttr>"
