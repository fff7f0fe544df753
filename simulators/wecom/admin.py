"""Changes made "in the admin console": the only changes WeCom calls back to a sync app.

``Admin`` validates exactly as the API does (same rules, same errcodes, raised as
``ApiError``), then publishes the resulting changes to the callback pusher while still
holding the directory lock, so callbacks leave in the order the changes happened. A field
of the wrong Python type is a programming error in the test, so it raises ``TypeError``
rather than imitating the API's silent "wrong json format" warning.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .changes import Change
from .model import ACTIVE, DISABLED, NOT_ACTIVATED, QUIT, ROOT_ID, avatar_url
from .pusher import CallbackPusher
from .state import Directory
from .validation import DEPARTMENT_FIELDS, USER_FIELDS, Kind, read_fields


class Admin:
    def __init__(self, directory: Directory, pusher: CallbackPusher) -> None:
        self.directory = directory
        self.pusher = pusher

    def _apply(self, operation: Callable[[], list[Change]]) -> list[Change]:
        with self.directory.lock:
            changes = operation()
            self.pusher.publish(changes)
        return changes

    # -- departments --------------------------------------------------------------------

    def create_department(self, name: str, parentid: int = ROOT_ID, *, id: int | None = None,
                          order: int | None = None, name_en: str | None = None) -> int:
        """Create a department (create_party callback); returns its id."""
        values = _typed({"name": name, "parentid": parentid, "id": id, "order": order,
                         "name_en": name_en}, DEPARTMENT_FIELDS)
        created: list[int] = []

        def operation() -> list[Change]:
            dept_id, changes = self.directory.create_department(values)
            created.append(dept_id)
            return changes

        self._apply(operation)
        return created[0]

    def update_department(self, id: int, *, name: str | None = None,
                          parentid: int | None = None, order: int | None = None,
                          name_en: str | None = None) -> list[Change]:
        """Rename or move; a rename alone is called back only in full (pre-2022) mode."""
        values = _typed({"id": id, "name": name, "parentid": parentid, "order": order,
                         "name_en": name_en}, DEPARTMENT_FIELDS)
        return self._apply(lambda: self.directory.update_department(values))

    def delete_department(self, id: int) -> list[Change]:
        return self._apply(lambda: self.directory.delete_department(id))

    # -- users --------------------------------------------------------------------------

    def create_user(self, userid: str, name: str, department: Sequence[int] = (ROOT_ID,), *,
                    status: int = ACTIVE, avatar: str | None = None,
                    **fields: Any) -> list[Change]:
        """Create a member (create_user callback). ``fields`` are user/create fields
        (mobile, email, position, gender as "1"/"2", is_leader_in_dept...); at least one of
        mobile and email is required, as in WeCom. ``status`` 1 means the member has joined."""
        _check_status(status)
        values = _typed({"userid": userid, "name": name, "department": department, **fields},
                        USER_FIELDS)
        picture = avatar if avatar is not None else (avatar_url(userid) if status == ACTIVE
                                                     else "")
        return self._apply(lambda: self.directory.create_user(values, status=status,
                                                             avatar=picture))

    def join_user(self, name: str, department: Sequence[int] = (ROOT_ID,),
                  **fields: Any) -> str:
        """A member who joins by invitation: the system generates the userid, which the
        API may rename once (reference §3.6). Returns the userid (create_user callback)."""
        userid = f"wo{secrets.token_hex(8)}"  # WeCom's own form is not documented
        values = _typed({"userid": userid, "name": name, "department": department,
                         **fields}, USER_FIELDS)
        self._apply(lambda: self.directory.create_user(values, status=ACTIVE,
                                                       avatar=avatar_url(userid),
                                                       generated=True))
        return userid

    def update_user(self, userid: str, *, status: int | None = None, avatar: str | None = None,
                    **fields: Any) -> list[Change]:
        """Change fields (update_user callback with only what changed, in full mode).
        ``new_userid`` renames; ``enable=0`` disables; ``status`` sets it directly."""
        _check_status(status)
        values = _typed({"userid": userid, **fields}, USER_FIELDS)
        return self._apply(lambda: self.directory.update_user(values, status=status,
                                                             avatar=avatar))

    def rename_user(self, userid: str, new_userid: str) -> list[Change]:
        return self.update_user(userid, new_userid=new_userid)

    def disable_user(self, userid: str) -> list[Change]:
        return self.update_user(userid, enable=0)

    def enable_user(self, userid: str) -> list[Change]:
        return self.update_user(userid, enable=1)

    def delete_user(self, userid: str) -> list[Change]:
        return self._apply(lambda: self.directory.delete_user(userid))

    def delete_users(self, userids: Iterable[str]) -> list[Change]:
        return self._apply(lambda: self.directory.batch_delete_users(list(userids)))

    # -- tags ---------------------------------------------------------------------------

    def create_tag(self, name: str, tagid: int | None = None) -> int:
        """Tags exist only to fire update_tag; creating one is not called back."""
        return self.directory.create_tag(name, tagid)

    def tag_members(self, tagid: int, *, add_users: Iterable[str] = (),
                    del_users: Iterable[str] = (), add_parties: Iterable[int] = (),
                    del_parties: Iterable[int] = ()) -> list[Change]:
        """Edit a tag's members (update_tag callback listing what moved)."""
        return self._apply(lambda: self.directory.change_tag(
            tagid, add_users=list(add_users), del_users=list(del_users),
            add_parties=list(add_parties), del_parties=list(del_parties)))

    # -- bulk ---------------------------------------------------------------------------

    def load(self, departments: Iterable[Mapping[str, Any]],
             users: Iterable[Mapping[str, Any]]) -> None:
        """Replace the directory wholesale, without callbacks (e.g. generated data)."""
        self.directory.load(departments, users)

    def seed(self, *, users: int, departments: int, seed: int = 0) -> None:
        """Load a generated directory of the given size (deterministic for a seed)."""
        from simulators.generate import generate_directory

        generated = generate_directory(users=users, departments=departments, seed=seed,
                                       corp_name=self.directory.corp_name)
        self.load(generated.departments, generated.users)


def _check_status(status: int | None) -> None:
    if status not in (None, ACTIVE, DISABLED, NOT_ACTIVATED, QUIT):
        raise ValueError(f"status must be 1, 2, 4 or 5, not {status!r}")


def _typed(values: Mapping[str, Any], spec: Mapping[str, Kind]) -> dict[str, Any]:
    """Drop ``None``s, turn tuples into lists, and refuse unknown or mistyped fields."""
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise TypeError(f"unknown field(s): {', '.join(unknown)}")
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()
             if v is not None}
    typed, wrong = read_fields(plain, spec)
    if wrong:
        raise TypeError("; ".join(f"{name} must be a {spec[name].value}, got {plain[name]!r}"
                                  for name in wrong))
    return typed
