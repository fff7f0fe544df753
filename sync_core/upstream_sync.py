"""Incremental WeCom → Authing sync of one entity: the worker's unit of work.

An event is a hint. The entity is re-read from WeCom where the API allows it; when WeCom
refuses the read (48009 restricted, 60020 untrusted IP, 48002 no permission) the events'
own fields are used for a cool-down period, and that is said in logs and metrics. The
current Authing state is read, the pure planner decides, the executor applies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .authing_client import AuthingClient
from .errors import (
    ConflictError,
    MissingDepartment,
    NotFoundError,
    PermanentError,
    RestrictedError,
    SyncError,
    UnfitError,
    WaitingForDependency,
)
from .executor import Executor, ItemStatus, Outcome
from .http_retry import gather_pair
from .mapping import DEPARTMENT_ID_FIELD, department_id_of, is_synthetic
from .model import AuthingDepartment, AuthingUser, WeComDepartment, WeComUser
from .operations import Action, Kind, Operation
from .planner import (
    DepartmentIndex,
    Policy,
    is_managed_user,
    plan_department,
    plan_duplicate_removal,
    plan_user,
    plan_user_hold,
)
from .run_items import written
from .store.links import LinkRow
from .store.renames import RenameLedger
from .wecom_client import WeComClient
from .wecom_events import PARTY_CHANGES, USER_CHANGES, change_from_payload

log = logging.getLogger(__name__)

BLOCKED_PREFIX = "blocked:"
CONFLICT_PREFIX = "conflict:"


@dataclass(frozen=True, slots=True)
class EntityResult:
    kind: Kind
    key: str
    outcomes: tuple[Outcome, ...]
    read_from: str  # "api": re-read from WeCom; "event": the events' own fields
    # Canonical WeCom state per (kind, key) the plan was made from: what a write mirrors.
    states: Mapping[tuple[str, str], Any] = field(default_factory=dict)

    def links(self) -> list[LinkRow]:
        return written(self.outcomes, self.states)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is ItemStatus.FAILED)

    @property
    def blocked(self) -> tuple[Outcome, ...]:
        """Skips that may clear by themselves (a department that still has members)."""
        return tuple(o for o in self.outcomes if o.status is ItemStatus.SKIPPED
                     and (o.op.reason or "").startswith(BLOCKED_PREFIX))

    @property
    def conflicts(self) -> tuple[Outcome, ...]:
        """Skips the planner made to protect an account we do not own."""
        return tuple(o for o in self.outcomes if o.status is ItemStatus.SKIPPED
                     and (o.op.reason or "").startswith(CONFLICT_PREFIX))

    @property
    def writes(self) -> int:
        return sum(len(o.op.requests) for o in self.outcomes if o.status is ItemStatus.APPLIED)

    def summary(self) -> str:
        parts = []
        for o in self.outcomes:
            text = f"{o.op.kind} {o.op.key}: {o.op.action} [{o.status}]"
            if o.op.changes:
                text += " (" + ", ".join(c.field for c in o.op.changes) + ")"
            if o.op.reason:
                text += f": {o.op.reason}"
            if o.error is not None:
                text += f": {o.error_text}"
            parts.append(text)
        head = f"from {self.read_from}"
        return f"{head}; " + "; ".join(parts) if parts else f"{head}; nothing to do"


class ReadCooldown:
    """After WeCom refuses a read, don't ask again until the cool-down has passed."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until = 0.0

    @property
    def active(self) -> bool:
        return self._clock() < self._until

    def trip(self, exc: RestrictedError) -> None:
        if not self.active:
            log.warning("WeCom refused a read (%s); applying events from their own fields "
                        "for %.0f s", exc, self.seconds)
        self._until = self._clock() + self.seconds


