"""WeCom as the target of a direction (the downstream ``TargetReader`` and ``TargetWriter``).

Writes go through the contact-sync secret (reference/wecom-platform.md §3.2, §3.3):
``user/create|update|delete``, ``department/create|update|delete``; the ids WeCom gives are
written back to Authing (``authing/update-*`` requests). WeCom holds no Authing key, so the
WeCom id of an Authing entity comes from the link table (what either direction recorded),
else from Authing's own record (``externalId``, ``openDepartmentId``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from sync_core.authing.client import AuthingClient
from sync_core.authing.events import write_back_changes
from sync_core.authing.mapping import DEPARTMENT_ID_FIELD, PARENT_DEPARTMENT_FIELD, USER_ID_FIELD
from sync_core.authing.model import AuthingDepartment, AuthingUser
from sync_core.binding import Binding
from sync_core.directory.essence import digest
from sync_core.directory.operations import Operation, Request
from sync_core.directory.vocabulary import Direction, Kind
from sync_core.engine.echo import Claimed, record_intents, unchanged_since_claim
from sync_core.engine.ports import Hints, TargetSnapshot
from sync_core.errors import (
    BadRequestError,
    ChangedMeanwhile,
    ConflictError,
    NotFoundError,
    PermanentError,
    RestrictedError,
    SyncError,
    TransientError,
)
from sync_core.store import inbox, links, queue
from sync_core.store.db import autocommit, describe
from sync_core.store.inbox import NewEvent
from sync_core.store.links import LinkRow
from sync_core.store.models import EventSource, utcnow
from sync_core.wecom import rules
from sync_core.wecom.client import WeComClient
from sync_core.wecom.downstream import (
    PARENT_KEY,
    SOURCE_KEY,
    WRITE_BACK_DEPARTMENT,
    WRITE_BACK_USER,
    department_essence,
    userid_taken,
    wecom_department_id,
    wecom_userid,
)
from sync_core.wecom.model import WeComDepartment, WeComUser
from sync_core.wecom.snapshot import read_wecom

# A uniqueness errcode → the field it is about (reference §3.4).
UNIQUE_FIELDS = {60102: "userid", 60104: "mobile", 60106: "email", 60008: "department"}
log = logging.getLogger(__name__)
UPSTREAM_SOURCES = (EventSource.WECOM.value, EventSource.OPS.value)
TAKEN_DEPARTMENT = 60008  # the id or the name exists (reference §3.4, §3.6)
NOT_EMPTY = frozenset({60005, 60006})  # department/delete: members, child departments


@dataclass(frozen=True, slots=True)
class MemberLinks:
    """What the link table says about one Authing user, read on one connection:
    ``written``, downstream's last write for it; ``userid``, the WeCom member it is linked
    to (None: first sight); ``busy``, whether upstream holds an open event about that
    member; ``holder``, the Authing user either direction linked to that userid."""

    written: LinkRow | None
    userid: str | None
    busy: bool = False
    holder: str | None = None


class LinkIds:
    """The WeCom id of an Authing entity, from the link table: what downstream wrote (by
    source key), else what upstream wrote (the Authing id is its target id)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = autocommit(engine)  # lookups: no transaction to begin and end

    def _lookup(self, kind: Kind, key: str) -> str | None:
        with self._reads.connect() as conn:
            return _linked_id(conn, kind, key)

    async def wecom_id(self, kind: Kind, key: str) -> str | None:
        return await asyncio.to_thread(self._lookup, kind, key)

    def _authing_id(self, kind: Kind, wecom_id: str) -> str | None:
        with self._reads.connect() as conn:
            row = links.by_target(conn, direction=Direction.DOWNSTREAM, kind=kind,
                                  target_id=wecom_id)
            return row.source_key if row is not None else None

    async def authing_id(self, kind: Kind, wecom_id: str) -> str | None:
        """The Authing entity downstream linked to WeCom id ``wecom_id``, if any."""
        return await asyncio.to_thread(self._authing_id, kind, wecom_id)

    def _written(self, kind: Kind, key: str) -> LinkRow | None:
        with self._reads.connect() as conn:
            return links.by_source(conn, direction=Direction.DOWNSTREAM, kind=kind, key=key)

    async def written(self, kind: Kind, key: str) -> LinkRow | None:
        """What downstream last wrote for Authing entity ``key`` (link table), if anything."""
        return await asyncio.to_thread(self._written, kind, key)

    def _member(self, key: str) -> MemberLinks:
        with self._reads.connect() as conn:
            written = links.by_source(conn, direction=Direction.DOWNSTREAM, kind=Kind.USER,
                                      key=key)
            userid = written.target_id if written is not None else None
            if userid is None:
                userid = _upstream_id(conn, Kind.USER, key)
            if userid is None:
                return MemberLinks(written, None)
            return MemberLinks(written, userid, _upstream_open(conn, Kind.USER, userid),
                               _holder(conn, Kind.USER, userid))

    async def member(self, key: str) -> MemberLinks:
        """Everything the user read needs from the link table about Authing user ``key``,
        in one connection and one thread hop (the user read's fixed cost: a checkout and
        its ping, per lookup, was most of it)."""
        return await asyncio.to_thread(self._member, key)

    def _linked(self, kind: Kind, wecom_id: str) -> str | None:
        with self._reads.connect() as conn:
            return _holder(conn, kind, wecom_id)

    async def linked(self, kind: Kind, wecom_id: str) -> str | None:
        """The Authing entity either direction linked to WeCom id ``wecom_id``."""
        return await asyncio.to_thread(self._linked, kind, wecom_id)

    def _record(self, row: LinkRow) -> None:
        with self.engine.begin() as conn:
            links.record(conn, direction=Direction.DOWNSTREAM, rows=[row], now=utcnow())

    async def record(self, row: LinkRow) -> None:
        """Record a write at once rather than when its entity settles: WeCom may call a
        created department back (to another app, or upstream's own) before then, and
        the echo check and upstream's id lookup must find it."""
        await asyncio.to_thread(self._record, row)

    def _intend(self, rows: Sequence[LinkRow], claim: Claimed | None) -> bool:
        """False, recording nothing, when ``claim`` no longer holds (``intend``)."""
        with self.engine.begin() as conn:
            if claim is not None and (
                    any(_upstream_open(conn, Kind(row.kind), row.target_id)
                        for row in rows if row.target_id)
                    or not unchanged_since_claim(conn, Direction.DOWNSTREAM, claim)):
                return False
            # A delete's row (no digest) is held, not recorded: it leaves no state.
            record_intents(conn, Direction.DOWNSTREAM,
                           [row for row in rows if row.essence_hash is not None], utcnow())
            return True

    async def intend(self, rows: Sequence[LinkRow], claim: Claimed | None = None) -> None:
        """Record, before the writes, the state they will leave (``engine.echo``): WeCom
        may call a write back to upstream before its entity settles, and upstream's echo
        check must know it for ours. Not recorded: not written (TransientError), since a
        callback it then missed would be written back to Authing.

        With ``claim`` (a write of the entity the worker claimed), the writes wait too
        (TransientError, retried after a second) while upstream holds an open event about
        the WeCom entity, or once upstream has written the Authing entity since the claim:
        what was read from Authing may be upstream's write half done, and the next claim
        reads upstream's write for its echo check (the conflict rule, README)."""
        try:
            recorded = await asyncio.to_thread(self._intend, rows, claim)
        except SQLAlchemyError as exc:
            raise TransientError(f"the write intent could not be recorded: {describe(exc)}",
                                 remote="database", maybe_applied=False) from exc
        if not recorded and claim is not None:
            raise ChangedMeanwhile(
                f"Authing {claim.kind} {claim.key} was written by upstream since it was "
                "read, or upstream holds a change of it: read again after upstream",
                remote="wecom")

    def managed(self) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
        """For every entity the downstream direction wrote and did not delete: (kind,
        WeCom id) → the digest of the last write, and (kind, Authing id) → its WeCom id."""
        digests: dict[tuple[str, str], str] = {}
        ids: dict[tuple[str, str], str] = {}
        with self._reads.connect() as conn:
            for row in links.written(conn, direction=Direction.DOWNSTREAM):
                if row.target_id and row.essence_hash:
                    digests[(row.kind, row.target_id)] = row.essence_hash
                    ids[(row.kind, row.source_key)] = row.target_id
        return digests, ids

    def _busy(self, kind: Kind, wecom_id: str) -> bool:
        with self._reads.connect() as conn:
            return _upstream_open(conn, kind, wecom_id)

    async def check_settled(self, kind: Kind, wecom_id: str) -> None:
        """Raises TransientError while the upstream direction holds an open event about
        the same WeCom entity: its writes to Authing may be half done, and a half-written
        Authing record must not be pushed back to WeCom. Upstream goes first; this entity
        is retried after it (the conflict rule, README)."""
        if await asyncio.to_thread(self._busy, kind, wecom_id):
            raise upstream_busy(kind, wecom_id)

    def _upstream(self, kind: Kind, wecom_id: str) -> LinkRow | None:
        with self._reads.connect() as conn:
            return links.by_source(conn, direction=Direction.UPSTREAM, kind=kind, key=wecom_id)

    async def upstream_record(self, kind: Kind, wecom_id: str) -> LinkRow | None:
        """What upstream recorded for the WeCom entity ``wecom_id`` (it synced it from
        WeCom), if anything."""
        return await asyncio.to_thread(self._upstream, kind, wecom_id)

    def _hint(self, kind: Kind, wecom_id: str) -> None:
        payload: dict[str, Any] = ({"kind": "user", "change_type": "sync", "user_id": wecom_id}
                                   if kind is Kind.USER else
                                   {"kind": "department", "change_type": "sync",
                                    "id": int(wecom_id)})
        # The events applied here count too: an operator's sync-now (or this hint) has
        # just run upstream on this entity, and a hint from its downstream step would
        # queue it again, for ever.
        token = queue.HELD.set(())
        try:
            with self.engine.begin() as conn:
                if queue.has_open(conn, sources=UPSTREAM_SOURCES, kind=kind, key=wecom_id):
                    return
                inbox.insert_new(conn, [NewEvent(
                    source=EventSource.OPS.value, dedupe_key=uuid.uuid4().hex,
                    entity_kind=str(kind), entity_key=wecom_id, event_type="sync",
                    payload=payload, received_at=utcnow())])
        finally:
            queue.HELD.reset(token)

    async def hint_upstream(self, kind: Kind, wecom_id: str) -> None:
        """Queue a sync of WeCom entity ``wecom_id`` (as an operator's sync-now does),
        unless an upstream event about it is open already: upstream re-reads it and
        applies what WeCom shows (a deletion: the delete policy)."""
        await asyncio.to_thread(self._hint, kind, wecom_id)


