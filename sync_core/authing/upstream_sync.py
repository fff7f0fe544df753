"""Entity sync of the upstream direction: the engine's ``EntitySync`` plus WeCom userid
renames, which only this direction knows (reference/wecom-platform.md §2.2, NewUserID).

A rename may arrive late, out of order or not at all. Before a user is taken for new or for
gone, the rename ledger (every rename callback stored in the inbox) and the evidence in
Authing (an account of ours whose userid left WeCom and that holds the same email or
mobile) are asked; an account that only has the same name is held suspended until the
rename callback or a reconcile decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sync_core.authing.identity import DepartmentIndex, is_managed_user
from sync_core.authing.mapping import map_user
from sync_core.authing.model import AuthingUser
from sync_core.authing.planner import plan_duplicate_removal, plan_user_hold
from sync_core.authing.target import AuthingTarget
from sync_core.directory.operations import Action, Operation
from sync_core.directory.vocabulary import Kind
from sync_core.engine.entity_sync import (
    EntityResult,
    EntitySync,
    Essences,
    UserRead,
    create_failed,
)
from sync_core.engine.executor import ItemStatus, Outcome
from sync_core.engine.ports import Ports, ReadFrom
from sync_core.errors import ConflictError, NotFoundError, SyncError
from sync_core.store.renames import RenameLedger
from sync_core.wecom.model import WeComUser
from sync_core.wecom.source import WeComSource


class UpstreamSync(EntitySync):
    def __init__(self, ports: Ports, *, renames: RenameLedger | None = None) -> None:
        super().__init__(ports)
        assert isinstance(ports.source, WeComSource) and isinstance(ports.target,
                                                                    AuthingTarget)
        self.wecom, self.authing = ports.source, ports.target
        self.renames = renames

    async def _sync_read_user(self, read: UserRead, current: str,
                              essences: Essences) -> EntityResult:
        desired, actual, read_from, done = read.desired, read.actual, read.read_from, read.done
        created = read.announced
        if desired is None and read_from is ReadFrom.API:
            # Gone under this userid, or renamed on by a callback we hold (maybe not applied).
            moved = await self._renamed_on(current)
            if moved is not None:
                desired, current = moved, moved.userid
                actual = actual or await self._actual([current])
        suspects: tuple[AuthingUser, ...] = ()
        if desired is not None and actual is None and not created:
            # An update for a userid without an account: a renamed member, before a new one.
            actual, suspects = await self._moved_account(desired, current, weak=True)
        if desired is not None and actual is not None and actual.external_id != current:
            desired = replace(desired, renamed_from=actual.external_id)
            removal = await self._remove_duplicate(current, actual)
            if any(o.op.action is Action.SKIP for o in removal):
                # An account we do not own holds the new userid: the move cannot be made,
                # and the old identity must not stay active meanwhile.
                hold = plan_user_hold(actual, self.binding, DepartmentIndex(),
                                      str(removal[0].op.reason))
                outcomes = done + removal + await self._executor.apply([hold])
                essences[(Kind.USER, current)] = self._essence(Kind.USER, desired, actual)
                return self._result(EntityResult(Kind.USER, current, tuple(outcomes),
                                                 read_from, essences))
            done += removal
        if suspects:
            assert desired is not None  # suspects are only looked for a known member
            return self._result(await self._hold_suspects(desired, current, suspects, done,
                                                          read_from, essences))
        outcomes = done + await self._plan_user(desired, actual, current, essences)
        if actual is None and desired is not None and create_failed(outcomes, ConflictError):
            # Only a create that collides pays for the search. An account of ours whose
            # userid left WeCom and that holds the same email or mobile is this member,
            # renamed; an unmanaged one is handed to the planner, which refuses to take it
            # over unless adopt_existing.
            moved_from, _ = await self._moved_account(desired, current, weak=False)
            found = moved_from or await self.target.colliding_user(desired, self.binding)
            if found is not None:
                if moved_from is not None:
                    desired = replace(desired, renamed_from=moved_from.external_id)
                done = [o for o in outcomes if o.status is ItemStatus.APPLIED]
                outcomes = done + await self._plan_user(desired, found, current, essences)
        return self._result(EntityResult(Kind.USER, current, tuple(outcomes), read_from,
                                         essences))

    async def _actual(self, keys: Sequence[str]) -> AuthingUser | None:
        user: AuthingUser | None = await self.target.user(keys, self.binding)
        return user

    # -- identity moves (userid renames) ------------------------------------------------

    async def _renamed_on(self, userid: str) -> WeComUser | None:
        """WeCom's record of the member that left ``userid`` by renames we have callbacks
        for (reference §2.2, NewUserID), following a chain; None when there is none."""
        if self.renames is None:
            return None
        for later in await self.renames.forward(userid):
            try:
                return WeComUser.from_api(await self.wecom.client.user_get(later))
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
            found = await self._actual([older])
            if found is not None:
                return found, ()
        want = map_user(desired, self.binding.mapping)
        probes = [(f, str(want.get(f))) for f in ("email", "phone") if want.get(f)]
        for unique, value in probes:
            for dto in await self.authing.client.find_users(unique, value):
                if await self._left_wecom(dto, current):
                    return await self.authing.with_memberships(dto), ()
        if not weak or probes or not desired.name:
            return None, ()
        suspects = [await self.authing.with_memberships(dto)
                    for dto in await self.authing.client.find_users("name", desired.name)
                    if await self._left_wecom(dto, current)]
        return None, tuple(suspects)

    async def _left_wecom(self, dto: dict[str, Any], current: str) -> bool:
        """An account of ours whose userid WeCom confirms gone (60111)."""
        external_id = dto.get("externalId")
        if not external_id or external_id == current:
            return False
        if not is_managed_user(AuthingUser.from_dto(dto), self.binding, DepartmentIndex()):
            return False
        try:
            await self.wecom.client.user_get(str(external_id))
        except NotFoundError:
            return True
        except SyncError:
            return False  # refused or failing: not known to be gone
        return False

    async def _remove_duplicate(self, current: str, original: AuthingUser) -> list[Outcome]:
        """An account created under the new userid before its rename was known."""
        duplicate = await self._actual([current])
        if duplicate is None or duplicate.user_id == original.user_id:
            return []
        op = plan_duplicate_removal(duplicate, original, self.binding, DepartmentIndex())
        return await self._executor.apply([op])

    async def _hold_suspects(self, desired: WeComUser, current: str,
                             suspects: tuple[AuthingUser, ...], done: list[Outcome],
                             read_from: ReadFrom, essences: Essences) -> EntityResult:
        """No proof, only a suspicion (same name, old userid gone): create nothing, keep
        the old accounts suspended, and wait for the rename callback (WeCom retries it) or
        a reconcile."""
        olds = ", ".join(sorted(str(a.external_id) for a in suspects))
        reason = (f"possible rename: WeCom userid(s) {olds} left WeCom and {current} has the "
                  f"same name; waiting for the rename callback or a reconcile")
        holds = [plan_user_hold(a, self.binding, DepartmentIndex(), reason) for a in suspects]
        outcomes = done + await self._executor.apply(holds)
        waiting = Operation(Kind.USER, current, Action.SKIP, reason=reason)
        # Counted against the attempt limit, as a conflict a re-plan may resolve: when the
        # rename callback never comes, the event goes dead with this reason.
        outcomes.append(Outcome(waiting, ItemStatus.FAILED, ConflictError(reason)))
        for a in suspects:
            essences.setdefault((Kind.USER, str(a.external_id)), lambda: None)
        return EntityResult(Kind.USER, current, tuple(outcomes), read_from, essences)
