"""One pure planner over canonical records (``directory.model``): what to create, update,
disable or delete so that the target matches the source, under a ``Policy``.

The planner decides; a ``Render`` (the direction's) turns each decision into its target's
requests, so the planner names no platform. Rules:

- a field that either side leaves unknown (None) is not compared: unknown is not different;
- ``Policy.ignore`` fields are never written; with ``update=False`` nothing existing is
  updated (create only);
- a source record with ``problems`` (a direction's validation) becomes a skip naming them,
  with no request;
- ownership: a target user linked to another source key is a conflict; an unlinked one
  (no source key) is taken over only with ``Policy.adopt``; a target object that is not
  ours (``managed`` False) is never removed, nor is the target's root, nor a department
  that still holds members or child departments;
- a deleted source user follows ``Policy.delete``: ``delete`` removes, ``resign`` and
  ``suspend`` disable (``enabled=False``; resign also where only suspended, when the
  target tells the two apart), ``ignore`` leaves it;
- a department is never created without a name or a known parent; one whose parent is
  unknown (None, not a root) stays where it is; a move is a MOVE even with a rename;
- free-form data (``custom``) is merged into what the target holds (``merge_custom``);
  memberships with leader/main flags are planned in ``directory.memberships``;
- a user is not created resigned (``status``), nor without one of ``Policy.create_needs``;
  ``initial`` fields are written by a create only; with ``Policy.relink`` a target user
  taken over (adopted, or the account of a renamed key) is linked to the source key.
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
    adopt: bool = False  # take over an unlinked target user that matches a source one
    relink: bool = False  # write the source key to a target user taken over (``"key"``)
    create_needs: tuple[str, ...] = ()  # a user is created with one of these, or not at all


@dataclass(frozen=True, slots=True)
class Wording:
    """How reasons name a direction's sides: the source and target platforms, the target
    field that holds the source key, and the service that owns what it wrote."""

    source: str = "the source"
    target: str = "target"
    key_field: str = "source key"
    service: str = "this service"
    custom_field: str = "custom"  # the target field that holds free-form data
    resigned: str = "resigned in the source"  # why a resigned user is not created
    identifiers: str = "one of its identifiers"  # what ``Policy.create_needs`` asks for


Rendered = tuple[tuple[Change, ...], tuple[Request, ...]]


class RemovalRender(Protocol):
    """A direction's target requests, and the changes they make as its run items show
    them, for removals: ``action`` is DELETE, RESIGN or SUSPEND."""

    wording: Wording

    def remove_user(self, actual: User, action: Action) -> Rendered: ...

    def remove_department(self, actual: Department) -> Rendered: ...


class DepartmentRender(RemovalRender, Protocol):
    """A direction's target requests for department decisions; a parent is a target id
    or a ``DepartmentRef`` (resolved by the executor)."""

    def create_department(self, department: Department, parent: Any) -> Rendered: ...

    def update_department(self, target_id: str, name: str | None, parent: Any,
                          custom: Mapping[str, Any] | None) -> tuple[Request, ...]:
        """``custom``: the whole free-form value to write (ours merged into the target's)."""
        ...


class Render(DepartmentRender, Protocol):
    """A direction's target requests for the planner's decisions. ``departments`` hold
    target ids or ``DepartmentRef``s (resolved by the executor). Besides ``User.fields``
    names, ``fields`` may hold ``"custom"`` (the whole free-form value to write: ours
    merged into the target's) and, on update, ``"key"`` (the source key to link the
    target user to, under ``Policy.relink``)."""

    def create_user(self, user: User, fields: Mapping[str, Any],
                    departments: Sequence[Any]) -> tuple[Request, ...]: ...

    def update_user(self, target_id: str, fields: Mapping[str, Any],
                    departments: Sequence[Any] | None,
                    enabled: bool | None) -> tuple[Request, ...]: ...


def _resolve(keys: Sequence[str], ids: Mapping[str, str]) -> tuple[list[Any], tuple[str, ...]]:
    """Target ids for source department ``keys``: known ones as ids, the rest as refs."""
    resolved = list(dict.fromkeys(ids[k] if k in ids else DepartmentRef(k) for k in keys))
    return resolved, tuple(k for k in keys if k not in ids)


def plan_user(desired: User | None, actual: User | None, ids: Mapping[str, str],
              policy: Policy, render: Render, *, key: str,
              problems: Sequence[str] = ()) -> tuple[Operation, ...]:
    """``ids``: source department key → target id, for the departments known now."""
    if desired is None:
        return () if actual is None else plan_user_removal(actual, policy, render, key=key)
    if problems:
        return (Operation(Kind.USER, key, Action.SKIP, desired.target_id,
                          reason="; ".join(problems), cause=Cause.INVALID),)
    if actual is not None and actual.key != desired.key:  # unlinked, renamed or another's
        conflict = user_conflict((desired.key, desired.renamed_from), actual.key,
                                 actual.target_id, policy.adopt, render.wording, key=key)
        if conflict is not None:
            return (conflict,)
    ignore = policy.ignore
    wanted = {k: v for k, v in desired.fields.items()
              if v is not None and (not ignore or k not in ignore)}
    departments = desired.departments or ()
    if actual is None:
        return (_user_create(desired, wanted, ids, policy, render, key),)
    target = actual.target_id or desired.target_id or key
    if not policy.update:
        return (Operation(Kind.USER, key, Action.UNCHANGED, target,
                          reason="update policy none: existing members are not updated"),)
    old = actual.fields
    changed = {k: v for k, v in wanted.items()
               if (was := old.get(k)) is not None and was != v and not same(was, v)}
    changes = [Change(k, old.get(k), v) for k, v in sorted(changed.items())] if changed else []
    if policy.relink and actual.key != desired.key:  # taken over: adopted or renamed
        changes.insert(0, Change("key", actual.key or None, desired.key))
        changed["key"] = desired.key
    if desired.custom is not None:
        custom_changes, custom = merge_custom(desired.custom, actual.custom,
                                              field=render.wording.custom_field)
        if custom is not None:
            changes += custom_changes
            changed["custom"] = custom
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


def _user_create(desired: User, wanted: Mapping[str, Any], ids: Mapping[str, str],
                 policy: Policy, render: Render, key: str) -> Operation:
    """A create, or a skip when the target would refuse it or the source says no."""
    wording = render.wording
    if wanted.get("status") == "resigned":
        return Operation(Kind.USER, key, Action.SKIP, cause=Cause.POLICY,
                         reason=f"{wording.resigned}: no account is created")
    values = {**{k: v for k, v in desired.initial if k not in policy.ignore}, **wanted}
    if policy.create_needs and not any(values.get(k) for k in policy.create_needs):
        return Operation(Kind.USER, key, Action.SKIP, cause=Cause.INCOMPLETE,
                         reason=f"cannot create: {wording.target} needs {wording.identifiers} "
                                f"and {wording.source} sent none")
    resolved, missing = _resolve(desired.departments or (), ids)
    created = [Change(k, None, v) for k, v in sorted(values.items())]
    if desired.custom is not None:
        custom = {k: v for k, v in desired.custom if v}
        created += [Change(f"{wording.custom_field}.{k}", None, v) for k, v in custom.items()]
        values["custom"] = custom
    return Operation(Kind.USER, key, Action.CREATE, None, tuple(created),
                     render.create_user(desired, values, resolved), missing)


def user_conflict(keys: tuple[str, str | None], linked: str, target_id: str | None,
                  adopt: bool, wording: Wording, *, key: str) -> Operation | None:
    """A skip when the target user ``target_id``, linked to source key ``linked`` ("" for
    none), is not for the source user of ``keys`` (its key and the one it was renamed
    from): linked to another key, or unlinked without ``adopt``; None when it is. Plain
    values: it runs for every planned user that exists in the target."""
    if linked and linked in keys:
        return None
    if not linked:
        if adopt:
            return None
        reason = (f"conflict: unmanaged {wording.target} user {target_id} has no "
                  f"{wording.key_field}; set adopt_existing to take it over")
    else:
        reason = (f"conflict: {wording.target} user {target_id} belongs to "
                  f"{wording.key_field} {linked!r}")
    return Operation(Kind.USER, key, Action.SKIP, target_id, reason=reason,
                     cause=Cause.CONFLICT)


def plan_user_removal(actual: User, policy: Policy, render: RemovalRender, *,
                      key: str) -> tuple[Operation, ...]:
    """A target user whose source record is gone, under ``Policy.delete``."""
    if actual.target_id is None:
        return ()
    target, wording = actual.target_id, render.wording
    if actual.managed is False:
        return (Operation(Kind.USER, key, Action.SKIP, target, cause=Cause.NOT_MANAGED,
                          reason=f"not managed by {wording.service}: left alone"),)
    if policy.delete == "ignore":
        return (Operation(Kind.USER, key, Action.SKIP, target, cause=Cause.POLICY,
                          reason=f"deleted in {wording.source}; user_delete_policy is ignore"),)
    action = {"delete": Action.DELETE, "suspend": Action.SUSPEND}.get(policy.delete,
                                                                     Action.RESIGN)
    # Resigned is more than suspended; where the target cannot tell them apart
    # (``resigned`` None), disabled is as far as it goes.
    done = actual.resigned if action is Action.RESIGN and actual.resigned is not None \
        else actual.enabled is False
    if action is not Action.DELETE and done:
        return (Operation(Kind.USER, key, Action.UNCHANGED, target,
                          reason="already disabled"),)
    changes, requests = render.remove_user(actual, action)
    return (Operation(Kind.USER, key, action, target, changes, requests),)


def plan_department_removal(actual: Department, render: RemovalRender, *,
                            key: str) -> tuple[Operation, ...]:
    """A target department whose source record is gone: deleted when it is ours, not the
    root, and empty (as far as ``members`` and ``children`` tell)."""
    if actual.target_id is None:
        return ()
    target, wording = actual.target_id, render.wording
    if actual.managed is False:
        return (Operation(Kind.DEPARTMENT, key, Action.SKIP, target, cause=Cause.NOT_MANAGED,
                          reason=f"not managed by {wording.service}: left alone"),)
    if actual.root:
        return (Operation(Kind.DEPARTMENT, key, Action.SKIP, target, cause=Cause.PROTECTED,
                          reason="the organization root is never deleted"),)
    members, children = actual.members or 0, actual.children or 0
    if members > 0 or children > 0:
        return (Operation(Kind.DEPARTMENT, key, Action.SKIP, target, cause=Cause.BLOCKED,
                          reason=f"blocked: department is not empty ({members} members, "
                                 f"{children} child departments)"),)
    changes, requests = render.remove_department(actual)
    return (Operation(Kind.DEPARTMENT, key, Action.DELETE, target, changes, requests),)


def plan_department(desired: Department | None, actual: Department | None,
                    ids: Mapping[str, str], policy: Policy, render: DepartmentRender, *, key: str,
                    problems: Sequence[str] = ()) -> tuple[Operation, ...]:
    if desired is None:
        return () if actual is None else plan_department_removal(actual, render, key=key)
    if problems:
        return (Operation(Kind.DEPARTMENT, key, Action.SKIP, desired.target_id,
                          reason="; ".join(problems), cause=Cause.INVALID),)
    if desired.root:  # a root maps onto the target's root: never written
        return ()
    wording = render.wording
    if actual is None:
        return (_department_create(desired, ids, wording, render, key),)
    target = actual.target_id or key
    if not policy.update:
        return (Operation(Kind.DEPARTMENT, key, Action.UNCHANGED, target),)
    changes = []
    name = None
    if desired.name and actual.name is not None \
            and not same(desired.name, actual.name) and "name" not in policy.ignore:
        name = desired.name
        changes.append(Change("name", actual.name, desired.name))
    parent: Any = None
    needs: tuple[str, ...] = ()
    if desired.parent is not None:  # else unknown: left where it is
        [resolved], needs = _resolve([desired.parent], ids)
        if needs or (actual.parent is not None and str(resolved) != actual.parent):
            parent = resolved
            changes.append(Change("parent", actual.parent_key or actual.parent,
                                  desired.parent))
    custom = None
    if desired.custom is not None:
        custom_changes, custom = merge_custom(desired.custom, actual.custom,
                                              field=wording.custom_field)
        changes += custom_changes
    if not changes:
        return (Operation(Kind.DEPARTMENT, key, Action.UNCHANGED, target),)
    return (Operation(Kind.DEPARTMENT, key, Action.UPDATE if parent is None else Action.MOVE,
                      target, tuple(changes),
                      render.update_department(target, name, parent, custom), needs),)


def _department_create(desired: Department, ids: Mapping[str, str], wording: Wording,
                       render: DepartmentRender, key: str) -> Operation:
    if not desired.name:
        return Operation(Kind.DEPARTMENT, key, Action.SKIP, cause=Cause.INCOMPLETE,
                         reason=f"department name unknown ({wording.source} sent only ids); "
                                f"read it from {wording.source} first")
    if desired.parent is None:
        return Operation(Kind.DEPARTMENT, key, Action.SKIP, cause=Cause.INCOMPLETE,
                         reason="parent department unknown")
    [parent], needs = _resolve([desired.parent], ids)
    changes, requests = render.create_department(desired, parent)
    return Operation(Kind.DEPARTMENT, key, Action.CREATE, None, changes, requests, needs)


def same(old: Any, new: Any) -> bool:
    """Equal, where None and "" both mean empty and numbers read back as strings."""
    if old in (None, "") or new in (None, ""):
        return old in (None, "") and new in (None, "")
    return str(old) == str(new)


def merge_custom(desired: Sequence[tuple[str, Any]], actual: Sequence[tuple[str, Any]] | None,
                 *, field: str) -> tuple[list[Change], dict[str, Any] | None]:
    """A record's free-form data (the target's ``field``): the keys ours changes, shown
    as ``field.key``, and the whole value to write, None when nothing changed. The value
    is the target's current one with ours merged in, so the keys other writers own
    survive a write that replaces it. ``actual`` None: not read, nothing to keep."""
    old = dict(actual or ())
    changes = [Change(f"{field}.{k}", was, v) for k, v in desired
               if (was := old.get(k)) != v and not same(was, v)]
    return (changes, {**old, **dict(desired)}) if changes else ([], None)