def upstream_busy(kind: Kind, wecom_id: str) -> TransientError:
    return TransientError(f"WeCom {kind} {wecom_id} has unapplied upstream changes: "
                          "retried after them", retry_after=1.0, maybe_applied=False)


def _linked_id(conn: Connection, kind: Kind, key: str) -> str | None:
    row = links.by_source(conn, direction=Direction.DOWNSTREAM, kind=kind, key=key)
    if row is not None and row.target_id:
        return row.target_id
    return _upstream_id(conn, kind, key)


def _upstream_id(conn: Connection, kind: Kind, key: str) -> str | None:
    """The WeCom id upstream wrote Authing entity ``key`` from (its target id)."""
    row = links.by_target(conn, direction=Direction.UPSTREAM, kind=kind, target_id=key)
    return row.source_key if row is not None else None


def _holder(conn: Connection, kind: Kind, wecom_id: str) -> str | None:
    row = links.by_target(conn, direction=Direction.DOWNSTREAM, kind=kind, target_id=wecom_id)
    if row is not None:
        return row.source_key
    row = links.by_source(conn, direction=Direction.UPSTREAM, kind=kind, key=wecom_id)
    return row.target_id if row is not None else None


def _upstream_open(conn: Connection, kind: Kind, wecom_id: str) -> bool:
    return queue.has_open(conn, sources=UPSTREAM_SOURCES, kind=kind, key=wecom_id)


