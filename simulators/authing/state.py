"""``PoolState``: the whole simulated user pool (users, organizations, departments, custom
fields, memberships). The mixins hold the rules; this class adds bulk seeding and reset.

Callers hold ``state.lock`` around each operation (the API and ``sim.admin`` do).
"""

from __future__ import annotations

from typing import Any

from .members import MembersMixin
from .records import Department, MonotonicClock, User


class PoolState(MembersMixin):
    def __init__(self, userpool_id: str, clock: MonotonicClock | None = None) -> None:
        super().__init__(userpool_id, clock)
        self.query_cache: dict[Any, Any] = {}

    def seed_users(self, bodies: list[dict[str, Any]],
                   options: dict[str, Any] | None = None) -> list[User]:
        """Bulk load with full validation but no webhooks (benchmarks seed 100k users)."""
        with self.lock, self.muted():
            return self.create_users(bodies, options)

    def seed_departments(self, bodies: list[dict[str, Any]]) -> list[Department]:
        """create-department bodies, parents before children; no webhooks."""
        with self.lock, self.muted():
            return [self.create_department(body) for body in bodies]

    def reset(self) -> None:
        """Forget everything (custom field definitions included); no webhooks."""
        with self.lock:
            self.users.clear()
            for index in self.index.values():
                index.clear()
            self.departments.clear()
            self.orgs.clear()
            self.fields.fields.clear()
            self.query_cache.clear()
            self.changed()

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {"users": len(self.users), "departments": len(self.departments),
                    "organizations": len(self.orgs), "customFields": len(self.fields.fields)}
