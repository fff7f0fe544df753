"""A user's planned department memberships with their leader and main flags (pure).

The target's list is replaced as a whole, so what the source does not decide is kept:
memberships in departments the direction does not manage (``foreign``) stay, and a flag
the source did not send keeps the target's value. The main department is the one the
source names; else the one the target already has among the source's; else, when no kept
membership is main either, the first. Naming a main clears a kept one's main flag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_core.directory.model import Membership
from sync_core.directory.operations import Change

_PLAIN = (False, False)


@dataclass(frozen=True, slots=True)
class MembershipPlan:
    """``ours``: one per source department, in the source's order, flags decided;
    ``foreign``: the kept ones (target ids); ``needs``: source keys the target lacks."""

    ours: tuple[Membership, ...]
    foreign: tuple[Membership, ...]
    needs: tuple[Any, ...]
    change: Change


# A membership as (department, leader, main, foreign): a ``Membership``, or the plain tuple
# an adapter builds per membership of every planned user without the named one's cost.
Held = tuple[Any, bool | None, bool | None, bool]


def plan_memberships(want: Sequence[Membership] | None, actual: Sequence[Held] | None,
                     target_id: Callable[[Any], str | None],
                     label: Callable[[Any], str] = str) -> MembershipPlan | None:
    """None when the source did not say (``want`` None) or nothing changes. ``actual``
    None: the target's list was not read, so it is written as the source has it (nothing
    can be kept). ``target_id``: a source department key's target id, if it exists;
    ``label``: a key as the change shows it."""
    if want is None:
        return None
    ours: dict[Any, tuple[bool, bool]] = {}
    foreign: list[Held] = []
    for held in actual or ():
        if held[3]:
            foreign.append(held)
        else:
            ours[held[0]] = (bool(held[1]), bool(held[2]))
    leaders: dict[Any, bool] = {}
    main = None
    for department, leader, is_main, _ in want:
        leaders[department] = bool(leader) if leader is not None \
            else ours.get(department, _PLAIN)[0]
        if is_main and main is None:
            main = department
    explicit = main is not None
    if main is None:
        main = next((d for d in leaders if ours.get(d, _PLAIN)[1]), None)
    if main is None and leaders and not any(h[2] for h in foreign):
        main, explicit = next(iter(leaders)), True
    new = {d: (leader, d == main) for d, leader in leaders.items()}
    foreign_main_cleared = explicit and any(h[2] for h in foreign)
    if actual is not None and new == ours and not foreign_main_cleared:
        return None
    return MembershipPlan(
        tuple(Membership(d, leader, is_main) for d, (leader, is_main) in new.items()),
        tuple(Membership(d, bool(leader), bool(is_main) and not explicit, True)
              for d, leader, is_main, _ in foreign),
        tuple(d for d in new if target_id(d) is None),
        Change("departments", None if actual is None else _shown(ours, label),
               _shown(new, label)))


def _shown(memberships: Mapping[Any, tuple[bool, bool]], label: Callable[[Any], str]) -> str:
    """``"2[leader,main];3"``: keys in their order, each with its flags."""
    def one(key: Any, leader: bool, main: bool) -> str:
        flags = [name for name, on in (("leader", leader), ("main", main)) if on]
        return f"{label(key)}[{','.join(flags)}]" if flags else label(key)

    return ";".join(one(k, *memberships[k]) for k in sorted(memberships))
