"""Hardened parsing of WeCom's XML (and tolerated JSON) into flat field maps.

Every document that reaches us is untrusted until its signature is checked, and even then
we parse with defusedxml: no DTDs, no entities, no external references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as _XmlSyntaxError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from sync_core.http.documents import MalformedDocument, decode_utf8, json_object


@dataclass(frozen=True, slots=True)
class Envelope:
    """The outer POST body: who it is for and the ciphertext."""

    encrypt: str
    to_user_name: str | None = None
    agent_id: str | None = None


def parse_xml(data: bytes) -> Element:
    try:
        root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True,
                                   forbid_external=True)
        return root
    except DefusedXmlException as exc:
        raise MalformedDocument("XML with a DTD or entities is refused") from exc
    except (_XmlSyntaxError, ValueError) as exc:
        raise MalformedDocument("malformed XML") from exc


def parse_envelope(body: bytes) -> Envelope:
    """XML ``<xml><Encrypt>…`` or JSON ``{"encrypt": …}``, picked by the first character."""
    text = decode_utf8(body).lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        fields = json_object(text)
        lowered = {k.lower(): v for k, v in fields.items()}
        encrypt, to_user, agent = (lowered.get("encrypt"), lowered.get("tousername"),
                                   lowered.get("agentid"))
    else:
        root = parse_xml(text.encode("utf-8"))
        encrypt, to_user, agent = (root.findtext("Encrypt"), root.findtext("ToUserName"),
                                   root.findtext("AgentID"))
    if not isinstance(encrypt, str) or not encrypt.strip():
        raise MalformedDocument("envelope has no Encrypt field")
    return Envelope(
        encrypt=encrypt.strip(),
        to_user_name=_opt_str(to_user),
        agent_id=_opt_str(agent),
    )


def message_fields(plaintext: bytes) -> dict[str, Any]:
    """Decrypted message → ``{TagName: text | {child fields} | [items]}``.

    Leaf text is stripped (CDATA or not). A container element with children becomes a
    nested dict; repeated ``Item`` children (ExtAttr) become a list.
    """
    text = decode_utf8(plaintext).lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        return json_object(text)
    root = parse_xml(text.encode("utf-8"))
    if root.tag != "xml":
        raise MalformedDocument(f"unexpected root element <{root.tag}>")
    return {child.tag: _element_value(child) for child in root}


def _element_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    if all(child.tag == "Item" for child in children):
        return [_element_value(child) for child in children]
    return {child.tag: _element_value(child) for child in children}


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def build_envelope(encrypt: str, to_user_name: str, agent_id: str = "") -> bytes:
    """The XML envelope WeCom POSTs (reference §1.7). CDATA cannot hold ``]]>``, and
    base64 and corp ids never contain it."""
    return (f"<xml><ToUserName><![CDATA[{to_user_name}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>").encode()
