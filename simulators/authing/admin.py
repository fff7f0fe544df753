"""The admin side door: what a console operator (or a test) does to the pool.

Admin changes go through the same handlers, rules and webhooks as API calls (an operator's
console edit fires webhooks too), but skip the token, fault injection and call counting.
Failures raise ``ApiError``. Seeding is the exception: it is silent (no webhooks), for speed.
"""

from __future__ import annotations

from typing import Any

from ..faults import Fault
from . import api_config, api_directory, api_users
from .endpoint import Deps, Handler
from .params import Params
from .webhooks import EVENTS


class Admin:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def call(self, handler: Handler, body: dict[str, Any]) -> Any:
        """Run an API handler with a request body, under the state lock."""
        with self.deps.state.lock:
            return handler(self.deps, Params(body))

    # directory ------------------------------------------------------------------------
    def create_organization(self, code: str, name: str | None = None,
                            open_department_id: str | None = None) -> dict[str, Any]:
        body = {"organizationCode": code, "organizationName": name or code}
        if open_department_id is not None:
            body["openDepartmentId"] = open_department_id
        return dict(self.call(api_directory.create_organization, body))

    def create_department(self, organization_code: str, name: str, parent: str = "root", *,
                          parent_id_type: str = "department_id",
                          **fields: Any) -> dict[str, Any]:
        """``fields`` are create-department properties, e.g. ``openDepartmentId="2"``."""
        body = {"organizationCode": organization_code, "name": name,
                "parentDepartmentId": parent, "departmentIdType": parent_id_type, **fields}
        return dict(self.call(api_directory.create_department, body))

    def update_department(self, organization_code: str, department_id: str,
                          id_type: str = "department_id", **fields: Any) -> dict[str, Any]:
        body = {"organizationCode": organization_code, "departmentId": department_id,
                "departmentIdType": id_type, **fields}
        return dict(self.call(api_directory.update_department, body))

    def delete_department(self, organization_code: str, department_id: str,
                          id_type: str = "department_id") -> None:
        self.call(api_directory.delete_department, {
            "organizationCode": organization_code, "departmentId": department_id,
            "departmentIdType": id_type})

    def create_user(self, **fields: Any) -> dict[str, Any]:
        """create-user properties, e.g. ``username="zs", externalId="zs"``."""
        return dict(self.call(api_users.create_user, fields))

    def update_user(self, user_id: str, id_type: str = "user_id",
                    **fields: Any) -> dict[str, Any]:
        body = {"userId": user_id, "options": {"userIdType": id_type}, **fields}
        return dict(self.call(api_users.update_user, body))

    def delete_user(self, user_id: str, id_type: str = "user_id") -> None:
        self.call(api_users.delete_users_batch,
                  {"userIds": [user_id], "options": {"userIdType": id_type}})

    def resign_user(self, user_id: str, id_type: str = "user_id") -> None:
        self.call(api_users.resign_user, {"userId": user_id, "userIdType": id_type})

    def set_user_departments(self, user_id: str, departments: list[dict[str, Any]],
                             id_type: str = "user_id") -> None:
        self.call(api_directory.set_user_departments, {
            "userId": user_id, "departments": departments,
            "options": {"userIdType": id_type}})

    def define_custom_fields(self, target_type: str, *keys: str,
                             data_type: str = "STRING") -> None:
        self.call(api_config.set_custom_fields, {"list": [
            {"targetType": target_type, "key": key, "dataType": data_type, "label": key}
            for key in keys]})

    def get_user(self, user_id: str, id_type: str = "user_id") -> dict[str, Any] | None:
        with self.deps.state.lock:
            user = self.deps.state.find_user(user_id, id_type)
        if user is None:
            return None
        return dict(self.call(api_users.get_user, {
            "userId": user.user_id, "withCustomData": True, "withDepartmentIds": True}))

    # bulk -----------------------------------------------------------------------------
    def seed_users(self, bodies: list[dict[str, Any]],
                   options: dict[str, Any] | None = None) -> list[str]:
        """Create many users at once, validated, without webhooks; answers their ids."""
        return [u.user_id for u in self.deps.state.seed_users(bodies, options)]

    def seed_departments(self, bodies: list[dict[str, Any]]) -> list[str]:
        """create-department bodies, parents first, without webhooks; answers their ids."""
        return [d.department_id for d in self.deps.state.seed_departments(bodies)]

    def reset(self) -> None:
        """Empty pool, no webhooks, no faults, counters at zero."""
        self.deps.state.reset()
        self.deps.webhooks.reset()
        self.deps.faults.clear()
        self.deps.faults.stats.reset()

    # webhooks -------------------------------------------------------------------------
    def add_webhook(self, url: str, secret: str = "", *, events: list[str] | None = None,
                    content_type: str = "application/json",
                    retry: dict[str, Any] | None = None, name: str = "simulator") -> str:
        """Like a console-configured webhook; ``events=None`` subscribes to every event."""
        body: dict[str, Any] = {"name": name, "url": url, "events": list(events or EVENTS),
                                "contentType": content_type, "enabled": True,
                                "secret": secret}
        if retry is not None:
            body["retryConfig"] = retry
        return self.deps.webhooks.create(body).webhook_id

    # faults, latency, counting --------------------------------------------------------------
    def fail(self, endpoint: str | None = None, http_status: int = 503, times: int = 1,
             payload: dict[str, Any] | None = None) -> None:
        """The next ``times`` calls (to ``endpoint``, or any) answer ``http_status``."""
        self.deps.faults.arm(Fault("error", times, http_status, payload, 0.0, endpoint))

    def outage(self, seconds: float, endpoint: str | None = None, http_status: int = 503,
               payload: dict[str, Any] | None = None) -> None:
        """Every call (to ``endpoint``, or any) answers ``http_status`` for ``seconds``."""
        self.deps.faults.outage(Fault("error", 0, http_status, payload, 0.0, endpoint), seconds)

    def hang(self, endpoint: str | None = None, seconds: float = 30.0, times: int = 1) -> None:
        """The next calls wait ``seconds`` before answering (client timeouts)."""
        self.deps.faults.arm(Fault("timeout", times, 200, None, seconds, endpoint))

    def drop(self, endpoint: str | None = None, times: int = 1) -> None:
        """The next calls get a connection closed mid-response."""
        self.deps.faults.arm(Fault("drop", times, 200, None, 0.0, endpoint))

    def set_latency(self, ms: float) -> None:
        self.deps.faults.latency = ms / 1000.0

    def set_token_ttl(self, seconds: int) -> None:
        self.deps.tokens.ttl = seconds

    def stats(self) -> dict[str, Any]:
        stats = self.deps.faults.stats
        return {"reads": dict(stats.reads), "writes": dict(stats.writes),
                "totalReads": stats.total_reads, "totalWrites": stats.total_writes,
                "peakConcurrency": self.deps.gauge.peak,
                "tokensIssued": self.deps.tokens.issued}
