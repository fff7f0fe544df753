"""Named leases with expiry: one holder at a time across every process sharing the database.

A crashed holder's lease simply expires and another process takes over. Functions take a
connection and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import Lease

_T = Lease.__table__  # type: ignore[attr-defined]


def acquire(conn: Connection, *, name: str, owner: str, now: datetime,
            ttl: timedelta) -> bool:
    """Take or renew ``name`` for ``owner``; False while someone else holds it."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(_T).values(name=name, owner=owner, expires_at=now + ttl, data={})
                 .on_conflict_do_nothing(index_elements=["name"]))
    taken = conn.execute(update(_T).where(
        _T.c.name == name, (_T.c.owner == owner) | (_T.c.expires_at < now),
    ).values(owner=owner, expires_at=now + ttl))
    return bool(taken.rowcount)


def release(conn: Connection, *, name: str, owner: str, now: datetime) -> None:
    conn.execute(update(_T).where(_T.c.name == name, _T.c.owner == owner)
                 .values(expires_at=now))


def holder(conn: Connection, *, name: str, now: datetime) -> str | None:
    row = conn.execute(select(_T.c.owner, _T.c.expires_at).where(_T.c.name == name)).first()
    if row is None or _aware(row.expires_at) < now:
        return None
    return str(row.owner)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