class WeComTarget:
    def __init__(self, client: WeComClient, authing: AuthingClient, ids: LinkIds, *,
                 userid_source: str = "username", concurrency: int = 8,
                 upstream_runs: bool = False) -> None:
        """``upstream_runs``: the upstream direction runs too (``both``)."""
        self.client = client
        self.upstream_runs = upstream_runs
        self.authing = authing
        self.ids = ids
        self.userid_source = userid_source
        self.concurrency = concurrency

    async def bootstrap(self, binding: Binding) -> Binding:
        """The Authing organization's root stands for WeCom's root department. The
        extension fields the write-backs set are defined first (idempotent, as the
        upstream bootstrap does): without them Authing refuses every write-back after
        WeCom has taken the write. Raises the SyncError that refused the definition."""
        try:
            defined = await self.authing.ensure_custom_fields()
        except TransientError:
            raise  # an outage: ridden out
        except SyncError as exc:
            raise PermanentError(
                f"cannot define the Authing custom fields the write-backs need (see "
                f"`wecom-sync setup-authing`); nothing was written: {exc}",
                remote="authing", endpoint="set-custom-fields") from exc
        if defined:
            log.info("defined Authing custom fields: %s", ", ".join(defined))
        org = await self.authing.get_organization()
        root = (org or {}).get("departmentId")
        if root:
            return replace(binding, root_department_id=str(root))
        return binding

    async def user(self, keys: Sequence[str], binding: Binding) -> WeComUser | None:
        """The member linked to Authing user ``keys[0]``: by the link table, else (first
        sight) by the userid Authing already holds for it (externalId or
        wechatwork_user_id), so that a member created by the upstream direction, or one
        that existed before, is found rather than created twice."""
        for key in dict.fromkeys(keys):
            found = await self.ids.member(key)
            written = found.written.essence_hash if found.written is not None else None
            userid = found.userid
            if userid is not None:
                if found.busy:
                    raise upstream_busy(Kind.USER, userid)
            else:
                dto = await self.authing.get_user(user_id=key)
                held = AuthingUser.from_dto(dto) if dto else None
                userid = (held.external_id or held.custom().get(USER_ID_FIELD)
                          if held is not None else None)
                if userid is None:
                    continue
                await self.ids.check_settled(Kind.USER, userid)
            member = await self._claimed(userid, keys[0], written, found)
            if member is None and await self._removed_in_wecom(Kind.USER, userid):
                return WeComUser(userid=userid, removed=True)
            return member
        return None

    async def _removed_in_wecom(self, kind: Kind, wecom_id: str) -> bool:
        """In ``both``, an entity upstream synced from WeCom (its link row) that WeCom no
        longer holds is a WeCom deletion upstream has not applied yet: downstream does not
        re-create it (the conflict rule, README), and upstream is handed a hint, so that it
        applies the deletion even when WeCom's callback is late or lost."""
        if not self.upstream_runs or await self.ids.upstream_record(kind, wecom_id) is None:
            return False
        await self.ids.hint_upstream(kind, wecom_id)
        return True

    async def _claimed(self, userid: str, key: str, written: str | None,
                       found: MemberLinks | None = None) -> WeComUser | None:
        """The member with ``userid`` (up to case), when no other Authing user holds it;
        ``written``: the digest of our last write to it. Where WeCom refuses reads (48009,
        60020) and we wrote the member, it is planned against that record alone (every
        field unknown): the change is written when the digest says it differs. A member
        upstream synced (and downstream never wrote) has upstream's record instead: a
        digest of the Authing state upstream wrote, never one of downstream's, so every
        field Authing holds is written once; downstream's own record stands after that.
        ``found``: the link table's holder of ``userid`` when already read with the link."""
        try:
            member = await self._user(userid)
        except RestrictedError:
            if written is None:
                upstream = await self.ids.upstream_record(Kind.USER, userid)
                if upstream is None or upstream.essence_hash is None:
                    raise
                written = upstream.essence_hash
            return WeComUser(userid=userid, last_written=written)
        if member is None:
            return None
        holder = found.holder if found is not None and found.userid == member.userid \
            else await self.ids.linked(Kind.USER, member.userid)
        if holder is not None and holder != key and await self._holds(holder, member.userid):
            raise ConflictError(userid_taken(userid, member.userid, holder), code=60102,
                                remote="wecom", endpoint="user/get")
        return replace(member, last_written=written) if written else member

    async def _holds(self, holder: str, userid: str) -> bool:
        """Whether Authing user ``holder``, linked to member ``userid``, still maps to it:
        one deleted since, or whose userid changed, has let it go (a new Authing user with
        the same externalId then takes the member over)."""
        dto = await self.authing.get_user(user_id=holder)
        mapped = wecom_userid(AuthingUser.from_dto(dto), self.userid_source) if dto else None
        return mapped is not None and mapped.lower() == userid.lower()

    async def _user(self, userid: str) -> WeComUser | None:
        try:
            return WeComUser.from_api(await self.client.user_get(userid))
        except NotFoundError:
            return None

    async def colliding_user(self, desired: AuthingUser, binding: Binding) -> WeComUser | None:
        """The WeCom member that already holds the userid the Authing user maps to: that
        userid is the identity link, so the member is this user's, unless another
        Authing user is linked to it (userids ignore case)."""
        userid = wecom_userid(desired, self.userid_source)
        return await self._claimed(userid, desired.user_id, None) if userid else None

    async def department(self, key: str, binding: Binding) -> WeComDepartment | None:
        dept_id = await self.department_id(key, binding)
        if dept_id is None:
            return None
        await self.ids.check_settled(Kind.DEPARTMENT, dept_id)
        try:
            return WeComDepartment.from_api(await self.client.department_get(int(dept_id)))
        except NotFoundError:
            if await self._removed_in_wecom(Kind.DEPARTMENT, dept_id):
                return WeComDepartment(int(dept_id), removed=True)
            return None

    async def department_id(self, key: str, binding: Binding) -> str | None:
        if key == binding.root_department_id:
            return str(binding.root_wecom_id)
        linked = await self.ids.wecom_id(Kind.DEPARTMENT, key)
        if linked is not None:
            return linked
        dto = await self.authing.get_department(department_id=key)
        return wecom_department_id(AuthingDepartment.from_dto(dto)) if dto else None

    def forget(self) -> None:
        """Nothing to drop after a run: every read here goes to WeCom or the link table."""

    async def source_key(self, kind: Kind, wecom_id: str) -> str | None:
        """The Authing id of the entity WeCom knows as ``wecom_id`` (an operator's
        sync-now names WeCom's key): the link table, else the Authing record that holds
        it (a user's externalId, then the configured userid rule when it is the username;
        a department's openDepartmentId), else None."""
        linked = await self.ids.linked(kind, wecom_id)
        if linked is not None:
            return linked
        if kind is Kind.DEPARTMENT:
            dto = await self.authing.get_department(open_department_id=wecom_id)
            return AuthingDepartment.from_dto(dto).department_id if dto else None
        dto = await self.authing.get_user(external_id=wecom_id)
        if dto is None and self.userid_source == "username":
            dto = await self.authing.get_user(username=wecom_id)
            # Someone else's userid already: that account is not this member's.
            if dto is not None and AuthingUser.from_dto(dto).external_id not in (None, wecom_id):
                dto = None
        return AuthingUser.from_dto(dto).user_id if dto else None

    async def write_back_echo(self, kind: Kind, key: str, hints: Hints) -> bool:
        """Authing's webhooks about the ids this direction wrote back (externalId and
        wechatwork_user_id of a member; a department's wechatwork_department_id and its
        parent's) carry the value written: equal to the WeCom id linked to ``key``, they
        are our write coming back and WeCom is not concerned. The parent's id is never
        read downstream (the tree is), so its change alone is never one to apply."""
        changes = write_back_changes(kind, hints.events)
        if changes is None:
            return False
        linked = await self.ids.wecom_id(kind, key)
        return linked is not None and all(
            field == PARENT_DEPARTMENT_FIELD or str(value) == linked
            for field, value in changes)

    async def snapshot(self, binding: Binding) -> TargetSnapshot:
        """The whole WeCom directory. Where WeCom refuses detail reads (48009, 60020), the
        structure comes from ``department/simplelist`` and ``user/list_id``; attributes it
        did not give stay unknown, so they are not compared (the run's notes say which
        reads were used). ``managed``: what the link table says downstream wrote."""
        snap = await read_wecom(self.client, concurrency=self.concurrency)
        if snap.problems:
            raise TransientError("WeCom read incomplete: " + "; ".join(snap.problems[:3]),
                                 remote="wecom", maybe_applied=False)
        notes = snap.notes or ("WeCom read through department/list and user/list",)
        written, linked = await asyncio.to_thread(self.ids.managed)
        users = tuple(_with_last_written(u, written) for u in snap.users)
        managed = frozenset(written)
        # The organization root stays the binding's (an Authing id): no root id here.
        return TargetSnapshot(users, snap.departments, None,
                              tuple(f"WeCom (the actual side): {n}" for n in notes), managed,
                              linked)