class UpstreamSync:
    def __init__(self, wecom: WeComClient, authing: AuthingClient, policy: Policy, *,
                 cooldown: ReadCooldown, on_event_fields: Callable[[str], None] | None = None,
                 renames: RenameLedger | None = None) -> None:
        self.wecom = wecom
        self.renames = renames
        self.authing = authing
        self.policy = policy
        self.cooldown = cooldown
        self._on_event_fields = on_event_fields or (lambda kind: None)
        self._executor = Executor(authing)
        # WeCom department id → Authing departmentId, learnt from reads and creates. Saves a
        # get-department per user event; dropped for a department when its own event is
        # handled, and wholesale whenever an entity fails (a stale id is one cause).
        self._dept_ids: dict[int, str] = {}
        # Departments created from an address book's paths and later re-keyed to WeCom's id
        # (``excel_tree``): openDepartmentId stays synthetic, the id is in customData.
        self._rekeyed: dict[str, dict[str, Any]] = {}
        self._rekeyed_at: float | None = None
        # The worker and a run of the same process bootstrap at start-up side by side.
        self._bootstrapping = asyncio.Lock()

    async def bootstrap(self, organization_name: str = "WeCom") -> None:
        """Make sure the organization and the extension fields exist; learn the root id."""
        async with self._bootstrapping:
            await self._bootstrap(organization_name)

    async def _bootstrap(self, organization_name: str) -> None:
        org = await self.authing.get_organization()
        if org is None:
            try:
                org = await self.authing.create_organization(organization_name,
                                                             open_department_id="1")
            except SyncError:
                # Another process may have created it a moment ago (code is unique).
                org = await self.authing.get_organization()
                if org is None:
                    raise
            else:
                log.info("created Authing organization %s", self.policy.organization_code)
        root = org.get("departmentId")
        if root:
            self.policy = replace(self.policy, root_department_id=str(root))
        defined = await self.authing.ensure_custom_fields()
        if defined:
            log.info("defined Authing custom fields: %s", ", ".join(defined))

    # -- users --------------------------------------------------------------------------

    async def sync_user(self, key: str, payloads: Sequence[dict[str, Any]]) -> EntityResult:
        hints = [change_from_payload(p) for p in payloads
                 if p.get("change_type") in USER_CHANGES]
        renamed_to: str | None = next(
            (new for h in reversed(hints) if (new := getattr(h, "new_user_id", None))), None)
        current = renamed_to or key
        states: dict[tuple[str, str], Any] = {}
        done: list[Outcome] = []
        created = renamed_to is None and any(h.change_type == "create_user" for h in hints)
        if created:
            desired, read_from = await self._desired_user(current, key, hints)
            states[("user", current)] = desired
            if desired is not None:
                # Announced as new: the create is itself the existence check (externalId is
                # unique in the pool), so only a refused create pays for reading Authing.
                outcomes = await self._plan_user(desired, None, current, states)
                if not _create_failed(outcomes, PermanentError):
                    return self._result(EntityResult(Kind.USER, current, tuple(outcomes),
                                                     read_from, states))
                done = [o for o in outcomes if o.status is ItemStatus.APPLIED]
            actual = await self._actual_user([key])
        else:
            # WeCom's record and Authing's are independent reads: made side by side, they
            # cost one round trip of latency instead of two or three.
            (desired, read_from), actual = await gather_pair(
                self._desired_user(current, key, hints),
                self._actual_user([key, current] if renamed_to else [key]))
            states[("user", current)] = desired
        if desired is None and read_from == "api":
            # Gone under this userid, or renamed on by a callback we hold (maybe not applied).
            moved = await self._renamed_on(current)
            if moved is not None:
                desired, current = moved, moved.userid
                states[("user", current)] = desired
                actual = actual or await self._actual_user([current])
        suspects: tuple[AuthingUser, ...] = ()
        if desired is not None and actual is None and not created:
            # An update for a userid without an account: a renamed member, before a new one.
            actual, suspects = await self._moved_account(desired, current, weak=True)
        if desired is not None and actual is not None and actual.external_id != current:
            desired = replace(desired, renamed_from=actual.external_id)
            states[("user", current)] = desired
            removal = await self._remove_duplicate(current, actual)
            if any(o.op.action is Action.SKIP for o in removal):
                # An account we do not own holds the new userid: the move cannot be made,
                # and the old identity must not stay active meanwhile.
                hold = plan_user_hold(actual, self.policy, DepartmentIndex(),
                                      str(removal[0].op.reason))
                outcomes = done + removal + await self._executor.apply([hold])
                return self._result(EntityResult(Kind.USER, current, tuple(outcomes),
                                                 read_from, states))
            done += removal
        if suspects:
            return self._result(await self._hold_suspects(desired, current, suspects,
                                                          done, read_from, states))
        outcomes = done + await self._plan_user(desired, actual, current, states)
        if actual is None and desired is not None and _create_failed(outcomes, ConflictError):
            # Only a create that collides pays for the search. An account of ours whose
            # userid left WeCom and that holds the same email or mobile is this member,
            # renamed; an unmanaged one is handed to the planner, which refuses to take it
            # over unless adopt_existing.
            moved_from, _ = await self._moved_account(desired, current, weak=False)
            found = moved_from or await self._unmanaged_match(desired)
            if found is not None:
                if moved_from is not None:
                    desired = replace(desired, renamed_from=moved_from.external_id)
                    states[("user", current)] = desired
                done = [o for o in outcomes if o.status is ItemStatus.APPLIED]
                outcomes = done + await self._plan_user(desired, found, current, states)
        return self._result(EntityResult(Kind.USER, current, tuple(outcomes), read_from,
                                         states))

    # -- identity moves (userid renames) ------------------------------------------------

    async def _renamed_on(self, userid: str) -> WeComUser | None:
        """WeCom's record of the member that left ``userid`` by renames we have callbacks
        for (reference §2.2, NewUserID), following a chain; None when there is none."""
        if self.renames is None:
            return None
        for later in await self.renames.forward(userid):
            try:
                return WeComUser.from_api(await self.wecom.user_get(later))
            except NotFoundError:
                continue
        return None

    async def _moved_account(self, desired: WeComUser, current: str, *, weak: bool
                             ) -> tuple[AuthingUser | None, tuple[AuthingUser, ...]]:
        """The account of a member now called ``current`` under an older userid, and, when
        nothing proves one, the accounts that may be it (``weak``: same name).

        Proof is a rename callback in the inbox (whatever became of it), or an email or
        mobile it shares with an account of ours whose userid WeCom no longer knows (both
        are unique in the corp). Mobile and email may be withheld (apps created after
        2022-06-20, reference §3.3): then only the name is left, which proves nothing."""
        for older in await self.renames.backward(current) if self.renames else ():
            found = await self._actual_user([older])
            if found is not None:
                return found, ()
        from .mapping import map_user

        want = map_user(desired, self.policy.mapping)
        probes = [(f, str(want.get(f))) for f in ("email", "phone") if want.get(f)]
        for unique, value in probes:
            for dto in await self.authing.find_users(unique, value):
                if await self._left_wecom(dto, current):
                    return await self._with_memberships(dto), ()
        if not weak or probes or not desired.name:
            return None, ()
        suspects = [await self._with_memberships(dto)
                    for dto in await self.authing.find_users("name", desired.name)
                    if await self._left_wecom(dto, current)]
        return None, tuple(suspects)

    async def _left_wecom(self, dto: dict[str, Any], current: str) -> bool:
        """An account of ours whose userid WeCom confirms gone (60111)."""
        external_id = dto.get("externalId")
        if not external_id or external_id == current:
            return False
        if not is_managed_user(AuthingUser.from_dto(dto), self.policy, DepartmentIndex()):
            return False
        try:
            await self.wecom.user_get(str(external_id))
        except NotFoundError:
            return True
        except SyncError:
            return False  # refused or failing: not known to be gone
        return False

    async def _remove_duplicate(self, current: str, original: AuthingUser) -> list[Outcome]:
        """An account created under the new userid before its rename was known."""
        duplicate = await self._actual_user([current])
        if duplicate is None or duplicate.user_id == original.user_id:
            return []
        op = plan_duplicate_removal(duplicate, original, self.policy, DepartmentIndex())
        return await self._executor.apply([op])

    async def _hold_suspects(self, desired: WeComUser, current: str,
                             suspects: tuple[AuthingUser, ...], done: list[Outcome],
                             read_from: str, states: dict[tuple[str, str], Any]
                             ) -> EntityResult:
        """No proof, only a suspicion (same name, old userid gone): create nothing, keep
        the old accounts suspended, and wait for the rename callback (WeCom retries it) or
        a reconcile. Given up after the attempt limit, it is dead with this reason."""
        olds = ", ".join(sorted(str(a.external_id) for a in suspects))
        reason = (f"possible rename: WeCom userid(s) {olds} left WeCom and {current} has the "
                  f"same name; waiting for the rename callback or a reconcile")
        holds = [plan_user_hold(a, self.policy, DepartmentIndex(), reason) for a in suspects]
        outcomes = done + await self._executor.apply(holds)
        waiting = Operation(Kind.USER, current, Action.SKIP, reason=reason)
        # Counted against the attempt limit, as a conflict a re-plan may resolve: when the
        # rename callback never comes, the event goes dead with this reason.
        outcomes.append(Outcome(waiting, ItemStatus.FAILED, ConflictError(reason)))
        for a in suspects:
            states.setdefault(("user", str(a.external_id)), None)
        return EntityResult(Kind.USER, current, tuple(outcomes), read_from, states)

    async def _plan_user(self, desired: WeComUser | None, actual: AuthingUser | None,
                         key: str, states: dict[tuple[str, str], Any]) -> list[Outcome]:
        index = await self._index(self._user_departments(desired, actual))
        states.update({("department", str(d.id)): d for d in index.source.values()})
        ops = plan_user(desired, actual, self.policy, index, key=key)
        return await self._apply(ops, index)

    async def _apply(self, ops: Sequence[Operation], index: DepartmentIndex) -> list[Outcome]:
        ids = _seed_ids(index)
        outcomes = await self._executor.apply(ops, ids)
        self._dept_ids.update({int(w): a for w, a in ids.items() if w.isdigit()})
        return [await self._judge_missing(o) for o in outcomes]

    async def _judge_missing(self, outcome: Outcome) -> Outcome:
        """A department the operation needs is not in Authing: permanent only when WeCom
        says it is gone (60123, reference §3.4); otherwise its create is still on its way
        (retried by WeCom, or lost and left to the reconciler) and the entity waits."""
        error = outcome.error
        if not isinstance(error, MissingDepartment):
            return outcome
        for open_id in error.departments:
            if not open_id.isdigit():  # a synthetic key (excel_tree): WeCom cannot say
                continue
            try:
                await self.wecom.department_get(int(open_id))
            except NotFoundError:
                return Outcome(outcome.op, outcome.status, MissingDepartment(
                    f"WeCom department {open_id} is gone (WeCom answers not found)",
                    departments=error.departments, upstream="wecom"))
            except SyncError:
                pass  # refused or failing: not known to be gone
        shown = ", ".join(error.departments)
        return Outcome(outcome.op, outcome.status, WaitingForDependency(
            f"waiting for WeCom department {shown}: not in Authing yet"))

    def _result(self, result: EntityResult) -> EntityResult:
        if result.failures:
            self._dept_ids.clear()
        return result

    async def _desired_user(self, current: str, original: str,
                            hints: list[Any]) -> tuple[WeComUser | None, str]:
        if not self.cooldown.active:
            try:
                user = WeComUser.from_api(await self.wecom.user_get(current))
            except NotFoundError:  # 60111: confirmed gone (or out of the app's scope)
                return None, "api"
            except RestrictedError as exc:
                self.cooldown.trip(exc)
            else:
                if current != original:
                    user = replace(user, renamed_from=original)
                return user, "api"
        self._on_event_fields("user")
        if not hints:
            raise RestrictedError("WeCom refuses reads and no event carries the user's "
                                  "fields; will retry after the cool-down")
        return _fold_users(hints), "event"

    async def _actual_user(self, external_ids: Iterable[str]) -> AuthingUser | None:
        """The linked Authing user with its memberships, read side by side (memberships by
        externalId); when the user is absent the second read is wasted, never wrong."""
        for external_id in dict.fromkeys(external_ids):
            dto, items = await gather_pair(
                self.authing.get_user(external_id=external_id),
                self._memberships_or_none(external_id))
            if dto is not None:
                return (AuthingUser.from_dto(dto, items) if items is not None
                        else await self._with_memberships(dto))
        return None

    async def _memberships_or_none(self, external_id: str) -> list[dict[str, Any]] | None:
        """None when Authing will not answer by externalId for any permanent reason (no
        such user, above all): the caller then takes the one-after-the-other path."""
        try:
            return await self.authing.get_user_departments(external_id, id_type="external_id")
        except PermanentError:
            return None

    async def _unmanaged_match(self, desired: WeComUser) -> AuthingUser | None:
        """An Authing account without externalId that would collide on a unique field:
        handed to the planner, which refuses to take it over unless adopt_existing."""
        from .mapping import map_user

        want = map_user(desired, self.policy.mapping)
        for unique in ("email", "phone", "username"):
            value = want.get(unique)
            if not value:
                continue
            for dto in await self.authing.find_users(unique, str(value)):
                if not dto.get("externalId"):
                    return await self._with_memberships(dto)
        return None

    async def _with_memberships(self, dto: dict[str, Any]) -> AuthingUser:
        items = await self.authing.get_user_departments(str(dto["userId"]))
        return AuthingUser.from_dto(dto, items)

    def _user_departments(self, desired: WeComUser | None,
                          actual: AuthingUser | None) -> tuple[set[int], dict[int, str]]:
        wanted = set(desired.department or ()) if desired else set()
        known: dict[int, str] = {}
        for m in (actual.memberships or ()) if actual else ():
            wecom_id = department_id_of(m.open_department_id)
            if (m.organization_code in (None, self.policy.organization_code)
                    and wecom_id is not None and not is_synthetic(wecom_id)):
                known[wecom_id] = m.department_id
        return wanted, known

    # -- departments --------------------------------------------------------------------

    async def sync_department(self, key: str,
                              payloads: Sequence[dict[str, Any]]) -> EntityResult:
        hints = [change_from_payload(p) for p in payloads
                 if p.get("change_type") in PARTY_CHANGES]
        dept_id = int(key)
        self._dept_ids.pop(dept_id, None)
        desired, read_from = await self._desired_department(dept_id, hints)
        dto = await self._department_dto(key)
        actual = AuthingDepartment.from_dto(dto) if dto else None
        wanted = {desired.parent_id} if desired and desired.parent_id else set()
        index = await self._index((wanted, {}))
        ops = plan_department(desired, actual, self.policy, index, key=key)
        outcomes = await self._apply(ops, index)
        if desired is None:
            self._dept_ids.pop(dept_id, None)
        states: dict[tuple[str, str], Any] = {("department", str(d.id)): d
                                              for d in index.source.values()}
        states[("department", key)] = desired
        return self._result(EntityResult(Kind.DEPARTMENT, key, tuple(outcomes), read_from,
                                         states))

    async def _desired_department(self, dept_id: int, hints: list[Any]
                                  ) -> tuple[WeComDepartment | None, str]:
        if not self.cooldown.active:
            try:
                return WeComDepartment.from_api(await self.wecom.department_get(dept_id)), "api"
            except NotFoundError:
                return None, "api"
            except RestrictedError as exc:
                self.cooldown.trip(exc)
        self._on_event_fields("department")
        if not hints:
            raise RestrictedError("WeCom refuses reads and no event carries the department's "
                                  "fields; will retry after the cool-down")
        state: WeComDepartment | None = None
        for hint in hints:
            if hint.change_type == "delete_party":
                state = None
            else:
                state = _merge(state, WeComDepartment.from_event(hint))
        return state, "event"

    # -- the department index -------------------------------------------------------------

    async def _index(self, needs: tuple[set[int], dict[int, str]]) -> DepartmentIndex:
        """Authing ids for the WeCom departments an operation names, and WeCom's own
        record of any that Authing lacks (with their missing ancestors), so the planner can
        create them parent-first."""
        wanted, known = needs
        ids = {**{d: self._dept_ids[d] for d in wanted if d in self._dept_ids}, **known,
               self.policy.root_wecom_id: self.policy.root_department_id}
        source: dict[int, WeComDepartment] = {}
        pending = [d for d in wanted if d not in ids]
        while pending:
            dept_id = pending.pop()
            if dept_id in ids or dept_id in source:
                continue
            dto = await self._department_dto(str(dept_id))
            if dto and dto.get("departmentId"):
                ids[dept_id] = str(dto["departmentId"])
                continue
            try:
                dept = WeComDepartment.from_api(await self.wecom.department_get(dept_id))
            except (NotFoundError, RestrictedError):
                continue  # stays unresolved: the executor reports which department is missing
            source[dept_id] = dept
            if dept.parent_id and dept.parent_id not in ids:
                pending.append(dept.parent_id)
        return DepartmentIndex(authing_ids=ids, source=source)

    REKEYED_TTL = 60.0  # seconds a miss may trust the last scan of the organization

    async def _department_dto(self, open_id: str) -> dict[str, Any] | None:
        """Our Authing department for WeCom id ``open_id``: by openDepartmentId, else one
        re-keyed from a synthetic key (its ``wechatwork_department_id``), which only a scan
        of the organization finds. A scan serves misses for ``REKEYED_TTL`` seconds; the
        reconciler calls ``forget_rekeyed`` after it re-keys."""
        dto = await self.authing.get_department(open_department_id=open_id)
        if dto or not open_id.isdigit():
            return dto
        now = time.monotonic()
        if self._rekeyed_at is None or now - self._rekeyed_at > self.REKEYED_TTL:
            scanned: dict[str, dict[str, Any]] = {}
            for row in await self.authing.get_all_departments():
                wecom_id = department_id_of(row.get("openDepartmentId"))
                linked = str((row.get("customData") or {}).get(DEPARTMENT_ID_FIELD) or "")
                if wecom_id is not None and is_synthetic(wecom_id) and linked.isdigit():
                    scanned.setdefault(linked, row)
            self._rekeyed, self._rekeyed_at = scanned, now
        return self._rekeyed.get(open_id)

    def forget_rekeyed(self) -> None:
        self._rekeyed_at = None


def _create_failed(outcomes: Sequence[Outcome], error: type[Exception]) -> bool:
    """Whether a user create failed with ``error``. Any PermanentError after a create made
    without reading first means the user may exist after all (the message need not say so
    in a way we recognise): the caller reads Authing and plans again."""
    return any(o.status is ItemStatus.FAILED and o.op.kind is Kind.USER
               and o.op.action is Action.CREATE and isinstance(o.error, error)
               and not isinstance(o.error, UnfitError)  # created; a value did not fit
               for o in outcomes)


def _seed_ids(index: DepartmentIndex) -> dict[str, str]:
    return {str(w): a for w, a in index.authing_ids.items()}


def _merge(old: Any, new: Any) -> Any:
    """Fields the newer record knows win; fields it does not know keep their old value."""
    if old is None:
        return new
    return replace(old, **{f.name: getattr(new, f.name) for f in fields(new)
                           if getattr(new, f.name) is not None})


def _fold_users(hints: list[Any]) -> WeComUser | None:
    state: WeComUser | None = None
    for hint in hints:
        if hint.change_type == "delete_user":
            state = None
        else:
            state = _merge(state, WeComUser.from_event(hint))
    return state

