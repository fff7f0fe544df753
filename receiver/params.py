"""Path and query parameters, checked before anything reaches the store.

Every ops route declares the query parameters it takes; an unknown or repeated one, a value
outside its enum, or an id the database cannot hold is a ``ParamError`` (→ 400) rather than a
silently ignored filter or an overflow in the driver (→ 5xx).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request

from .http import BodyTooLarge, read_body

# The store's ids are INTEGER columns: 32-bit on PostgreSQL, so anything larger overflows in
# the driver and cannot name a row on either database.
MAX_ID = 2**31 - 1

Parser = Callable[[str, str], Any]
"""``parse(name, raw)`` → the value, or raises ParamError."""


class ParamError(ValueError):
    """A parameter is unknown, repeated or invalid; ``str()`` is the 400's reason."""


def integer(low: int = 1, high: int = MAX_ID) -> Parser:
    def parse(name: str, raw: str) -> int:
        # isdigit() alone accepts "²" and other Unicode digits that int() refuses, and
        # int() refuses more than 4300 digits.
        if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) \
                or not low <= int(raw) <= high:
            raise ParamError(f"{name} must be an integer from {low} to {high}")
        return int(raw)

    return parse


def choice(values: Iterable[str]) -> Parser:
    allowed = sorted(str(v) for v in values)

    def parse(name: str, raw: str) -> str:
        if raw not in allowed:
            raise ParamError(f"{name} must be one of {allowed}")
        return raw

    return parse


def text(max_length: int) -> Parser:
    def parse(name: str, raw: str) -> str:
        if len(raw) > max_length or "\x00" in raw:
            raise ParamError(f"{name} must be at most {max_length} characters, without NUL")
        return raw

    return parse


def argument(low: int = 1, high: int = MAX_ID, what: str = "an id") -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in [low, high]: out of range or not a number is
    a usage error (exit 2, one line), never an overflow in the driver."""
    def parse(raw: str) -> int:
        try:
            return int(integer(low, high)(what, raw.strip()))
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def path_id(request: Request, what: str, high: int = MAX_ID) -> int:
    """The ``{id}`` path parameter as a positive integer the store can hold."""
    return int(integer(1, high)(f"{what} id", request.path_params["id"]))


def query(request: Request, spec: Mapping[str, Parser],
          defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The declared query parameters, parsed; an empty value means "not given".

    ``query(request, {"status": choice(STATUSES), "limit": integer(1, 1000)}, {"limit": 100})``
    """
    params = request.query_params
    for name in params:
        if name not in spec:
            raise ParamError(f"unknown query parameter {name[:40]!r}; this route takes "
                             f"{sorted(spec)}")
        if len(params.getlist(name)) > 1:
            raise ParamError(f"query parameter {name} given more than once")
    values = dict(defaults or {})
    for name, parse in spec.items():
        raw = params.get(name)
        if raw:
            values[name] = parse(name, raw)
    return values


async def no_body(request: Request) -> None:
    """A POST route that takes no options refuses a body with fields in it (none, an empty
    one or ``{}`` is fine): an option the route does not have is a 400, never silently
    ignored. Raises ParamError."""
    try:
        raw = await read_body(request, 1024)
    except BodyTooLarge:
        raise ParamError("this route takes no body") from None
    if raw.strip() not in (b"", b"{}"):
        raise ParamError("this route takes no body (no fields)")