class WeComWriter:
    """Carries out WeCom requests (and the write-backs to Authing). Department ids travel
    as text in the engine and as integers to WeCom."""

    remote = "wecom"
    batch_limit = 1  # WeCom has no batch create for members

    def __init__(self, client: WeComClient, authing: AuthingClient, target: WeComTarget,
                 binding: Binding, *, concurrency: int = 8) -> None:
        self.client = client
        self.authing = authing
        self.target = target
        self.binding = binding
        self.concurrency = concurrency
        # Authing department id → held while this process creates it in WeCom.
        self._creating: dict[str, asyncio.Lock] = {}

    def batchable(self, op: Operation) -> bool:
        return False

    def intended_target(self, op: Operation) -> str | None:
        """The WeCom id ``op`` writes to: its target, or the userid a member's create
        names; None for a department create (WeCom numbers it: recorded once made), and
        None when upstream does not run here, since no echo check would read the intent."""
        if not self.target.upstream_runs:
            return None
        if op.target is not None:
            return op.target
        for request in op.requests:
            if request.endpoint == "user/create" and request.body.get("userid"):
                return str(request.body["userid"])
        return None

    async def intend(self, rows: Sequence[LinkRow], claim: Claimed | None = None) -> None:
        await self.target.ids.intend(rows, claim)

    async def create_batch(self, ops: Sequence[Operation]) -> list[tuple[int, str | None]]:
        return [(0, None)] * len(ops)

    async def write(self, request: Request, ids: MutableMapping[str, str],
                    made: MutableMapping[str, str]) -> None:
        body = dict(request.body)
        endpoint = request.endpoint
        source = body.get(SOURCE_KEY)
        if endpoint in ("department/create", "department/update") \
                and body.get("parentid") is not None:
            await self._check_level(body)
        try:
            if endpoint == "department/create":
                async with self._creating_once(str(source)) as made_by_another:
                    if made_by_another is None:
                        await self._write(endpoint, body, ids, made)
                    else:  # the op's target all the same: its link row is recorded
                        ids[str(source)] = made[str(source)] = made_by_another
            else:
                await self._write(endpoint, body, ids, made)
        except ConflictError as exc:
            if exc.code == TAKEN_DEPARTMENT and endpoint == "department/create":
                raise await self._taken_department(exc, body, source) from exc
            raise _named(exc, body) from exc

    @contextlib.asynccontextmanager
    async def _creating_once(self, source: str) -> AsyncIterator[str | None]:
        """One create of Authing department ``source`` at a time: its own event and a
        member's event may both need it at once. The second waits for the first and, when
        the link table then holds the department, gets its WeCom id instead of creating it
        again (which WeCom would refuse with 60008, read as a foreign department of that
        name); None: create it."""
        lock = self._creating.setdefault(source, asyncio.Lock())
        waited = lock.locked()
        async with lock:
            yield await self.target.ids.wecom_id(Kind.DEPARTMENT, source) if waited else None

    async def _check_level(self, body: Mapping[str, Any]) -> None:
        """WeCom allows 15 levels, the root being level 1 (reference §3.2): a create or
        move past that is refused here, before the write (one department/simplelist
        read), as a permanent error naming the level."""
        parents = {int(row["id"]): int(row.get("parentid") or 0)
                   for row in await self.client.department_simplelist()}
        level = 1 + _depth(int(body["parentid"]), parents)
        what = f"department {body.get('name')!r}"
        if "id" in body:  # a move: the deepest department under the moved one counts
            level += _height(int(body["id"]), parents) - 1
            what = f"moving WeCom department {body['id']} puts its deepest department"
        if level > rules.MAX_DEPARTMENT_LEVELS:
            raise BadRequestError(
                f"{what} would be at level {level} in WeCom, which allows "
                f"{rules.MAX_DEPARTMENT_LEVELS} levels", remote="wecom",
                endpoint="department/create" if "id" not in body else "department/update")

    async def _taken_department(self, exc: ConflictError, body: Mapping[str, Any],
                                source: Any) -> SyncError:
        """60008 on create: the id or the name is taken (reference §3.6). The message names
        the name, the parent and the WeCom department that holds the name, where the
        parent's children can be listed (README). When the link table now holds this
        department (another event created it a moment ago) it is a conflict, re-planned;
        otherwise permanent (not retried: §3.6)."""
        name, parent = body.get("name"), body.get("parentid")
        holder = ""
        with contextlib.suppress(SyncError, TypeError, ValueError):
            for row in await self.client.department_list(int(str(parent))):
                if row.get("name") == name and str(row.get("parentid")) == str(parent):
                    holder = f" (WeCom department {row.get('id')} holds it)"
        text = (f"WeCom already has a department named {name!r} under department {parent}"
                f"{holder}")
        if source is not None and await self.target.ids.wecom_id(
                Kind.DEPARTMENT, str(source)) is not None:
            return ConflictError(f"{text}, linked to this department since: {exc.message}",
                                 code=exc.code, remote="wecom", endpoint="department/create")
        return PermanentError(
            f"{text}: WeCom refuses a second one (60008); rename one of them: "
            f"{exc.message}", code=exc.code, remote="wecom", endpoint="department/create")

    async def _write(self, endpoint: str, body: dict[str, Any], ids: MutableMapping[str, str],
                     made: MutableMapping[str, str]) -> None:
        if endpoint == "department/create":
            source = str(body.pop(SOURCE_KEY))
            ids[source] = made[source] = str(await self.client.department_create(_ints(body)))
            essence = department_essence(ids[source], body.get("name"), body.get("parentid"))
            await self.target.ids.record(LinkRow(str(Kind.DEPARTMENT), source, ids[source],
                                                 digest(essence)))
        elif endpoint == "department/update":
            await self.client.department_update(_ints(body))
        elif endpoint == "department/delete":
            try:
                await self.client.department_delete(int(body["id"]))
            except NotFoundError:
                return  # already gone: what the delete wanted holds
            except PermanentError as exc:
                if exc.code not in NOT_EMPTY:
                    raise
                # Deleted once empty: its members and children go first (their own events,
                # or earlier phases of the same run). A conflict, not an outage: the event
                # is retried within its attempts; a run reports it and goes on, rather than
                # waiting its outage window for members it does not manage.
                raise ConflictError(f"WeCom department {body['id']} is not empty yet: "
                                    f"{exc.message}", code=exc.code, remote="wecom",
                                    endpoint="department/delete") from exc
        elif endpoint == "user/create":
            source = str(body.pop(SOURCE_KEY))
            await self.client.user_create(_ints(body))
            made[source] = str(body["userid"])
        elif endpoint == "user/update":
            await self.client.user_update(_ints(body))
        elif endpoint == "user/delete":
            with contextlib.suppress(NotFoundError):  # 60111: already gone (reference §3.6)
                await self.client.user_delete(str(body["userid"]))
        elif endpoint == WRITE_BACK_USER:
            await self.authing.send_planned("update-user", body)
        elif endpoint == WRITE_BACK_DEPARTMENT:
            # update-department has no openDepartmentId (reference/authing-api.md §2.5):
            # the id goes to customData, which the resolver reads as well.
            # The parent's id too, as the upstream mapping writes it: a WeCom callback
            # about this department then finds nothing to change in Authing.
            source = str(body.pop(SOURCE_KEY))
            wecom_id = ids.get(source) or await self.target.department_id(source, self.binding)
            if wecom_id is None:
                raise PermanentError(f"Authing department {source} has no WeCom department "
                                     "yet: its id cannot be written back", remote="wecom",
                                     endpoint=WRITE_BACK_DEPARTMENT)
            parent_id = ids.get(str(body.pop(PARENT_KEY)), str(self.binding.root_wecom_id))
            body["customData"] = {**body.get("customData", {}), DEPARTMENT_ID_FIELD: wecom_id,
                                  PARENT_DEPARTMENT_FIELD: parent_id}
            await self.authing.send_planned("update-department", body)
        else:
            raise ValueError(f"unknown WeCom request {endpoint}")

    async def look_up(self, keys: Sequence[str], ids: MutableMapping[str, str]) -> None:
        for key in keys:
            if key not in ids:
                found = await self.target.department_id(key, self.binding)
                if found is not None:
                    ids[key] = found


