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


def json_object(text: str) -> dict[str, Any]:
    """A JSON document that must be an object, at most ``MAX_DEPTH`` levels deep, holding
    only what both databases store: no NaN or Infinity (PostgreSQL's json refuses them), no
    NUL, no unpaired surrogate from a ``\\ud800`` escape. MalformedDocument otherwise."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # incl. nesting and over-long integers
        raise MalformedDocument("malformed JSON") from exc
    if not isinstance(value, dict):
        raise MalformedDocument("JSON body must be an object")
    if not storable(value):
        raise MalformedDocument(f"JSON nested deeper than {MAX_DEPTH} levels, or text with "
                                "NUL or unpaired surrogate characters")
    return value


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
