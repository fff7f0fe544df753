"""The simulated corp's directory: departments, users and tags behind one lock.

``Directory`` is what both the HTTP API and the admin interface mutate. Every mutation
returns the ``Change`` records WeCom would announce; the caller decides whether they are
called back (admin changes are, API changes made with the contact-sync secret are not).
The lock is re-entrant, so a caller may hold it across a mutation and the publishing of
its changes, which keeps callbacks in the order the changes happened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from simulators.generate import paused_gc

from . import errors
from .changes import Change
from .departments import DepartmentTree
from .errors import ApiError
from .model import ACTIVE, ROOT_ID, Department, Tag, User
from .users import UserIndex, creation_change

MAX_LIST_ID_LIMIT = 10_000


class Directory:
    def __init__(self, corp_name: str = "示例科技") -> None:
        self.lock = threading.RLock()
        self.corp_name = corp_name
        self.users: UserIndex
        self.departments = DepartmentTree(corp_name, lambda d: self.users.has_members(d))
        self.users = UserIndex(self.departments)
        self.tags: dict[int, Tag] = {}
        self._cursor_key = secrets.token_bytes(16)
        self._seq_cache: list[int] | None = None

    # -- departments --------------------------------------------------------------------

    def department_view(self, dept: Department) -> dict[str, Any]:
        view = dept.view()
        view["department_leader"] = self._leaders(dept.id)
        return view

    def department_list(self, root: int = ROOT_ID) -> list[dict[str, Any]]:
        """department/list: ``root`` and everything below it, parents first."""
        self.departments.get(root)
        return [self.department_view(d) for d in self.departments.walk(root)]

    def department_ids(self, root: int = ROOT_ID) -> list[dict[str, int]]:
        """department/simplelist rows."""
        self.departments.get(root)
        return [{"id": d.id, "parentid": d.parentid, "order": d.order}
                for d in self.departments.walk(root)]

    def create_department(self, values: dict[str, Any]) -> tuple[int, list[Change]]:
        with self.lock:
            dept, change = self.departments.create(values)
            return dept.id, [change]

    def update_department(self, values: dict[str, Any]) -> list[Change]:
        with self.lock:
            change = self.departments.update(values)
            return [change] if change else []

    def delete_department(self, dept_id: int) -> list[Change]:
        with self.lock:
            change = self.departments.delete(dept_id)
            for tag in self.tags.values():
                tag.parties.pop(dept_id, None)
            return [change]

    # -- users --------------------------------------------------------------------------

    def members(self, dept_id: int) -> list[User]:
        self.departments.get(dept_id)
        return self.users.members(dept_id)

    def create_user(self, values: dict[str, Any], *, status: int | None = None,
                    avatar: str = "", generated: bool = False) -> list[Change]:
        with self.lock:
            user = self.users.create(values, status=status, avatar=avatar,
                                     generated=generated)
            self._seq_cache = None
            return [creation_change(user)]

    def update_user(self, values: dict[str, Any], *, status: int | None = None,
                    avatar: str | None = None, by_api: bool = False) -> list[Change]:
        with self.lock:
            change = self.users.update(values, status=status, avatar=avatar, by_api=by_api)
            return [change] if change else []

    def delete_user(self, userid: str) -> list[Change]:
        with self.lock:
            return self._dropped(self.users.delete(userid))

    def batch_delete_users(self, userids: list[str]) -> list[Change]:
        with self.lock:
            return self._dropped(*self.users.batch_delete(userids))

    def _dropped(self, *changes: Change) -> list[Change]:
        """After deletes: forget the cursor index and the deleted users' tag memberships."""
        self._seq_cache = None
        for tag in self.tags.values():
            for seq in [s for s in tag.users if s not in self.users.by_seq]:
                del tag.users[seq]
        return list(changes)

    def list_id(self, cursor: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        """user/list_id: one row per (user, department) pair, ``limit`` rows from ``cursor``.

        The cursor names the next row as (user seq, department index), signed so a client
        cannot forge or edit it. An empty next cursor means the walk is complete.
        """
        if not 1 <= limit <= MAX_LIST_ID_LIMIT:
            raise ApiError(errors.INVALID_PARAMETER, f"limit {limit} not in 1..{MAX_LIST_ID_LIMIT}")
        with self.lock:
            seq, index = self._decode_cursor(cursor) if cursor else (0, 0)
            seqs = self._seqs()
            rows: list[dict[str, Any]] = []
            position = bisect_left(seqs, seq)
            while position < len(seqs):
                user = self.users.by_seq[seqs[position]]
                start = index if user.seq == seq else 0
                for k in range(start, len(user.department)):
                    if len(rows) == limit:
                        return rows, self._encode_cursor(user.seq, k)
                    rows.append({"userid": user.userid, "department": user.department[k]})
                position += 1
            return rows, ""

    def _seqs(self) -> list[int]:
        if self._seq_cache is None:
            self._seq_cache = list(self.users.by_seq)  # already ascending
        return self._seq_cache

    def _encode_cursor(self, seq: int, index: int) -> str:
        body = f"{seq}:{index}"
        mac = hmac.new(self._cursor_key, body.encode(), hashlib.sha256).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{body}:{mac}".encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str) -> tuple[int, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            seq_text, index_text, mac = raw.split(":")
            body = f"{int(seq_text)}:{int(index_text)}"
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError(errors.INVALID_PARAMETER, "invalid cursor") from None
        expected = hmac.new(self._cursor_key, body.encode(), hashlib.sha256).hexdigest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise ApiError(errors.INVALID_PARAMETER, "invalid cursor")
        return int(seq_text), int(index_text)

    def _leaders(self, dept_id: int) -> list[str]:
        leaders = []
        for user in self.users.members(dept_id):
            position = user.department.index(dept_id)
            if user.is_leader_in_dept[position]:
                leaders.append(user.userid)
        return leaders

    # -- tags ---------------------------------------------------------------------------

    def create_tag(self, name: str, tag_id: int | None = None) -> int:
        with self.lock:
            if not name or len(name) > 32:
                raise ApiError(errors.INVALID_PARAMETER, "tag name must be 1-32 characters")
            if any(t.name == name for t in self.tags.values()):
                raise ApiError(errors.INVALID_TAG_NAME, f"tag name {name!r} exists")
            if tag_id is None:
                tag_id = max(self.tags, default=0) + 1
            elif tag_id in self.tags or tag_id < 1:
                raise ApiError(errors.INVALID_PARAMETER, f"tagid {tag_id}")
            self.tags[tag_id] = Tag(tag_id, name)
            return tag_id

    def change_tag(self, tag_id: int, *, add_users: Iterable[str] = (),
                   del_users: Iterable[str] = (), add_parties: Iterable[int] = (),
                   del_parties: Iterable[int] = ()) -> list[Change]:
        """Membership edits; the change lists only what actually moved (update_tag)."""
        with self.lock:
            tag = self.tags.get(tag_id)
            if tag is None:
                raise ApiError(errors.INVALID_TAG_ID, f"tagid {tag_id}")
            adds = [self.users.find(u) for u in add_users]
            dels = [self.users.find(u) for u in del_users]
            for dept_id in [*add_parties, *del_parties]:
                self.departments.get(dept_id, errcode=errors.DEPT_NOT_FOUND)
            added_users = [u.userid for u in adds if u.seq not in tag.users]
            removed_users = [u.userid for u in dels if u.seq in tag.users]
            added_parties = [d for d in add_parties if d not in tag.parties]
            removed_parties = [d for d in del_parties if d in tag.parties]
            tag.users.update((u.seq, None) for u in adds)
            for user in dels:
                tag.users.pop(user.seq, None)
            tag.parties.update((d, None) for d in add_parties)
            for dept_id in del_parties:
                tag.parties.pop(dept_id, None)
            fields: list[tuple[str, Any]] = [("TagId", tag_id)]
            for tag_name, items in (("AddUserItems", added_users), ("DelUserItems", removed_users),
                                    ("AddPartyItems", added_parties),
                                    ("DelPartyItems", removed_parties)):
                if items:
                    fields.append((tag_name, items))
            return [Change("update_tag", tuple(fields))] if len(fields) > 1 else []

    # -- bulk load ----------------------------------------------------------------------

    def load(self, departments: Iterable[Mapping[str, Any]],
             users: Iterable[Mapping[str, Any]]) -> None:
        """Replace the whole directory (no callbacks), validating every record as the API does.

        ``departments`` are API-shaped dicts (``id, name, parentid, order``), parents listed
        before children; a record with id 1 renames the root. ``users`` are user/create
        bodies, optionally with ``status`` (default 1, active).
        """
        with self.lock, paused_gc():
            self.tags.clear()
            self.users.clear()
            self._seq_cache = None
            self.departments.reset(self.corp_name)
            for record in departments:
                if record["id"] == ROOT_ID:
                    root = self.departments.by_id[ROOT_ID]
                    root.name = str(record.get("name", root.name))
                    root.order = int(record.get("order", root.order))
                    continue
                self.departments.create(dict(record))
            for record in users:
                values = dict(record)
                status = int(values.pop("status", ACTIVE))
                avatar = str(values.pop("avatar", ""))
                self.users.create(values, status=status, avatar=avatar)