def _with_last_written(user: WeComUser, managed: Mapping[tuple[str, str], str]
                       ) -> WeComUser:
    """Where WeCom showed less than downstream writes, the digest of our last write goes
    with the member (``DownstreamPlanner`` compares it)."""
    if user.mobile is not None and user.email is not None and user.name is not None \
            and user.gender is not None:
        return user
    written = managed.get((Kind.USER, user.userid))
    return user if written is None else replace(user, last_written=written)


def _depth(dept_id: int, parents: Mapping[int, int]) -> int:
    """Levels from ``dept_id`` up to the root, ``dept_id`` included (the root: 1)."""
    depth, seen = 0, set()
    current: int | None = dept_id
    while current and current not in seen:
        seen.add(current)
        depth += 1
        current = parents.get(current)
    return depth


def _height(dept_id: int, parents: Mapping[int, int]) -> int:
    """Levels of ``dept_id``'s subtree, itself included (a leaf: 1)."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    height, level, seen = 0, [dept_id], {dept_id}
    while level:
        height += 1
        level = [c for d in level for c in children.get(d, ()) if c not in seen]
        seen.update(level)
    return height


def _ints(body: Mapping[str, Any]) -> dict[str, Any]:
    """Department ids as WeCom wants them: integers (a string is silently not applied)."""
    out = dict(body)
    for name in ("parentid", "id", "main_department"):
        if out.get(name) is not None:
            out[name] = int(out[name])
    if out.get("department") is not None:
        out["department"] = [int(d) for d in out["department"]]
    return out


def _named(exc: ConflictError, body: Mapping[str, Any]) -> PermanentError:
    """A uniqueness error that names the field, the value and, where WeCom says it (its
    errmsg, kept), the other holder. A taken userid stays a ConflictError (entity sync
    then reads the member that holds it); a taken department name (a create's is judged
    in ``WeComWriter._taken_department``), mobile or email is permanent until someone
    changes one of the two records."""
    code = exc.code
    field = UNIQUE_FIELDS.get(code) if isinstance(code, int) else None
    if field is None:
        return exc
    value = body.get("name" if field == "department" else field)
    holder = "department" if field == "department" else "member"
    text = f"another WeCom {holder} already has this {field} {value!r}: {exc.message}"
    cls = ConflictError if field == "userid" else PermanentError
    return cls(text, code=code, remote="wecom", endpoint=exc.endpoint)
