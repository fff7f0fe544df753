"""Users: create, update, delete, resign, with the pool's validation and uniqueness rules.

Rules (reference §1.5, §2.1-2.2): one of username/phone/email is required; externalId,
email, phone and username are unique in the pool; email format is checked; a
phoneCountryCode needs a phone; status and gender are enums; customData keys must be
defined. Batches are validated in full (including against each other) before any write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import errors
from .base import UNIQUE_USER_KEYS, StateBase
from .dto import BOOL_FIELDS, GENDERS, STRING_FIELDS, USER_STATUSES, v2_user
from .errors import bad_param, bad_request, conflict
from .params import EMAIL_RE, PHONE_RE, Params
from .records import Department, User, new_id

PROFILE_PROPS = set(STRING_FIELDS) | set(BOOL_FIELDS) | {"status", "gender"}
IGNORED_PROPS = {"password", "salt", "otp", "tenantIds", "metadataSource", "identities",
                 "postIdList", "metadata"}
CREATE_PROPS = PROFILE_PROPS | IGNORED_PROPS | {"departmentIds", "customData", "options"}
UPDATE_PROPS = PROFILE_PROPS | IGNORED_PROPS | {"customData"}
CREATE_OPTIONS = {"keepPassword", "autoGeneratePassword", "resetPasswordOnFirstLogin",
                  "departmentIdType", "sendNotification", "passwordEncryptType"}
DEPT_ID_TYPES = ("department_id", "open_department_id", "sync_relation", "custom_field", "code")
USER_ID_TYPES = ("user_id", "external_id", "phone", "email", "username", "identity",
                 "sync_relation", "custom_field")
_ID_TYPE_KEY = {"external_id": "externalId", "phone": "phone", "email": "email",
                "username": "username"}
_CONFLICTS = {
    "externalId": ("用户已存在", errors.USER_EXISTS),
    "username": ("用户名已存在", errors.USERNAME_EXISTS),
    "phone": ("手机号已绑定", errors.PHONE_EXISTS),
    "email": ("该邮箱已被绑定", errors.EMAIL_EXISTS),
}


_STRING_SET = frozenset(STRING_FIELDS)


def norm(key: str, value: str) -> str:
    return value.lower() if key == "email" else value


@dataclass
class _Draft:
    """A validated change to one user, not yet written."""

    user: User | None
    profile: dict[str, Any]  # new values; None clears
    custom: dict[str, Any] = field(default_factory=dict)
    departments: list[Department] = field(default_factory=list)


class UsersMixin(StateBase):
    # lookups --------------------------------------------------------------------------
    def find_user(self, user_id: str, id_type: str | None = None) -> User | None:
        id_type = id_type or "user_id"
        if id_type not in USER_ID_TYPES:
            raise bad_param("userIdType")
        if id_type == "user_id":
            return self.users.get(user_id)
        key = _ID_TYPE_KEY.get(id_type)
        if key is None:  # identity / sync_relation / custom_field: none exist here
            return None
        found = self.index[key].get(norm(key, user_id))
        return self.users.get(found) if found else None

    def user(self, user_id: str, id_type: str | None = None) -> User:
        user = self.find_user(user_id, id_type)
        if user is None:
            raise errors.user_not_found()
        return user

    # create ---------------------------------------------------------------------------
    def create_users(self, bodies: list[Any], options: dict[str, Any] | None = None, *,
                     source: str = "adminCreated") -> list[User]:
        opts = Params(options or {})
        opts.only(CREATE_OPTIONS)
        dept_type = opts.text("departmentIdType", choices=DEPT_ID_TYPES) or "department_id"
        reserved: dict[str, set[str]] = {key: set() for key in UNIQUE_USER_KEYS}
        drafts = []
        for body in bodies:
            if not isinstance(body, dict):
                raise bad_param("list")
            p = Params(body)
            p.only(CREATE_PROPS)
            draft = _Draft(None, self._profile(p, creating=True))
            self._check_identity(draft.profile)
            self._check_unique(draft.profile, None, reserved)
            draft.custom = self._custom(p, None)
            ids = p.texts("departmentIds", max_len=None) or []
            draft.departments = list({d.department_id: d for d in (
                self.dept_in_any_org(i, dept_type) for i in ids)}.values())
            drafts.append(draft)
        return [self._insert(draft, source) for draft in drafts]

    def _insert(self, draft: _Draft, source: str) -> User:
        now = self.clock.now_ms()
        profile = {k: v for k, v in draft.profile.items() if v is not None}
        status = profile.pop("status", "Activated")
        user = User(user_id=new_id(), created_at=now, updated_at=now,
                    status=status, status_changed_at=now, source_type=source,
                    profile=profile,
                    custom_data={k: v for k, v in draft.custom.items() if v is not None})
        self.users[user.user_id] = user
        self._index(user)
        self.changed()
        self.emit("user:created", lambda: v2_user(user, self.userpool_id))
        for dept in draft.departments:
            self.join(user, dept, now)
        return user

    # update ---------------------------------------------------------------------------
    def update_users(self, changes: list[tuple[User, dict[str, Any]]], *,
                     announce: bool = True) -> list[User]:
        """Each pair is (user, fields without userId/options); all validated first.

        ``announce=False`` (set-custom-data) fires only ``user:udv-changed``.
        """
        reserved: dict[str, set[str]] = {key: set() for key in UNIQUE_USER_KEYS}
        drafts = []
        for user, body in changes:
            p = Params(body)
            p.only(UPDATE_PROPS)
            draft = _Draft(user, self._profile(p, creating=False))
            merged = {**user.profile, **draft.profile}
            self._check_identity(merged)
            self._check_unique(draft.profile, user, reserved)
            draft.custom = self._custom(p, user)
            drafts.append(draft)
        return [self._apply(draft, announce) for draft in drafts]

    def _apply(self, draft: _Draft, announce: bool) -> User:
        user = draft.user
        assert user is not None
        updates: dict[str, Any] = {}
        for key, value in draft.profile.items():
            current = user.status if key == "status" else user.profile.get(key)
            if value != current:
                updates[key] = value
        udv = {k: v for k, v in draft.custom.items() if user.custom_data.get(k) != v}
        if updates or udv:
            now = self.clock.now_ms()
            self._unindex(user)
            for key, value in updates.items():
                if key == "status":
                    user.status, user.status_changed_at = value, now
                elif value is None:
                    user.profile.pop(key, None)
                else:
                    user.profile[key] = value
            for key, value in udv.items():
                if value is None:
                    user.custom_data.pop(key, None)
                else:
                    user.custom_data[key] = value
            self._index(user)
            user.updated_at = now
            self.changed()
        # Real Authing fires user:updated for every update call ("无论成功与否都会触发").
        if announce:
            self.emit("user:updated", partial(self._updated_event, user, dict(updates)))
        for key, value in udv.items():
            self.emit("user:udv-changed", partial(self._udv_event, user, key, value))
        return user

    def _updated_event(self, user: User, updates: dict[str, Any]) -> dict[str, Any]:
        return {"user": v2_user(user, self.userpool_id), "updates": updates}

    def _udv_event(self, user: User, key: str, value: Any) -> dict[str, Any]:
        spec = self.fields.get("USER", key)
        assert spec is not None
        return {"user": v2_user(user, self.userpool_id),
                "udv": {"udfId": f"{spec.target_type}:{spec.key}", "targetId": user.user_id,
                        "targetType": "USER", "key": key, "value": value},
                "udf": {"key": key, "label": spec.label, "dataType": spec.data_type,
                        "targetType": "USER"}}

    # delete / resign --------------------------------------------------------------------
    def delete_users(self, users: list[User]) -> None:
        gone = []
        for user in users:
            if user.user_id not in self.users:
                continue
            gone.append(v2_user(user, self.userpool_id))
            self._drop_memberships(user, quiet=True)
            self._unindex(user)
            del self.users[user.user_id]
            self.changed()
        if gone:
            self.emit("user:deleted", lambda: {"users": gone})

    def resign_users(self, users: list[User]) -> None:
        """Status Resigned; department (and leader) relations are removed (reference §2.2)."""
        for user in users:
            self._drop_memberships(user, quiet=False)
            if user.status != "Resigned":
                now = self.clock.now_ms()
                user.status, user.status_changed_at, user.updated_at = "Resigned", now, now
                self.changed()
                self.emit("user:updated",
                          partial(self._updated_event, user, {"status": "Resigned"}))

    def _drop_memberships(self, user: User, *, quiet: bool) -> None:
        for dept_id in list(user.departments):
            dept = self.departments[dept_id]
            if quiet:
                with self.muted():
                    self.leave(user, dept)
            else:
                self.leave(user, dept)

    # validation -----------------------------------------------------------------------
    def _profile(self, p: Params, *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in [n for n in p.data if n in _STRING_SET]:
            value = p.text(name)
            if value is None:
                if not creating:
                    out[name] = None
                continue
            if name == "email" and not EMAIL_RE.match(value):
                raise bad_param("email")
            if name == "phone" and not PHONE_RE.match(value):
                raise bad_param("phone")
            if name in ("username", "externalId") and not value.strip():
                raise bad_param(name)
            out[name] = value
        for name in BOOL_FIELDS:
            if p.get(name) is not None:
                out[name] = p.flag(name)
        if p.get("status") is not None:
            out["status"] = p.text("status", choices=USER_STATUSES)
        if p.get("gender") is not None:
            out["gender"] = p.text("gender", choices=GENDERS)
        return out

    def _check_identity(self, profile: dict[str, Any]) -> None:
        if not any(profile.get(k) for k in ("username", "phone", "email")):
            raise bad_request("Must contain one of the following fields: username, phone, email")
        if profile.get("phoneCountryCode") and not profile.get("phone"):
            raise bad_request("phone cannot be empty")

    def _check_unique(self, profile: dict[str, Any], user: User | None,
                      reserved: dict[str, set[str]]) -> None:
        for key in UNIQUE_USER_KEYS:
            value = profile.get(key)
            if value is None:
                continue
            owner = self.index[key].get(norm(key, value))
            if (owner is not None and (user is None or owner != user.user_id)) or \
                    norm(key, value) in reserved[key]:
                zh, code = _CONFLICTS[key]
                raise conflict(f"{zh} ({key} already exists: {value})", code)
            reserved[key].add(norm(key, value))

    def _custom(self, p: Params, user: User | None) -> dict[str, Any]:
        if p.get("customData") is None:
            return {}
        data = self.fields.check_data("USER", p.get("customData"))
        for key, value in data.items():
            spec = self.fields.get("USER", key)
            if spec is None or not spec.is_unique or value is None:
                continue
            for other in self.users.values():
                if other is not user and other.custom_data.get(key) == value:
                    raise conflict(f"customData {key} must be unique: {value} is taken")
        return data

    def _index(self, user: User) -> None:
        for key in UNIQUE_USER_KEYS:
            value = user.profile.get(key)
            if value is not None:
                self.index[key][norm(key, value)] = user.user_id

    def _unindex(self, user: User) -> None:
        for key in UNIQUE_USER_KEYS:
            value = user.profile.get(key)
            if value is not None:
                self.index[key].pop(norm(key, value), None)

