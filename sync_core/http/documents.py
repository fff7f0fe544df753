"""Untrusted request bodies as text and JSON objects (pure), shared by every remote that
calls us (WeCom's callback, Authing's webhook): one rule for what the inbox can store."""

from __future__ import annotations

import json
from typing import Any


class MalformedDocument(ValueError):
    """The bytes are not a well-formed, safe XML/JSON document of the expected shape."""


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDocument("body is not UTF-8") from exc


def json_object(text: str) -> dict[str, Any]:
    """A JSON document that must be an object, holding only text a database can store
    (no NUL, no unpaired surrogate from a ``\\ud800`` escape); MalformedDocument otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # incl. nesting and over-long integers
        raise MalformedDocument("malformed JSON") from exc
    if not isinstance(value, dict):
        raise MalformedDocument("JSON body must be an object")
    if not storable(value):
        raise MalformedDocument("JSON text holds NUL or unpaired surrogate characters")
    return value


def storable(value: Any) -> bool:
    """Whether every string in ``value`` (JSON-like) is text both databases accept."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True
