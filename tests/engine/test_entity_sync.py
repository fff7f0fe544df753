"""Entity sync over fake ports: what is read (and when not), the departments created on
demand parent-first, the id cache, the re-plan after a refused create, and the echo check
against the link table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync_core.directory.essence import digest
from sync_core.directory.operations import Action
from sync_core.engine.echo import Claimed, claimed
from sync_core.engine.entity_sync import EntitySync
from sync_core.engine.executor import ItemStatus
from sync_core.errors import BadRequestError, TransientError
from sync_core.store.links import LinkRow
from tests.engine.fakes import Department, FakeWriter, Stored, User, fake_direction


async def test_prepare_completes_the_binding_from_the_target() -> None:
    d = fake_direction()
    sync = EntitySync(d.ports)
    assert sync.binding.root_department_id == "root"
    await sync.prepare()
    assert sync.binding.root_department_id == "t-root" and d.target.bootstraps == 1
    assert d.ports.binding.root_department_id == "root"  # the wiring's binding is not patched


async def test_an_update_reads_both_sides_and_applies_the_difference() -> None:
    d = fake_direction()
    d.source.users["ann"] = User("ann", "Ann Lee")
    d.target.users["ann"] = Stored("t-1", User("ann", "Ann"))
    result = await EntitySync(d.ports).sync_user("ann", [{}])
    assert [(o.op.action, o.status) for o in result.outcomes] == [("update", "applied")]
    assert d.source.reads == [("user", "ann")] and d.target.reads == [("user", ("ann",))]
    assert d.target.users["ann"].record.name == "Ann Lee"
    assert [(r.source_key, r.target_id, r.essence_hash) for r in result.links()] == [
        ("ann", "t-1", digest({"name": "Ann Lee"}))]


async def test_an_announced_user_is_created_without_reading_the_target() -> None:
    d = fake_direction()
    d.source.users["bob"] = User("bob", "Bob")
    result = await EntitySync(d.ports).sync_user("bob", [{"created": True}])
    assert result.outcomes[0].status is ItemStatus.APPLIED and "bob" in d.target.users
    assert d.target.reads == []


async def test_a_refused_announced_create_reads_the_target_and_plans_again() -> None:
    d = fake_direction()
    d.source.users["bob"] = User("bob", "Bob")
    d.target.users["bob"] = Stored("t-9", User("bob", "Robert"))
    d.writer.fail = {"bob": BadRequestError("exists")}
    sync = EntitySync(d.ports)
    result = await sync.sync_user("bob", [{"created": True}])
    assert d.target.reads == [("user", ("bob",))]
    # The refused create is not reported; the re-plan is an update of the user found
    # (which the writer refuses alike here).
    assert [(o.op.action, o.status) for o in result.outcomes] == [("update", "failed")]
    d.writer.fail = {}
    again = await sync.sync_user("bob", [{"created": True}])
    assert again.outcomes[-1].status is ItemStatus.APPLIED
    assert d.target.users["bob"].record.name == "Bob"


async def test_missing_departments_are_created_parent_first_and_their_ids_kept() -> None:
    d = fake_direction()
    d.source.departments.update({"2": Department("2", "研发", "root"),
                                 "3": Department("3", "后端", "2")})
    d.source.users.update({"ann": User("ann", "Ann", "3"), "bob": User("bob", "Bob", "3")})
    sync = EntitySync(d.ports)
    first = await sync.sync_user("ann", [{}])
    assert [(o.op.kind, o.op.key, o.op.action) for o in first.outcomes] == [
        ("department", "2", "create"), ("department", "3", "create"), ("user", "ann", "create")]
    assert {r.source_key for r in first.links()} == {"2", "3", "ann"}
    reads = len(d.target.reads)
    await sync.sync_user("bob", [{}])
    # The department id learnt from the create saves the target read for the next user.
    assert ("department_id", "3") not in d.target.reads[reads:]


async def test_a_failure_drops_the_department_id_cache() -> None:
    d = fake_direction()
    d.target.departments["3"] = Stored("t-3", Department("3", "后端"))
    d.source.users.update({"ann": User("ann", "Ann", "3"), "bob": User("bob", "Bob", "3")})
    sync = EntitySync(d.ports)
    await sync.sync_user("ann", [{}])
    d.writer.fail = {"bob": TransientError("later")}
    failed = await sync.sync_user("bob", [{}])
    assert failed.failures
    reads = len(d.target.reads)
    d.writer.fail = {}
    await sync.sync_user("bob", [{}])
    assert ("department_id", "3") in d.target.reads[reads:]


async def test_a_department_delete_blocked_by_members_is_a_blocked_skip() -> None:
    d = fake_direction()
    d.target.departments["busy"] = Stored("t-5", Department("busy", "忙"))
    result = await EntitySync(d.ports).sync_department("busy", [{}])
    assert result.blocked and not result.failures and "busy" in d.target.departments


async def test_a_move_under_a_former_descendant_moves_it_out_first() -> None:
    """A > B > C in the target; the source has B at the top, C under B, A under C (B's
    own event late or lost). A's move is refused as a cycle; the source's tree puts B,
    then C, first, and A's move then goes through, in one result with every write."""
    d = fake_direction()
    d.target.departments.update({
        "A": Stored("t-1", Department("A", "甲")), "B": Stored("t-2", Department("B", "乙", "A")),
        "C": Stored("t-3", Department("C", "丙", "B"))})
    d.source.departments.update({
        "A": Department("A", "甲", "C"), "B": Department("B", "乙"),
        "C": Department("C", "丙", "B")})
    result = await EntitySync(d.ports).sync_department("A", [{}])
    assert not result.failures, result.summary()
    parents = {k: s.record.parent for k, s in d.target.departments.items()}
    assert parents == {"A": "C", "B": None, "C": "B"}
    applied = [(o.op.key, o.op.action) for o in result.outcomes
               if o.status is ItemStatus.APPLIED]
    assert applied == [("B", Action.MOVE), ("A", Action.MOVE)]
    assert {row.source_key for row in result.links()} == {"A", "B"}


