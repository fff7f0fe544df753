"""The executor over a fake target writer: refs resolved before writing, outcomes instead
of exceptions (only StopSync aborts), and user creates batched through the writer."""

from __future__ import annotations

from typing import Any

from sync_core.directory.operations import Action, DepartmentRef, Operation, Request
from sync_core.directory.vocabulary import Kind
from sync_core.engine.executor import Executor, ItemStatus
from sync_core.errors import BadRequestError, NotFoundError, StopSync, TransientError
from tests.engine.fakes import Department, Stored, User, fake_direction


def _create(key: str, department: str | None = None) -> Operation:
    user = User(key, key.title(), department)
    requests = [Request("create", {"kind": Kind.USER, "key": key, "record": user})]
    needs: tuple[str, ...] = ()
    if department is not None:
        needs = (department,)
        requests.append(Request("set-department", {"kind": Kind.USER, "key": key,
                                                   "record": user,
                                                   "department_id": DepartmentRef(department)}))
    return Operation(Kind.USER, key, Action.CREATE, requests=tuple(requests), needs=needs)


async def test_refs_are_resolved_from_the_target_before_any_write() -> None:
    d = fake_direction()
    d.target.departments["7"] = Stored("t-7", Department("7", "研发"))
    ids: dict[str, str] = {}
    outcome = await Executor(d.writer).apply_one(_create("ann", "7"), ids)
    assert outcome.status is ItemStatus.APPLIED
    assert ids == {"7": "t-7"}
    assert outcome.op.requests[1].body["department_id"] == "t-7" and not outcome.op.needs


async def test_an_unresolvable_ref_fails_the_operation_without_writing() -> None:
    d = fake_direction()
    outcome = await Executor(d.writer).apply_one(_create("ann", "404"), {})
    assert outcome.status is ItemStatus.FAILED and isinstance(outcome.error, NotFoundError)
    assert outcome.error.remote == "fake" and "404" in str(outcome.error)
    assert d.writer.calls == []


async def test_errors_become_outcomes_and_only_stop_sync_aborts() -> None:
    d = fake_direction()
    d.writer.fail = {"bad": BadRequestError("no"), "busy": TransientError("later")}
    executor = Executor(d.writer)
    outcomes = await executor.apply([_create("bad"), _create("busy"), _create("ok")])
    assert [o.status for o in outcomes] == [ItemStatus.FAILED, ItemStatus.FAILED,
                                           ItemStatus.APPLIED]
    assert isinstance(outcomes[1].error, TransientError)
    d.writer.fail = {"stop": StopSync("credentials refused")}
    try:
        await executor.apply([_create("stop")])
    except StopSync:
        pass
    else:
        raise AssertionError("StopSync must abort")


async def test_operations_without_requests_are_not_sent() -> None:
    d = fake_direction()
    skip = Operation(Kind.USER, "x", Action.SKIP, reason="no")
    same = Operation(Kind.USER, "y", Action.UNCHANGED)
    outcomes = await Executor(d.writer).apply([skip, same])
    assert [o.status for o in outcomes] == [ItemStatus.SKIPPED, ItemStatus.UNCHANGED]
    assert d.writer.calls == []


async def test_a_batch_create_carries_the_first_request_and_the_rest_follow() -> None:
    d = fake_direction()
    d.target.departments["7"] = Stored("t-7", Department("7", "研发"))
    ops = [_create("ann", "7"), _create("bob")]
    executor = Executor(d.writer)
    assert all(executor.batchable(op) for op in ops)
    sent = await executor.create_users(ops)
    assert [n for n, _ in sent] == [1, 1]
    ids: dict[str, str] = {}
    outcomes = [await executor.apply_one(op, ids, sent=n, created=target)
                for op, (n, target) in zip(ops, sent, strict=True)]
    assert [o.status for o in outcomes] == [ItemStatus.APPLIED, ItemStatus.APPLIED]
    # The ids the batch answered become the operations' targets (for the link table).
    assert [o.op.target for o in outcomes] == [d.target.users[k].target_id
                                               for k in ("ann", "bob")]
    # One batch call; then only the second request of the user that has one.
    assert d.writer.calls == [("create-batch", ("ann", "bob")), ("set-department", ("ann",))]


async def test_a_refused_batch_leaves_every_create_to_go_one_by_one() -> None:
    d = fake_direction()
    d.writer.batch_error = BadRequestError("one of them is invalid")
    ops = [_create("ann"), _create("bob")]
    executor = Executor(d.writer)
    sent = await executor.create_users(ops)
    assert sent == [(0, None), (0, None)]
    outcomes = [await executor.apply_one(op, {}, sent=n) for op, (n, _) in zip(ops, sent,
                                                                               strict=True)]
    assert [o.status for o in outcomes] == [ItemStatus.APPLIED, ItemStatus.APPLIED]
    assert d.writer.calls[1:] == [("create", ("ann",)), ("create", ("bob",))]


async def test_a_create_whose_follow_up_fails_says_what_was_written() -> None:
    """The create reached the target, the next request failed: failed, but written (the
    item says so, counts as created too, and its link row keeps the target id)."""
    from sync_core.engine.run_log import count, item_of, written

    d = fake_direction()
    d.target.departments["7"] = Stored("t-7", Department("7", "研发"))
    write = d.writer.write

    async def refuse_follow_up(request: Request, ids: Any, made: Any) -> None:
        if request.endpoint == "set-department":
            raise BadRequestError("field not defined", remote="fake")
        await write(request, ids, made)

    d.writer.write = refuse_follow_up  # type: ignore[method-assign]
    outcome = await Executor(d.writer).apply_one(_create("ann", "7"), {})
    first = await Executor(d.writer).apply_one(_create("bob", "404"), {})
    assert outcome.status is ItemStatus.FAILED and outcome.written is not None
    assert outcome.op.target is not None and outcome.op.target in outcome.written
    assert "then failed: BadRequestError: fake: field not defined" in str(outcome.error_text)
    assert first.written is None  # nothing reached the target
    items = [item_of(outcome), item_of(first)]
    assert count(items)["created"] == 1 and count(items)["failed"] == 2
    [row] = written([outcome, first], lambda kind, key: {"key": key})
    assert (row.source_key, row.target_id) == ("ann", outcome.op.target)
