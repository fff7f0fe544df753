"""Field readers for JSON payloads of the remotes (pure).

Each takes the payload object and a key and answers the value in the shape asked for, or
``None`` when the key is absent; a value of the wrong shape raises ``ValueError`` naming the
key. Strings are stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value.__class__ is str:  # nearly always: skip the checks (10^5-user reads)
        return value.strip()
    if value is None:
        return None
    if isinstance(value, _NOT_SCALAR):
        raise ValueError(f"{key} must be a scalar, got {value!r}")
    return str(value).strip()


_NOT_SCALAR = (dict, list, tuple)


def parse_int(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} is not an integer: {value!r}") from None


def integer(data: Mapping[str, Any], key: str) -> int | None:
    value = text(data, key)
    return None if value is None or value == "" else parse_int(key, value)


def boolean(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise ValueError(f"{key} is not a boolean: {value!r}")


def listed(data: Mapping[str, Any], key: str) -> list[Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):  # some responses send "1,2"
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return list(value)


def int_tuple(data: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    items = listed(data, key)
    if items is None:
        return None
    try:
        return tuple(map(int, items))
    except (TypeError, ValueError):
        return tuple(parse_int(key, item) for item in items)  # raises, naming the key


def str_tuple(data: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    items = listed(data, key)
    return None if items is None else tuple(str(item).strip() for item in items)
