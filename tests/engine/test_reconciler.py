"""The reconciler's phases over fake ports and a real run log (both databases): department
upserts parent-first, user creates in batches of the writer's limit, removals, department
deletes last; a dry run writes nothing; an incomplete source deletes nothing; the guard
stages deletes until approval, which re-checks the source; a file's snapshot is finished
beside the target, its failed records are failed items; a source without credentials
refuses API runs only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from sync_core.binding import Binding
from sync_core.directory.operations import Mode
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.ports import SourceSnapshot, TargetSnapshot
from sync_core.engine.reconciler import ExcelInput, Reconciler, RequestError, RunRequest
from sync_core.errors import ChangedMeanwhile, TransientError
from sync_core.store import links, runs
from sync_core.store.models import RunStatus
from tests.conftest import make_settings
from tests.engine.fakes import Department, FakeWriter, Stored, User, fake_direction


def _directory(d: Any, users: int = 5) -> None:
    d.source.departments.update({"2": Department("2", "研发", "root"),
                                 "3": Department("3", "后端", "2"),
                                 "4": Department("4", "前端", "2")})
    for i in range(users):
        d.source.users[f"u{i}"] = User(f"u{i}", f"User {i}", "3" if i % 2 else "4")


async def _run(engine: Engine, d: Any, request: RunRequest, excel: Any = None,
               **settings: object) -> tuple[Reconciler, dict[str, Any], list[dict[str, Any]]]:
    reconciler = Reconciler(make_settings("sqlite://", **settings), engine,
                            EntitySync(d.ports), excel=excel)
    run_id = reconciler.create(request)
    await reconciler.execute(run_id, request)
    with engine.connect() as conn:
        run, items = runs.get(conn, run_id), runs.items(conn, run_id)
    assert run is not None
    return reconciler, run, items


async def test_a_first_run_creates_parents_first_then_users_in_batches(engine: Engine) -> None:
    d = fake_direction(batch_limit=3)
    _directory(d)
    _, run, items = await _run(engine, d, RunRequest())
    assert run["status"] == RunStatus.SUCCEEDED and run["counters"]["created"] == 8
    calls = d.writer.calls
    departments = [keys[0] for name, keys in calls if name == "create"]
    assert departments[0] == "2" and set(departments[1:]) == {"3", "4"}
    batches = [keys for name, keys in calls if name == "create-batch"]
    assert sorted(len(b) for b in batches) == [2, 3]  # five users, at most three a call
    last_department = max(i for i, (name, _) in enumerate(calls) if name == "create")
    first_batch = min(i for i, (name, _) in enumerate(calls) if name == "create-batch")
    assert last_department < first_batch
    with engine.connect() as conn:
        linked = links.by_source(conn, direction="upstream", kind="user", key="u0")
    assert linked is not None and linked.target_id == d.target.users["u0"].target_id


async def test_removals_come_after_upserts_and_department_deletes_last(engine: Engine) -> None:
    d = fake_direction()
    _directory(d, users=2)
    d.target.users["gone"] = Stored("t-90", User("gone", "Gone", "9"))
    d.target.departments["9"] = Stored("t-91", Department("9", "旧部门", "root"))
    _, run, _ = await _run(engine, d, RunRequest(mode=Mode.FULL),
                           delete_threshold_percent=100)
    assert run["status"] == RunStatus.SUCCEEDED and run["counters"]["deleted"] == 2
    names = [(name, keys[0]) for name, keys in d.writer.calls]
    assert names[-2:] == [("delete", "gone"), ("delete", "9")]


async def test_a_dry_run_records_the_plan_and_writes_nothing(engine: Engine) -> None:
    d = fake_direction()
    _directory(d)
    _, run, items = await _run(engine, d, RunRequest(dry_run=True))
    assert run["status"] == RunStatus.SUCCEEDED and d.writer.calls == []
    assert {i["status"] for i in items} == {"planned"} and len(items) == 8


async def test_an_incomplete_source_withholds_every_delete(engine: Engine) -> None:
    d = fake_direction()
    _directory(d, users=1)
    d.source.problems = ("a page was lost",)
    d.target.users["gone"] = Stored("t-90", User("gone", "Gone"))
    _, run, items = await _run(engine, d, RunRequest(mode=Mode.FULL),
                               delete_threshold_percent=100)
    assert "gone" in d.target.users and run["counters"]["deleted"] == 0
    withheld = [i for i in items if i["key"] == "gone"]
    assert withheld[0]["action"] == "skip" and "source read was incomplete" in withheld[0][
        "error"]


async def test_the_guard_stages_deletes_and_approval_rechecks_the_source(
        engine: Engine) -> None:
    d = fake_direction()
    for key in ("a", "b", "c"):
        d.target.users[key] = Stored(f"t-{key}", User(key, key))
    reconciler, run, items = await _run(engine, d, RunRequest(mode=Mode.DELETE_ONLY),
                                        delete_threshold_count=1)
    assert run["status"] == RunStatus.BLOCKED and d.writer.calls == []
    assert sorted(i["key"] for i in items if i["status"] == "staged") == ["a", "b", "c"]
    d.source.users["b"] = User("b", "b")  # back in the source before the approval
    await reconciler.approve(run["id"])
    await reconciler.wait()
    assert set(d.target.users) == {"b"}
    with engine.connect() as conn:
        after = {i["key"]: i for i in runs.items(conn, run["id"])}
    assert after["b"]["status"] == "skipped"
    assert after["b"]["error"] == "not applied: present again in Source"


def test_only_the_wired_direction_is_accepted(engine: Engine) -> None:
    d = fake_direction()
    reconciler = Reconciler(make_settings("sqlite://"), engine, EntitySync(d.ports))
    for bad in (RunRequest(direction="downstream"), RunRequest(source="excel")):
        try:
            reconciler.validate(bad)
        except RequestError:
            continue
        raise AssertionError(f"{bad} was accepted")


FILE = ExcelInput(b"data", "export.xlsx")


async def test_a_file_snapshot_is_finished_beside_the_target_and_failed_rows_are_items(
        engine: Engine) -> None:
    d = fake_direction()
    d.target.departments["2"] = Stored("t-2", Department("2", "研发", "root"))
    seen: list[tuple[TargetSnapshot, Binding]] = []

    def finish(target: TargetSnapshot, binding: Binding) -> SourceSnapshot:
        seen.append((target, binding))
        # The file names a department by path; it matches the target's by name.
        known = {s.record.name: s.record.key for s in target.departments}
        return SourceSnapshot((User("ann", "Ann", known["研发"]),),
                              (Department("2", "研发", "root"),), unfinished.problems,
                              ("tree built",), failed=unfinished.failed)

    unfinished = SourceSnapshot((), (), ("1 rows of the file failed",),
                                failed=(("bob", "row 3, column 手机 (C): bad"),))
    unfinished = replace(unfinished, finish=finish)

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return unfinished

    _, run, items = await _run(engine, d, RunRequest(source="excel", excel=FILE),
                               excel=excel)
    assert len(seen) == 1 and seen[0][1].root_department_id == "t-root"
    assert run["status"] == RunStatus.PARTIAL and "tree built" in run["notes"]
    assert d.target.users["ann"].record.department == "2"
    failed = [(i["key"], i["error"]) for i in items if i["status"] == "failed"]
    assert failed == [("bob", "row 3, column 手机 (C): bad")]
    assert d.target.forgotten == 1  # the target's caches of its keys are dropped


async def test_a_failed_row_makes_a_dry_run_partial_too(engine: Engine) -> None:
    d = fake_direction()

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return SourceSnapshot((User("ann", "Ann"),), (), ("1 rows of the file failed",),
                              failed=(("bob", "row 3: bad"),))

    _, run, items = await _run(engine, d, RunRequest(source="excel", excel=FILE,
                                                     dry_run=True), excel=excel)
    assert run["status"] == RunStatus.PARTIAL and d.writer.calls == []
    assert [i["key"] for i in items if i["status"] == "failed"] == ["bob"]


async def test_an_incomplete_source_says_why_nothing_was_deleted(engine: Engine) -> None:
    d = fake_direction()
    d.source.problems = ("a page was lost",)
    d.target.users["gone"] = Stored("t-90", User("gone", "Gone"))
    _, run, _ = await _run(engine, d, RunRequest(mode=Mode.FULL))
    assert "gone" in d.target.users and "a page was lost" in (run["error"] or "")
    _, run, _ = await _run(engine, d, RunRequest())  # create/update deletes nothing anyway
    assert run["error"] is None


def test_a_source_without_credentials_refuses_api_runs_only(engine: Engine) -> None:
    d = fake_direction()

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return SourceSnapshot((), ())

    reconciler = Reconciler(make_settings("sqlite://"), engine, EntitySync(d.ports),
                            excel=excel, source_unreadable="the source needs credentials")
    with pytest.raises(RequestError, match="the source needs credentials"):
        reconciler.validate(RunRequest())
    reconciler.validate(RunRequest(source="excel", excel=FILE))


async def test_approving_a_file_run_keeps_the_files_word_where_the_source_cannot_say(
        engine: Engine) -> None:
    d = fake_direction()
    for key in ("a", "b"):
        d.target.users[key] = Stored(f"t-{key}", User(key, key))

    async def excel(upload: ExcelInput) -> SourceSnapshot:
        return SourceSnapshot((), ())

    d.source.cannot_say = {"a", "b"}
    request = RunRequest(mode=Mode.DELETE_ONLY, source="excel", excel=FILE)
    reconciler, run, _ = await _run(engine, d, request, excel=excel,
                                    delete_threshold_count=1)
    assert run["status"] == RunStatus.BLOCKED
    await reconciler.approve(run["id"])
    await reconciler.wait()
    assert d.target.users == {}  # the file said they are gone; the source could not say
    # From the API, a source that cannot say fails the approval instead: nothing deleted.
    d.target.users["c"] = Stored("t-c", User("c", "c"))
    d.target.users["e"] = Stored("t-e", User("e", "e"))
    d.source.cannot_say = {"c", "e"}
    reconciler, run, _ = await _run(engine, d, RunRequest(mode=Mode.DELETE_ONLY),
                                    delete_threshold_count=1)
    await reconciler.approve(run["id"])
    await reconciler.wait()
    assert set(d.target.users) == {"c", "e"}
    with engine.connect() as conn:
        after = runs.get(conn, run["id"])
    assert after is not None and after["status"] == RunStatus.FAILED


class _HeldWriter(FakeWriter):
    """A ``WriteIntents`` writer: the run's first write of ``refused`` is refused as
    written by the opposite direction since the run read it (``ChangedMeanwhile``), and
    the first write of ``transient`` fails transiently."""

    def __init__(self, target: Any, refused: str, transient: str) -> None:
        super().__init__(target)
        self.refused, self.transient = {refused}, {transient}
        self.held: list[str] = []

    def intended_target(self, op: Any) -> str | None:
        return op.target or op.key  # type: ignore[no-any-return]

    async def intend(self, rows: Any, claim: Any = None) -> None:
        for row in rows:
            if claim is not None:
                self.held.append(row.source_key)
            if claim is not None and row.source_key in self.refused:
                self.refused.discard(row.source_key)
                raise ChangedMeanwhile("written by the opposite direction since it was read")

    async def write(self, request: Any, ids: Any, made: Any) -> None:
        key = str(request.body["key"])
        if key in self.transient:
            self.transient.discard(key)
            raise TransientError("busy", retry_after=0.01, maybe_applied=False)
        await super().write(request, ids, made)


async def test_a_write_refused_as_changed_meanwhile_is_skipped_not_resent_on_a_replan(
        engine: Engine) -> None:
    """A run's write refused because the opposite direction wrote the entity after the
    run read it is a skipped item, not planned again from the same read. But when another
    write of the run failed transiently, the re-plan took the refused entity along and
    wrote it from that read after all, while its item still said skipped (and the write
    was never recorded in the link table)."""
    d = fake_direction()
    _directory(d)
    await _run(engine, d, RunRequest())
    held = _HeldWriter(d.target, refused="u1", transient="u3")
    d2 = replace(d, writer=held, ports=replace(d.ports, writer=held))
    for key in ("u1", "u3"):
        d2.source.users[key] = replace(d2.source.users[key], name=f"{key} renamed")
    _, run, items = await _run(engine, d2, RunRequest())
    by_key = {i["key"]: i for i in items}
    assert "u1" in held.held, "the run's writes are held"
    assert by_key["u3"]["status"] == "applied", by_key["u3"]
    assert by_key["u1"]["status"] == "skipped", by_key["u1"]
    assert d2.target.users["u1"].record.name == "User 1", "not written from the same read"