async def test_a_move_the_source_tree_cannot_explain_still_fails() -> None:
    d = fake_direction()
    d.target.departments.update({
        "A": Stored("t-1", Department("A", "甲")), "B": Stored("t-2", Department("B", "乙", "A"))})
    d.source.departments.update({"A": Department("A", "甲", "B"),
                                 "B": Department("B", "乙", "A")})  # a source gone wrong
    result = await EntitySync(d.ports).sync_department("A", [{}])
    assert [o.op.key for o in result.failures] == ["A"]  # reported once, not chased


async def test_the_echo_of_the_opposite_directions_write_is_not_planned() -> None:
    d = fake_direction()
    d.source.users["ann"] = User("ann", "Ann")
    d.target.users["ann"] = Stored("t-1", User("ann", "Old"))
    sync = EntitySync(d.ports)
    written = digest({"name": "Ann"})  # what the opposite direction wrote to "ann"
    echo = await sync.sync_user("ann", [{}], echo_of=written)
    assert echo.echo and echo.outcomes == () and echo.links() == []
    assert d.target.users["ann"].record.name == "Old"
    # A state that differs from what was written is a real change, and is applied.
    d.source.users["ann"] = User("ann", "Ann Lee")
    real = await sync.sync_user("ann", [{}], echo_of=written)
    assert not real.echo and d.target.users["ann"].record.name == "Ann Lee"
    d.source.departments["5"] = Department("5", "法务")
    assert (await sync.sync_department("5", [{}], echo_of=digest({"name": "法务"}))).echo


class IntendingWriter(FakeWriter):
    """A writer whose target may call a write back before the entity settles: it is told
    what each write will leave before the write (``WriteIntents``)."""

    def __init__(self, writer: FakeWriter) -> None:
        super().__init__(writer.target)
        self.intents: list[LinkRow] = []
        self.claims: list[Claimed | None] = []

    def intended_target(self, op: Any) -> str | None:
        return op.target

    async def intend(self, rows: Any, claim: Claimed | None = None) -> None:
        self.intents.extend(rows)
        self.claims.append(claim)
        self.calls.append(("intend", tuple(row.source_key for row in rows)))


