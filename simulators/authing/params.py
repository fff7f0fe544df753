"""Typed, strict access to one request's parameters, failing the way Authing fails.

A JSON body keeps its JSON types (a ``"true"`` string is not a boolean); a query string is
all text, so booleans and integers are parsed from it.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import bad_param, bad_request, missing

MAX_LIMIT = 50
MAX_BATCH = 50
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9]{3,20}$")


class Params:
    """``Params(body)`` for JSON, ``Params(query, multi=..., from_query=True)`` for GET."""

    def __init__(self, data: dict[str, Any], *, from_query: bool = False,
                 multi: dict[str, list[str]] | None = None) -> None:
        self.data = data
        self.from_query = from_query
        self.multi = multi or {}

    def only(self, allowed: set[str]) -> None:
        """Refuse unknown top-level properties, as a whitelisting validator does."""
        for key in self.data:
            if key not in allowed:
                raise bad_request(f"property {key} should not exist")

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def text(self, name: str, *, required: bool = False, max_len: int | None = None,
            choices: tuple[str, ...] | None = None, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None or (self.from_query and value == ""):
            if required:
                raise missing(name)
            return default
        if not isinstance(value, str):
            raise bad_param(name)
        if required and not value.strip():
            raise missing(name)
        if max_len is not None and len(value) > max_len:
            raise bad_param(name)
        if choices is not None and value not in choices:
            raise bad_param(name)
        return value

    def req(self, name: str, **kwargs: Any) -> str:
        """A required string (never ``None``)."""
        value = self.text(name, required=True, **kwargs)
        assert value is not None
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if self.from_query and isinstance(value, str):
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0", ""):
                return False
            raise bad_param(name)
        if not isinstance(value, bool):
            raise bad_param(name)
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if self.from_query and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad_param(name) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_param(name)
        return value

    def array(self, name: str, *, required: bool = False, max_len: int | None = MAX_BATCH,
             ) -> list[Any] | None:
        """A JSON array, or for a query: repeated ``k=a&k=b`` or comma-separated ``k=a,b``."""
        if self.from_query:
            values = [part for raw in self.multi.get(name, []) for part in raw.split(",")]
            value: Any = [v for v in values if v] if name in self.multi else None
        else:
            value = self.data.get(name)
        if value is None:
            if required:
                raise bad_param(name)
            return None
        if not isinstance(value, list) or (required and not value):
            raise bad_param(name)
        if max_len is not None and len(value) > max_len:
            raise bad_request(
                f"参数 {name} 数组长度不能超过 {max_len} (array longer than {max_len})")
        return value

    def texts(self, name: str, *, required: bool = False,
                 max_len: int | None = MAX_BATCH) -> list[str] | None:
        values = self.array(name, required=required, max_len=max_len)
        if values is not None and not all(isinstance(v, str) and v for v in values):
            raise bad_param(name)
        return values

    def obj(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_param(name)
        return value

    def sub(self, name: str) -> Params:
        """A nested object (``options``, ``pagination``) as Params; empty when absent."""
        return Params(self.obj(name) or {})

    def page(self) -> tuple[int, int]:
        """``page`` from 1 and ``limit`` at most 50, default 10 (reference §2.7)."""
        page = self.integer("page", 1)
        limit = self.integer("limit", 10)
        assert page is not None and limit is not None
        if page < 1:
            raise bad_param("page")
        if limit < 1:
            raise bad_param("limit")
        if limit > MAX_LIMIT:
            raise bad_request("limit must less than 50")
        return page, limit


def page_slice(items: list[Any], page: int, limit: int) -> list[Any]:
    start = (page - 1) * limit
    return items[start:start + limit]
