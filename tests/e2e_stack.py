"""A whole deployment on loopback: WeCom simulator → receiver + worker → Authing simulator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from simulators.authing.app import AuthingSimulator
from simulators.server import BackgroundServer
from simulators.wecom.app import WeComSimulator

from .conftest import CallbackKeys, make_settings

OPS = {"Authorization": "Bearer ops-test-token"}
ORG = "wecom"
HOOK_SECRET = "hook-secret"


@dataclass
class Stack:
    wecom: WeComSimulator
    authing: AuthingSimulator
    receiver: BackgroundServer
    keys: CallbackKeys

    @property
    def url(self) -> str:
        return self.receiver.url

    # -- reading the outcome -------------------------------------------------------------

    def user(self, userid: str) -> dict[str, Any] | None:
        return self.authing.admin.get_user(userid, "external_id")

    def departments(self) -> dict[str, Any]:
        """openDepartmentId → the simulator's department record, in our organization."""
        with self.authing.state.lock:
            return {d.open_department_id: d for d in self.authing.state.departments.values()
                    if d.org_code == ORG and d.open_department_id}

    def open_id_of(self, department_id: str) -> str | None:
        with self.authing.state.lock:
            dept = self.authing.state.departments.get(department_id)
            return dept.open_department_id if dept else None

    def user_open_departments(self, userid: str) -> set[str]:
        user = self.user(userid) or {}
        return {self.open_id_of(d) or d for d in user.get("departmentIds") or ()}

    def events(self, **params: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/ops/events", headers=OPS,
                             params={"limit": "1000", **params})
        response.raise_for_status()
        return response.json()["events"]  # type: ignore[no-any-return]

    # -- waiting -------------------------------------------------------------------------

    def settle(self, timeout: float = 30.0) -> None:
        """Callbacks and webhooks delivered, and no event left pending or waiting to retry
        (repeated until quiet: applying an event may cause new deliveries)."""
        def quiet() -> bool:
            self.wecom.pusher.flush(timeout)
            self.authing.webhooks.drain(timeout)
            if self.events(status="pending") or self.events(status="failed"):
                return False
            self.wecom.pusher.flush(timeout)
            self.authing.webhooks.drain(timeout)
            return not self.events(status="pending")

        eventually(quiet, timeout,
                   lambda: f"open events: {self.events(status='pending')}"
                           f" {self.events(status='failed')}")


def eventually(check: Callable[[], Any], timeout: float = 30.0,
               describe: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it is truthy; a bounded wait for asynchronous effects."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout:.0f} s"
                                 + (f": {describe()}" if describe else ""))
        time.sleep(0.05)


@contextmanager
def running_stack(db_url: str, keys: CallbackKeys, *, trimmed: bool = False,
                  restricted_reads: bool = False, **settings: Any) -> Iterator[Stack]:
    from receiver.app import create_app

    wecom = WeComSimulator(corp_id=keys.corp_id, trimmed=trimmed,
                           restricted_reads=restricted_reads)
    authing = AuthingSimulator(userpool_id="pool-e2e", secret="pool-secret")
    with wecom, authing:
        config = make_settings(
            db_url, keys,
            wecom_contact_secret="contact-sync-secret", wecom_api_base=wecom.url,
            authing_api_base=authing.url, authing_access_key_id="pool-e2e",
            authing_access_key_secret="pool-secret", worker_poll_seconds=0.1,
            authing_webhook_secret=HOOK_SECRET,
            worker_backoff_cap_seconds=1, http_timeout_seconds=5, retry_total_seconds=20,
            **settings)
        app = create_app(config, with_worker=True)
        with BackgroundServer(app) as receiver:
            wecom.set_callback(f"{receiver.url}/wecom/callback", token=keys.token,
                               encoding_aes_key=keys.aes_key, trimmed=trimmed)
            if config.direction != "upstream":
                authing.admin.add_webhook(f"{receiver.url}/authing/webhook", HOOK_SECRET)
            stack = Stack(wecom, authing, receiver, keys)
            # The worker has created the organization and defined the custom fields.
            eventually(lambda: app.state.runtime.worker.ready, 20)
            yield stack