async def test_what_a_write_will_leave_is_recorded_before_the_write() -> None:
    d = fake_direction()
    writer = IntendingWriter(d.writer)
    ports = replace(d.ports, writer=writer)
    d.source.users["ann"] = User("ann", "Ann Lee")
    d.target.users["ann"] = Stored("t-1", User("ann", "Ann"))
    d.source.users["bob"] = User("bob", "Bob")  # a create: its id is the write's to give
    sync = EntitySync(ports)
    result = await sync.sync_user("ann", [{}])
    await sync.sync_user("bob", [{}])
    assert writer.calls[:2] == [("intend", ("ann",)), ("update", ("ann",))]
    assert ("intend", ("bob",)) not in writer.calls
    assert writer.intents == [LinkRow("user", "ann", "t-1", digest({"name": "Ann Lee"}))]
    assert [(r.target_id, r.essence_hash) for r in result.links()] == [
        ("t-1", digest({"name": "Ann Lee"}))]  # the same state the settlement records
    # Not recorded: not written (the callback it would miss is written back).
    writer.intend = _refused  # type: ignore[method-assign]
    d.source.users["ann"] = User("ann", "Ann Li")
    refused = await sync.sync_user("ann", [{}])
    assert refused.failures and d.target.users["ann"].record.name == "Ann Lee"


async def _refused(rows: Any, claim: Claimed | None = None) -> None:
    raise TransientError("the write intent could not be recorded", maybe_applied=False)


async def test_a_write_of_the_claimed_entity_is_held_to_the_claim() -> None:
    """Within the worker's claim of an entity, the writer is handed the claim with that
    entity's intent (to refuse the write if the opposite direction wrote meanwhile); the
    writes of other entities, and writes outside a claim, are not held to it."""
    d = fake_direction()
    writer = IntendingWriter(d.writer)
    sync = EntitySync(replace(d.ports, writer=writer))
    d.target.users["ann"] = Stored("t-1", User("ann", "Ann"))
    d.target.users["bob"] = Stored("t-2", User("bob", "Bob"))
    d.source.users["ann"] = User("ann", "Ann Lee")
    d.source.users["bob"] = User("bob", "Bob Li")
    seen = frozenset({digest({"name": "Ann"})})
    with claimed("user", "ann", seen):
        await sync.sync_user("ann", [{}])
        await sync.sync_user("bob", [{}])  # e.g. a dependency synced on the way
    d.source.users["ann"] = User("ann", "Ann Lin")
    await sync.sync_user("ann", [{}])
    assert writer.claims == [Claimed("user", "ann", seen), None, None]


async def test_a_blocked_delete_waits_for_a_member_the_source_will_not_let_it_read() -> None:
    """Clearing a department whose delete its members block syncs each member; one the
    source refuses to read (reads refused, no event in hand) is left to its own events,
    and the department waits for them with backoff (``WaitingForDependency``) rather
    than for the source's read cool-down (``RestrictedError``, a stop)."""
    from sync_core.errors import RestrictedError, WaitingForDependency

    class Holding(type(fake_direction().target)):  # type: ignore[misc]
        async def contents(self, department: Any, binding: Any) -> tuple[tuple[str, ...],
                                                                        tuple[str, ...]]:
            return ("left",), ()

    class Refusing(type(fake_direction().source)):  # type: ignore[misc]
        async def read_user(self, key: str, original: str, hints: Any) -> Any:
            raise RestrictedError("reads refused", remote="source")

    d = fake_direction()
    target, source = Holding(), Refusing()
    target.departments["busy"] = Stored("t-5", Department("busy", "忙"))
    ports = replace(d.ports, target=target, source=source,
                    writer=type(d.writer)(target))
    with pytest.raises(WaitingForDependency) as info:
        await EntitySync(ports).sync_department("busy", [{}])
    assert "still holds left" in str(info.value) and not info.value.maybe_applied
