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


MAX_DEPTH = 32  # levels of nesting a stored document may have; real ones have under 8


def json_object(text: str, what: str = "body") -> dict[str, Any]:
    """A JSON document that must be an object, at most ``MAX_DEPTH`` levels deep, holding
    only what both databases store: no NaN or Infinity (PostgreSQL's json refuses them), no
    NUL, no unpaired surrogate from a ``\\ud800`` escape. MalformedDocument otherwise, its
    message naming ``what`` and the fault (where the parse stopped; never the content)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedDocument(f"{what} is not JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # NaN, nesting, over-long integers
        raise MalformedDocument(f"{what} is not storable JSON: {str(exc)[:80]}") from exc
    if not isinstance(value, dict):
        raise MalformedDocument(f"{what} must be a JSON object, not {json_type(value)}")
    if not storable(value):
        raise MalformedDocument(f"{what} nests deeper than {MAX_DEPTH} levels, or holds text "
                                "with NUL or unpaired surrogate characters")
    return value


def json_type(value: Any) -> str:
    """``value``'s JSON type with its article, for messages: "a string", "null"."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def storable(value: Any) -> bool:
    """Whether ``value`` (JSON-like) nests at most ``MAX_DEPTH`` levels and every string in
    it is text both databases accept."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)) and depth >= MAX_DEPTH:
            return False
        if isinstance(item, dict):
            pending.extend((k, depth + 1) for k in item)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True
