"""One pure planner over canonical records (``directory.model``): what to create, update,
disable or delete so that the target matches the source, under a ``Policy``.

The planner decides; a ``Render`` (the direction's) turns each decision into its target's
requests, so the planner names no platform. Rules:

- a field that either side leaves unknown (None) is not compared: unknown is not different;
- ``Policy.ignore`` fields are never written; with ``update=False`` nothing existing is
  updated (create only);
- a source record with ``problems`` (a direction's validation) becomes a skip naming them,
  with no request;
- a deleted source user follows ``Policy.delete``: ``delete`` removes, ``resign`` and
  ``suspend`` disable (``enabled=False``), ``ignore`` leaves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sync_core.directory.model import Department, User
from sync_core.directory.operations import Action, Change, DepartmentRef, Operation, Request
from sync_core.directory.vocabulary import Cause, Kind


@dataclass(frozen=True, slots=True)
class Policy:
    update: bool = True  # False: create only
    ignore: frozenset[str] = frozenset()
    delete: str = "resign"  # delete | resign | suspend | ignore


class Render(Protocol):
    """A direction's target requests for the planner's decisions. ``departments`` hold
    target ids or ``DepartmentRef``s (resolved by the executor)."""

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]: ...

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]: ...

    def delete_user(self, target_id: str) -> tuple[Request, ...]: ...

    def create_department(self, department: Department, parent: Any) -> tuple[Request, ...]: ...

    def update_department(self, target_id: str, name: str | None,
                          parent: Any) -> tuple[Request, ...]: ...

    def delete_department(self, target_id: str) -> tuple[Request, ...]: ...


def _resolve(keys: Sequence[str], ids: Mapping[str, str]) -> tuple[list[Any], tuple[str, ...]]:
    """Target ids for source department ``keys``: known ones as ids, the rest as refs."""
    resolved = list(dict.fromkeys(ids[k] if k in ids else DepartmentRef(k) for k in keys))
    return resolved, tuple(k for k in keys if k not in ids)


def plan_user(desired: User | None, actual: User | None, ids: Mapping[str, str],
              policy: Policy, render: Render, *, key: str,
              problems: Sequence[str] = ()) -> tuple[Operation, ...]:
    """``ids``: source department key → target id, for the departments known now."""
    if desired is None:
        return _user_gone(actual, policy, render, key)
    if problems:
        return (Operation(Kind.USER, key, Action.SKIP, desired.target_id,
                          reason="; ".join(problems), cause=Cause.INVALID),)
    wanted = {k: v for k, v in desired.fields.items()
              if k not in policy.ignore and v is not None}
    departments = desired.departments or ()
    if actual is None:
        resolved, missing = _resolve(departments, ids)
        created = tuple(Change(k, None, v) for k, v in sorted(wanted.items()))
        return (Operation(Kind.USER, key, Action.CREATE, None, created,
                          render.create_user(desired, wanted, resolved), missing),)
    target = actual.target_id or desired.target_id or key
    if not policy.update:
        return (Operation(Kind.USER, key, Action.UNCHANGED, target,
                          reason="update policy none: existing members are not updated"),)
    changed = {k: v for k, v in wanted.items()
               if actual.fields.get(k) is not None and not _same(actual.fields.get(k), v)}
    changes = [Change(k, actual.fields.get(k), v) for k, v in sorted(changed.items())]
    new_departments: list[Any] | None = None
    needs: tuple[str, ...] = ()
    if (desired.departments is not None and actual.departments is not None
            and "department" not in policy.ignore):
        resolved, needs = _resolve(departments, ids)
        if needs or sorted(map(str, resolved)) != sorted(actual.departments):
            new_departments = resolved
            changes.append(Change("department", tuple(actual.departments), tuple(departments)))
    enabled = None
    if desired.enabled is not None and actual.enabled is not None \
            and desired.enabled != actual.enabled and "enable" not in policy.ignore:
        enabled = desired.enabled
        changes.append(Change("enable", actual.enabled, desired.enabled))
    if not changes:
        return (Operation(Kind.USER, key, Action.UNCHANGED, target),)
    return (Operation(Kind.USER, key, Action.UPDATE, target, tuple(changes),
                      render.update_user(target, changed, new_departments, enabled), needs),)


def _user_gone(actual: User | None, policy: Policy, render: Render,
               key: str) -> tuple[Operation, ...]:
    if actual is None or actual.target_id is None:
        return ()
    target = actual.target_id
    if policy.delete == "ignore":
        return (Operation(Kind.USER, key, Action.SKIP, target,
                          reason="user delete policy ignore: left as it is", cause=Cause.POLICY),)
    if policy.delete == "delete":
        return (Operation(Kind.USER, key, Action.DELETE, target,
                          requests=render.delete_user(target)),)
    action = Action.SUSPEND if policy.delete == "suspend" else Action.RESIGN
    if actual.enabled is False:
        return (Operation(Kind.USER, key, Action.UNCHANGED, target,
                          reason="already disabled"),)
    return (Operation(Kind.USER, key, action, target, (Change("enable", actual.enabled, False),),
                      render.update_user(target, {}, None, False)),)


def plan_department(desired: Department | None, actual: Department | None,
                    ids: Mapping[str, str], policy: Policy, render: Render, *, key: str,
                    problems: Sequence[str] = ()) -> tuple[Operation, ...]:
    if desired is None:
        if actual is None or actual.target_id is None:
            return ()
        return (Operation(Kind.DEPARTMENT, key, Action.DELETE, actual.target_id,
                          requests=render.delete_department(actual.target_id)),)
    if problems:
        return (Operation(Kind.DEPARTMENT, key, Action.SKIP, desired.target_id,
                          reason="; ".join(problems), cause=Cause.INVALID),)
    if desired.parent is None:  # a root maps onto the target's root: never written
        return ()
    [parent], needs = _resolve([desired.parent], ids)
    if actual is None:
        return (Operation(Kind.DEPARTMENT, key, Action.CREATE, None,
                          (Change("name", None, desired.name),),
                          render.create_department(desired, parent), needs),)
    target = actual.target_id or key
    if not policy.update:
        return (Operation(Kind.DEPARTMENT, key, Action.UNCHANGED, target),)
    changes = []
    name = None
    if desired.name is not None and actual.name is not None \
            and not _same(desired.name, actual.name) and "name" not in policy.ignore:
        name = desired.name
        changes.append(Change("name", actual.name, desired.name))
    moved = needs or (actual.parent is not None and str(parent) != actual.parent)
    if moved:
        changes.append(Change("parent", actual.parent, desired.parent))
    if not changes:
        return (Operation(Kind.DEPARTMENT, key, Action.UNCHANGED, target),)
    return (Operation(Kind.DEPARTMENT, key, Action.MOVE if moved and name is None
                      else Action.UPDATE, target, tuple(changes),
                      render.update_department(target, name, parent if moved else None),
                      needs),)


def _same(old: Any, new: Any) -> bool:
    if old in (None, "") or new in (None, ""):
        return old in (None, "") and new in (None, "")
    return str(old) == str(new)
