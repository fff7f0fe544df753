"""list-users: advancedFilter, keywords, sorting and paging over an indexed pool.

Paging 100k users at 50 a page must not rescan the pool per page: the ordered id list a
query selects is cached against the pool's ``version`` (which moves on every change), so
successive pages of an unchanged pool cost O(page). EQUAL/IN on a unique key (externalId,
email, phone, username, id) goes straight to the index.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from .dto import BOOL_FIELDS, STRING_FIELDS
from .errors import bad_param, bad_request
from .members import MembersMixin
from .records import User

Predicate = Callable[[User], bool]
OPERATORS = ("EQUAL", "NOT_EQUAL", "CONTAINS", "NOT_CONTAINS", "IS_NULL", "NOT_NULL", "IN",
             "GREATER", "LESSER", "BETWEEN")
SORT_KEYS = ("createdAt", "updatedAt", "userId", "username", "email", "phone", "name",
             "externalId")
FUZZY_DEFAULT = ("name", "username", "email", "phone", "externalId", "nickname")
_INDEXED = {"externalId": "externalId", "email": "email", "phone": "phone",
            "username": "username"}
_CACHE_SIZE = 16


def to_ms(value: Any, name: str = "advancedFilter") -> int:
    """A timestamp given as epoch milliseconds or an ISO 8601 string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    raise bad_param(name)


class UserQuery:
    """One list-users question; ``run`` answers (totalCount, page of users)."""

    def __init__(self, state: MembersMixin, filters: list[Any] | None = None,
                 keywords: str | None = None, fuzzy_on: list[str] | None = None,
                 sort: list[Any] | None = None) -> None:
        self.state = state
        self.filters = filters or []
        self.predicates = [self._predicate(f) for f in self.filters]
        self.keywords = keywords
        self.fuzzy_on = tuple(fuzzy_on or FUZZY_DEFAULT)
        self.sort = self._sort_spec(sort or [])
        self.extra: list[Predicate] = []
        self.signature: tuple[Any, ...] = (repr(self.filters), keywords, self.fuzzy_on,
                                           tuple(self.sort))

    def where(self, signature: str, predicate: Predicate) -> None:
        """Add a predicate that has no advancedFilter form (legacy GET parameters)."""
        self.extra.append(predicate)
        self.signature = (*self.signature, signature)

    def run(self, page: int, limit: int) -> tuple[int, list[User]]:
        ids = self._ids()
        start = (page - 1) * limit
        return len(ids), [self.state.users[i] for i in ids[start:start + limit]]

    def _ids(self) -> list[str]:
        cache: dict[Any, Any] = getattr(self.state, "query_cache", {})
        if cache.get("version") != self.state.version:
            cache.clear()
            cache["version"] = self.state.version
        if self.signature not in cache:
            if len(cache) > _CACHE_SIZE:
                cache.clear()
                cache["version"] = self.state.version
            cache[self.signature] = self._select()
        result: list[str] = cache[self.signature]
        return result

    def _select(self) -> list[str]:
        users = self.state.users
        candidates = self._from_index()
        pool = (users[i] for i in candidates) if candidates is not None else users.values()
        tests = [*self.predicates, *self.extra]
        if self.keywords:
            tests.append(self._keyword_test())
        chosen = [u for u in pool if all(t(u) for t in tests)]
        if self.sort:
            for key, desc in reversed(self.sort):
                chosen.sort(key=partial(_sort_key, key), reverse=desc)
        else:  # default: newest first
            chosen.sort(key=lambda u: u.created_at, reverse=True)
        return [u.user_id for u in chosen]

    def _from_index(self) -> list[str] | None:
        for f in self.filters:
            field, op, value = f["field"], f["operator"], f.get("value")
            if op not in ("EQUAL", "IN") or field not in (*_INDEXED, "id", "userId"):
                continue
            values = value if op == "IN" else [value]
            if field in ("id", "userId"):
                return [v for v in values if isinstance(v, str) and v in self.state.users]
            index = self.state.index[_INDEXED[field]]
            found = (index.get(v.lower() if field == "email" else v)
                     for v in values if isinstance(v, str))
            return list(dict.fromkeys(i for i in found if i is not None))
        return None

    def _keyword_test(self) -> Predicate:
        needle = (self.keywords or "").lower()
        return lambda u: any(needle in str(u.profile.get(k) or "").lower() for k in self.fuzzy_on)

    def _predicate(self, f: Any) -> Predicate:
        if not isinstance(f, dict) or not isinstance(f.get("field"), str):
            raise bad_param("advancedFilter")
        field, op, value = f["field"], f.get("operator"), f.get("value")
        if op not in OPERATORS:
            raise bad_param("advancedFilter.operator")
        if field == "department":
            return self._department_predicate(op, value)
        if field not in _known_fields() and self.state.fields.get("USER", field) is None:
            raise bad_request(f"advancedFilter field {field} is not supported")
        if field in ("createdAt", "updatedAt") and op not in ("IS_NULL", "NOT_NULL"):
            value = [to_ms(v) for v in value] if isinstance(value, list) else to_ms(value)
        if op in ("IN", "BETWEEN") and not isinstance(value, list):
            raise bad_param("advancedFilter.value")
        if field == "email":
            value = [v.lower() for v in value] if isinstance(value, list) else (
                value.lower() if isinstance(value, str) else value)
        return _compare(field, op, value)

    def _department_predicate(self, op: str, value: Any) -> Predicate:
        if not isinstance(value, list):
            raise bad_param("advancedFilter.value")
        dept_ids: set[str] = set()
        for item in value:
            if not isinstance(item, dict):
                raise bad_param("advancedFilter.value")
            dept = self.state.resolve(item.get("organizationCode"), item.get("departmentId"),
                                      item.get("departmentIdType"))
            dept_ids.add(dept.department_id)
            if item.get("includeChildrenDepartments"):
                dept_ids.update(d.department_id for d in self.state.descendants(dept))
        negate = op in ("NOT_EQUAL", "NOT_CONTAINS")
        return lambda u: negate != any(d in dept_ids for d in u.departments)

    def _sort_spec(self, sort: list[Any]) -> list[tuple[str, bool]]:
        spec = []
        for item in sort:
            if not isinstance(item, dict) or item.get("key") not in SORT_KEYS:
                raise bad_param("sort")
            order = str(item.get("order", "asc")).lower()
            if order not in ("asc", "desc"):
                raise bad_param("sort")
            spec.append((item["key"], order == "desc"))
        return spec


