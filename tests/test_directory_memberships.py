"""Planned memberships with leader and main flags (``directory.memberships``), table-tested
over canonical records: what is kept, which department is main, what is unchanged."""

from __future__ import annotations

import pytest

from sync_core.directory.memberships import plan_memberships
from sync_core.directory.model import Membership as M

IDS = {"2": "a2", "3": "a3"}


def flags(ms: tuple[M, ...]) -> list[tuple[str, bool | None, bool | None]]:
    return [(m.department, m.leader, m.main) for m in ms]


@pytest.mark.parametrize("want, actual, ours, foreign", [
    # no main named anywhere: the first is main
    ([M("2"), M("3")], None, [("2", False, True), ("3", False, False)], []),
    # a flag the source did not send keeps the target's value
    ([M("2"), M("3")], [M("3", True, True)], [("2", False, False), ("3", True, True)], []),
    # a kept membership elsewhere is main: ours stay without main
    ([M("2")], [M("x9", False, True, foreign=True)], [("2", False, False)],
     [("x9", False, True)]),
    # the source names a main: a kept one loses its main flag
    ([M("2", None, True)], [M("x9", False, True, foreign=True)], [("2", False, True)],
     [("x9", False, False)]),
])
def test_planned_flags(want: list[M], actual: list[M] | None,
                       ours: list[tuple[str, bool, bool]],
                       foreign: list[tuple[str, bool, bool]]) -> None:
    plan = plan_memberships(want, actual, IDS.get)
    assert plan is not None
    assert (flags(plan.ours), flags(plan.foreign)) == (ours, foreign)


def test_nothing_to_write_when_the_target_already_agrees() -> None:
    assert plan_memberships([M("2", True, True)], [M("2", True, True)], IDS.get) is None
    assert plan_memberships(None, [M("2")], IDS.get) is None


def test_departments_the_target_lacks_are_needed_and_numbers_sort_as_numbers() -> None:
    plan = plan_memberships([M(10), M(2, True, None)], [], {2: "a2"}.get, lambda k: f"#{k}")
    assert plan is not None and plan.needs == (10,)
    assert plan.change.old == "" and plan.change.new == "#2[leader];#10[main]"
