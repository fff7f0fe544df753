"""The inbox as a ledger of userid renames (``update_user`` with ``NewUserID``).

WeCom's rename callbacks may arrive late, out of order, or not at all. Every rename
callback ever stored, whatever its status, is evidence that the member behind one userid
is the member behind another, so the worker asks here before it decides that a userid is
new (``renamed_from``) or gone (``renamed_to``). Functions take a connection and never
commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import Connection, Engine, String, bindparam, cast, select

from .models import EventSource, InboxEvent

_T = InboxEvent.__table__  # type: ignore[attr-defined]
_NEW = cast(_T.c.payload["new_user_id"].as_string(), String)
_RENAMES = (_T.c.source == EventSource.WECOM.value, _T.c.entity_kind == "user",
            _T.c.event_type == "update_user")

# A create_user stored after a rename means the old userid was given to someone new: the
# rename no longer speaks for whoever holds it now.
_LATER = _T.alias("later")
_RECREATED = select(_LATER.c.id).where(
    _LATER.c.source == EventSource.WECOM.value, _LATER.c.entity_kind == "user",
    _LATER.c.event_type == "create_user", _LATER.c.entity_key == _T.c.entity_key,
    _LATER.c.id > _T.c.id).exists()

# Renames *of* a userid are found through the entity index; renames *to* one read the
# payloads of the update_user events, which is only done for a userid without an account.
_TO = select(_NEW).where(*_RENAMES, _T.c.entity_key == bindparam("userid"),
                         _NEW.is_not(None), ~_RECREATED).order_by(_T.c.id.desc())
_FROM = select(_T.c.entity_key).where(
    *_RENAMES, _NEW.is_not_distinct_from(bindparam("userid")), ~_RECREATED,
).order_by(_T.c.id.desc())


def renamed_to(conn: Connection, userid: str) -> list[str]:
    """The userids ``userid`` was renamed to, newest callback first."""
    rows = conn.execute(_TO, {"userid": userid}).scalars()
    return list(dict.fromkeys(r for r in rows if r and r != userid))


def renamed_from(conn: Connection, userid: str) -> list[str]:
    """The userids that were renamed to ``userid``, newest callback first."""
    rows = conn.execute(_FROM, {"userid": userid}).scalars()
    return list(dict.fromkeys(r for r in rows if r and r != userid))


class RenameLedger:
    """The rename chains around a userid, read in a worker thread (bounded walks)."""

    def __init__(self, engine: Engine, max_hops: int = 8) -> None:
        self._engine = engine
        self._hops = max_hops

    async def forward(self, userid: str) -> list[str]:
        """Userids ``userid`` became, nearest first (a → b → c gives [b, c])."""
        return await asyncio.to_thread(self._walk, renamed_to, userid)

    async def backward(self, userid: str) -> list[str]:
        """Userids that became ``userid``, nearest first."""
        return await asyncio.to_thread(self._walk, renamed_from, userid)

    def _walk(self, step: Callable[[Connection, str], list[str]], start: str) -> list[str]:
        seen, frontier, out = {start}, [start], []
        with self._engine.connect() as conn:
            for _ in range(self._hops):
                frontier = [n for u in frontier for n in step(conn, u) if n not in seen]
                if not frontier:
                    break
                seen.update(frontier)
                out += frontier
        return out
