"""Users: validation, uniqueness indexes, department membership and the change feed.

Uniqueness follows WeCom: userid ignoring case, mobile, email (reference §3.3). Every
index is keyed by the user's ``seq`` (fixed at creation), so a userid rename touches only
the userid index and list_id cursors stay valid across it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from . import errors
from .changes import Change
from .departments import DepartmentTree
from .errors import ApiError
from .model import ACTIVE, DISABLED, NOT_ACTIVATED, User
from .validation import (
    MAX_DIRECT_LEADERS,
    check_department_list,
    check_email,
    check_extattr,
    check_flags,
    check_gender,
    check_mobile,
    check_order,
    check_position,
    check_user_name,
    check_userid,
)

# (XML tag, attribute) in the order of the official create_user sample.
_XML_FIELDS = (
    ("Name", "name"), ("Department", "department"), ("MainDepartment", "main_department"),
    ("IsLeaderInDept", "is_leader_in_dept"), ("DirectLeader", "direct_leader"),
    ("Position", "position"), ("Mobile", "mobile"), ("Gender", "gender"), ("Email", "email"),
    ("BizMail", "biz_mail"), ("Status", "status"), ("Avatar", "avatar"), ("Alias", "alias"),
    ("Telephone", "telephone"), ("Address", "address"), ("ExtAttr", "extattr"),
)
_PLAIN_TEXT = ("position", "alias", "telephone", "address", "external_position")


class UserIndex:
    def __init__(self, tree: DepartmentTree) -> None:
        self._tree = tree
        self.by_seq: dict[int, User] = {}  # insertion order == seq order
        self._by_key: dict[str, int] = {}
        self._mobiles: dict[str, int] = {}
        self._emails: dict[str, int] = {}
        self._members: dict[int, dict[int, None]] = {}
        self._reports: dict[str, set[int]] = {}  # leader key -> seqs naming it direct_leader
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self.by_seq)

    def __iter__(self) -> Iterator[User]:
        return iter(self.by_seq.values())

    def clear(self) -> None:
        for index in (self.by_seq, self._by_key, self._mobiles, self._emails, self._members,
                      self._reports):
            index.clear()

    def find(self, userid: str) -> User:
        seq = self._by_key.get(userid.lower()) if userid else None
        if seq is None:
            raise ApiError(errors.USERID_NOT_FOUND, userid)
        return self.by_seq[seq]

    def has_members(self, dept_id: int) -> bool:
        return bool(self._members.get(dept_id))

    def members(self, dept_id: int) -> list[User]:
        return [self.by_seq[s] for s in self._members.get(dept_id, ())]

    # -- mutations --------------------------------------------------------------------

    def create(self, values: dict[str, Any], *, status: int | None = None,
               avatar: str = "", generated: bool = False) -> User:
        """``generated``: the system chose the userid (a member who joined by invitation),
        so one rename through the API is allowed."""
        userid = values.get("userid", "")
        check_userid(userid)
        if userid.lower() in self._by_key:
            raise ApiError(errors.USERID_EXISTS, userid)
        if "name" not in values:
            raise ApiError(errors.USER_NAME_INVALID, "name missing")
        if "department" not in values:
            raise ApiError(errors.MISSING_DEPARTMENT)
        attrs = self._resolve(values, None)
        if attrs["enable"] == 0:
            attrs["status"] = DISABLED
        elif status is not None:
            attrs["status"] = status
        user = User(userid=userid, seq=self._next_seq, avatar=avatar, renamable=generated,
                    **_user_attrs(attrs))
        user.activated = user.status == ACTIVE
        self._next_seq += 1
        self.by_seq[user.seq] = user
        self._by_key[user.key] = user.seq
        self._index(user)
        return user

    def update(self, values: dict[str, Any], *, status: int | None = None,
               avatar: str | None = None, by_api: bool = False) -> Change | None:
        """Apply the given fields; the change is None when nothing moved. Through the API
        (``by_api``) ``new_userid`` renames only a system-generated userid, once
        (reference §3.6; WeCom documents no code for the refusal: 40058 here); the admin
        console renames any."""
        user = self.find(values.get("userid", ""))
        new_userid = values.get("new_userid", user.userid)
        if new_userid != user.userid:
            if by_api and not user.renamable:
                raise ApiError(errors.INVALID_PARAMETER, "new_userid: only a userid the "
                               "system generated can be renamed, and only once")
            check_userid(new_userid)
            other = self._by_key.get(new_userid.lower())
            if other is not None and other != user.seq:
                raise ApiError(errors.USERID_EXISTS, new_userid)
        attrs = self._resolve(values, user)
        if attrs["enable"] == 0:
            attrs["status"] = DISABLED
        elif attrs["enable"] == 1 and user.status == DISABLED:
            attrs["status"] = ACTIVE if user.activated else NOT_ACTIVATED
        if status is not None:
            attrs["status"] = status
        before = {attr: getattr(user, attr) for _, attr in _XML_FIELDS}
        old_userid = user.userid
        self._unindex(user)
        for attr, value in _user_attrs(attrs).items():
            setattr(user, attr, value)
        if avatar is not None:
            user.avatar = avatar
        user.activated = user.activated or user.status == ACTIVE
        if new_userid != old_userid:
            del self._by_key[old_userid.lower()]
            user.userid, user.renamable = new_userid, False
            self._by_key[user.key] = user.seq
            self._rename_leader(old_userid, new_userid)
        self._index(user)
        changed = {attr for _, attr in _XML_FIELDS if getattr(user, attr) != before[attr]}
        if not changed and new_userid == old_userid:
            return None
        fields: list[tuple[str, Any]] = [("UserID", old_userid)]
        if new_userid != old_userid:
            fields.append(("NewUserID", new_userid))
        return Change("update_user", (*fields, *_xml(user, changed)), tuple(user.department))

    def delete(self, userid: str) -> Change:
        user = self.find(userid)
        self._remove(user)
        return Change("delete_user", (("UserID", user.userid),))

    def batch_delete(self, userids: list[str]) -> list[Change]:
        """All or nothing: any unknown userid fails the call and deletes no one."""
        if not userids or len(userids) > 200:
            raise ApiError(errors.INVALID_USERID_LIST_SIZE, f"{len(userids)} userids (1..200)")
        unknown = [u for u in userids if u.lower() not in self._by_key]
        if unknown:
            raise ApiError(errors.INVALID_USERID_LIST, ",".join(unknown[:10]))
        users = {self._by_key[u.lower()]: self.find(u) for u in userids}
        for user in users.values():
            self._remove(user)
        return [Change("delete_user", (("UserID", u.userid),)) for u in users.values()]

    # -- resolution: request fields + current user -> complete, validated attributes --

    def _resolve(self, values: dict[str, Any], current: User | None) -> dict[str, Any]:
        def pick(name: str, default: Any) -> Any:
            if name in values:
                return values[name]
            return getattr(current, name) if current is not None else default

        own_seq = current.seq if current is not None else None
        name = pick("name", "")
        check_user_name(name)
        department = pick("department", [])
        order, leaders = self._department_flags(values, current, department)
        main = values.get("main_department")
        if main is None:
            main = current.main_department if current is not None else department[0]
            main = main if main in department else department[0]
        elif main not in department:
            raise ApiError(errors.INVALID_PARAMETER, f"main_department {main} not in department")
        mobile, email = pick("mobile", ""), pick("email", "")
        check_mobile(mobile)
        check_email(email)
        self._check_unique(self._mobiles, mobile, own_seq, errors.MOBILE_EXISTS)
        self._check_unique(self._emails, email.lower(), own_seq, errors.EMAIL_EXISTS)
        if not mobile and not email:
            raise ApiError(errors.NO_MOBILE_NOR_EMAIL)
        biz_mail = pick("biz_mail", "")
        check_email(biz_mail)
        gender = pick("gender", "0")
        check_gender(gender)
        check_position(pick("position", ""))
        extattr = pick("extattr", {"attrs": []})
        check_extattr(extattr)
        direct_leader = pick("direct_leader", [])
        self._check_leaders(direct_leader, current)
        attrs = {attr: pick(attr, "") for attr in _PLAIN_TEXT}
        attrs.update(
            name=name, department=list(department), order=order, is_leader_in_dept=leaders,
            main_department=main, mobile=mobile, email=email, biz_mail=biz_mail,
            gender=gender, direct_leader=list(direct_leader),
            extattr=extattr,
            external_profile=pick("external_profile", {}),
            status=current.status if current is not None else NOT_ACTIVATED,
            enable=values.get("enable"),
        )
        return attrs

    def _department_flags(self, values: dict[str, Any], current: User | None,
                          department: list[int]) -> tuple[list[int], list[int]]:
        """Check the department list and line ``order``/``is_leader_in_dept`` up with it.

        When the list changes without new flags, a kept department keeps its flags and a
        new one gets 0, as "fields not sent are not updated" implies.
        """
        check_department_list(department)
        for dept_id in department:
            if dept_id not in self._tree:
                raise ApiError(errors.DEPT_NOT_FOUND, f"department {dept_id}")
        old = ({d: (o, ld) for d, o, ld in zip(current.department, current.order,
                                                  current.is_leader_in_dept, strict=True)}
               if current is not None else {})
        order = values.get("order", [old.get(d, (0, 0))[0] for d in department])
        leaders = values.get("is_leader_in_dept", [old.get(d, (0, 0))[1] for d in department])
        check_flags(order, department, errcode=errors.INVALID_PARAMETER, label="order")
        check_flags(leaders, department, errcode=errors.LEADER_COUNT_MISMATCH,
                    label="is_leader_in_dept")
        for value in order:
            check_order(value)
        if any(flag not in (0, 1) for flag in leaders):
            raise ApiError(errors.INVALID_PARAMETER, "is_leader_in_dept values must be 0 or 1")
        return list(order), list(leaders)

    def _check_unique(self, index: dict[str, int], value: str, own_seq: int | None,
                      errcode: int) -> None:
        holder = index.get(value) if value else None
        if holder is not None and holder != own_seq:
            raise ApiError(errcode, value)

    def _check_leaders(self, leaders: list[str], current: User | None) -> None:
        if len(leaders) > MAX_DIRECT_LEADERS:
            raise ApiError(errors.INVALID_PARAMETER, f"at most {MAX_DIRECT_LEADERS} leaders")
        own = current.key if current is not None else None
        unknown = [u for u in leaders if u.lower() not in self._by_key or u.lower() == own]
        if unknown:
            raise ApiError(errors.INVALID_USERID_LIST, f"direct_leader {','.join(unknown)}")

    # -- indexes ----------------------------------------------------------------------

    def _index(self, user: User) -> None:
        if user.mobile:
            self._mobiles[user.mobile] = user.seq
        if user.email:
            self._emails[user.email.lower()] = user.seq
        for dept_id in user.department:
            self._members.setdefault(dept_id, {})[user.seq] = None
        for leader in user.direct_leader:
            self._reports.setdefault(leader.lower(), set()).add(user.seq)

    def _unindex(self, user: User) -> None:
        self._mobiles.pop(user.mobile, None)
        self._emails.pop(user.email.lower(), None)
        for dept_id in user.department:
            self._members.get(dept_id, {}).pop(user.seq, None)
        for leader in user.direct_leader:
            self._reports.get(leader.lower(), set()).discard(user.seq)

    def _remove(self, user: User) -> None:
        self._unindex(user)
        del self.by_seq[user.seq], self._by_key[user.key]
        self._rename_leader(user.userid, None)

    def _rename_leader(self, old: str, new: str | None) -> None:
        """Keep other users' direct_leader lists pointing at a renamed or deleted leader."""
        old_key = old.lower()
        reports = self._reports.pop(old_key, set())
        for seq in reports:
            other = self.by_seq[seq]
            kept = [u for u in other.direct_leader if u.lower() != old_key]
            other.direct_leader = kept if new is None else [
                new if u.lower() == old_key else u for u in other.direct_leader]
        if new is not None and reports:
            self._reports.setdefault(new.lower(), set()).update(reports)


def creation_change(user: User) -> Change:
    """create_user with every field that has a value (the official sample's layout)."""
    return Change("create_user", (("UserID", user.userid), *_xml(user, None)),
                  tuple(user.department))


def _user_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k != "enable"}


def _xml(user: User, only: set[str] | None) -> Iterable[tuple[str, Any]]:
    """Full payload fields for ``user``; with ``only``, just those attributes."""
    for tag, attr in _XML_FIELDS:
        if only is not None and attr not in only:
            continue
        value = getattr(user, attr)
        if attr == "extattr":
            value = value.get("attrs", [])
        if only is None and attr not in ("status", "gender") and value in ("", [], 0):
            continue
        yield tag, value
