"""An initial sync creates users 50 at a time with create-users-batch, and ends up exactly
where one create-user per user would: same users, memberships, main departments, leaders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.authing.app import AuthingSimulator
from simulators.generate import generate_directory
from simulators.wecom.app import WeComSimulator
from sync_core.authing.planner import Mode
from sync_core.engine.reconciler import RunRequest
from sync_core.metrics import Metrics
from sync_core.runtime import SyncRuntime, build_runtime
from sync_core.store import migrate, runs
from sync_core.store.db import make_engine

from .conftest import make_settings


@dataclass
class Pools:
    wecom: WeComSimulator
    authing: AuthingSimulator
    runtime: SyncRuntime
    directory: Any

    async def run(self, mode: Mode = Mode.CREATE_UPDATE) -> dict[str, Any]:
        reconciler = self.runtime.reconciler
        request = RunRequest(mode=mode)
        run_id = reconciler.create(request)
        await reconciler.execute(run_id, request)
        with reconciler.engine.connect() as conn:
            run = runs.get(conn, run_id)
            assert run is not None
            return runs.as_json(run, runs.items(conn, run_id))

    def user(self, userid: str) -> dict[str, Any]:
        user = self.authing.admin.get_user(userid, "external_id")
        assert user is not None, userid
        return user

    def departments_of(self, userid: str) -> dict[str, tuple[bool, bool]]:
        """WeCom department id → (leader, main) as Authing holds them."""
        state = self.authing.state
        with state.lock:
            user = state.find_user(userid, "external_id")
            assert user is not None
            return {state.departments[d].open_department_id or "?": (
                user.user_id in state.departments[d].leader_user_ids,
                user.main_department_id == d) for d in user.departments}


@contextmanager
def pools(tmp_path: Path, users: int) -> Iterator[Pools]:
    directory = generate_directory(users=users, departments=6, seed=11, max_depth=3)
    with WeComSimulator(corp_id="wwbatch") as wecom, \
            AuthingSimulator(userpool_id="batch-pool", secret="s3cret") as authing:
        wecom.admin.load(directory.departments, directory.users)
        settings = make_settings(
            f"sqlite:///{tmp_path / 'runs.db'}", wecom_corp_id="wwbatch",
            wecom_contact_secret="contact-sync-secret", wecom_api_base=wecom.url,
            authing_api_base=authing.url, authing_access_key_id="batch-pool",
            authing_access_key_secret="s3cret", wecom_rate_per_minute=10000,
            http_timeout_seconds=5, retry_total_seconds=5)
        engine = make_engine(settings.database_url)
        migrate.upgrade(engine)
        runtime = build_runtime(settings, engine, Metrics())
        try:
            yield Pools(wecom, authing, runtime, directory)
        finally:
            engine.dispose()


async def test_an_initial_sync_creates_users_in_batches_of_fifty(tmp_path: Path) -> None:
    with pools(tmp_path, users=120) as p:
        try:
            run = await p.run()
            assert run["status"] == "succeeded", run
            writes = p.authing.stats.writes
            assert writes["create-users-batch"] == 3  # 50 + 50 + 20
            assert writes.get("create-user", 0) == 0
            assert writes["set-user-departments"] == 120
            assert run["counters"]["created"] == 120 + 5
            for wanted in p.directory.users:
                user = p.user(wanted["userid"])
                assert user["name"] == wanted["name"]
                assert user["customData"]["wechatwork_user_id"] == wanted["userid"]
                held = p.departments_of(wanted["userid"])
                assert set(held) == {str(d) for d in wanted["department"]}
                for dept, leader in zip(wanted["department"], wanted["is_leader_in_dept"],
                                        strict=True):
                    assert held[str(dept)] == (bool(leader),
                                               dept == wanted["main_department"])

            before = p.authing.stats.total_writes
            again = await p.run(Mode.FULL)
            assert p.authing.stats.total_writes == before
            assert {i["action"] for i in again["items"]} == {"unchanged"}
        finally:
            await p.runtime.aclose()


async def test_a_refused_batch_falls_back_to_one_create_user_each(tmp_path: Path) -> None:
    with pools(tmp_path, users=30) as p:
        try:
            p.authing.admin.fail("create-users-batch", http_status=503)  # nothing created
            run = await p.run()
            assert run["status"] == "succeeded", run
            writes = p.authing.stats.writes
            assert writes["create-users-batch"] == 1
            assert writes["create-user"] == 30
            assert all(p.user(u["userid"]) for u in p.directory.users)
        finally:
            await p.runtime.aclose()


async def test_one_bad_user_fails_alone(tmp_path: Path) -> None:
    with pools(tmp_path, users=20) as p:
        try:
            await p.runtime.sync.prepare()
            taken = p.directory.users[3]
            # Someone else's account already holds this email: Authing refuses the batch.
            p.authing.admin.create_user(username="someone-else", email=taken["email"],
                                        externalId="not-from-wecom")
            run = await p.run()
            failed = [i for i in run["items"] if i["status"] == "failed"]
            assert [i["key"] for i in failed] == [taken["userid"]]
            assert run["status"] == "partial"
            others = [u for u in p.directory.users if u is not taken]
            assert all(p.user(u["userid"]) for u in others)
        finally:
            await p.runtime.aclose()