def _known_fields() -> set[str]:
    return {*STRING_FIELDS, *BOOL_FIELDS, "id", "userId", "status", "gender", "createdAt",
            "updatedAt", "identity", "userSource", "workStatus"}


def _value(user: User, field: str) -> Any:
    if field in ("id", "userId"):
        return user.user_id
    if field == "status":
        return user.status
    if field == "workStatus":
        return "Closed" if user.status == "Resigned" else "Active"
    if field == "createdAt":
        return user.created_at
    if field == "updatedAt":
        return user.updated_at
    if field == "userSource":
        return user.source_type
    if field == "identity":
        return None
    if field == "email":
        email = user.profile.get("email")
        return email.lower() if isinstance(email, str) else None
    if field == "gender":
        return user.profile.get("gender", "U")
    if field in STRING_FIELDS or field in BOOL_FIELDS:
        return user.profile.get(field)
    return user.custom_data.get(field)


def _sort_key(field: str, user: User) -> tuple[bool, Any]:
    """Missing values sort last."""
    value = _value(user, field)
    return (value is None, value if value is not None else 0)


def _compare(field: str, op: str, value: Any) -> Predicate:
    def ordered(fn: Callable[[Any], bool]) -> Predicate:
        def test(u: User) -> bool:
            v = _value(u, field)
            try:
                return v is not None and fn(v)
            except TypeError:
                return False
        return test

    tests: dict[str, Predicate] = {
        "EQUAL": lambda u: _value(u, field) == value,
        "NOT_EQUAL": lambda u: _value(u, field) != value,
        "CONTAINS": lambda u: str(value) in str(_value(u, field) or ""),
        "NOT_CONTAINS": lambda u: str(value) not in str(_value(u, field) or ""),
        "IS_NULL": lambda u: _value(u, field) in (None, ""),
        "NOT_NULL": lambda u: _value(u, field) not in (None, ""),
        "IN": lambda u: _value(u, field) in value,
        "GREATER": ordered(lambda v: v > value),
        "LESSER": ordered(lambda v: v < value),
        "BETWEEN": ordered(lambda v: len(value) == 2 and value[0] <= v <= value[1]),
    }
    return tests[op]
