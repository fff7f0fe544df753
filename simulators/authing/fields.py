"""Custom (extension) fields: definitions per target type and validation of ``customData``.

Reference §2.6: keys must be defined with ``set-custom-fields`` before any ``customData``
uses them, a key may not shadow a built-in field, and ``dataType`` is immutable.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .errors import bad_param, bad_request, refused
from .params import Params
from .records import CustomField, MonotonicClock, iso

TARGET_TYPES = ("USER", "ROLE", "GROUP", "DEPARTMENT")
DATA_TYPES = ("STRING", "NUMBER", "DATETIME", "BOOLEAN", "ENUM")
MAX_VALUE_CHARS = 1024
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FIELD_PROPS = {"targetType", "key", "dataType", "label", "description", "encrypted", "isUnique",
               "userEditable", "visibleInAdminConsole", "visibleInUserCenter", "validateRules",
               "appIds", "desensitization", "options", "i18n"}
BUILTIN_KEYS = {
    "USER": {"id", "userId", "userPoolId", "createdAt", "updatedAt", "status", "workStatus",
             "externalId", "email", "phone", "phoneCountryCode", "username", "name", "nickname",
             "photo", "gender", "emailVerified", "phoneVerified", "birthdate", "country",
             "province", "city", "address", "streetAddress", "postalCode", "company", "browser",
             "device", "givenName", "familyName", "middleName", "profile", "preferredUsername",
             "website", "zoneinfo", "locale", "formatted", "region", "password", "salt",
             "departmentIds", "customData", "identities", "mainDepartmentId", "tenantId"},
    "DEPARTMENT": {"departmentId", "organizationCode", "openDepartmentId", "name", "code",
                   "description", "parentDepartmentId", "leaderUserIds", "createdAt",
                   "updatedAt", "status", "customData", "membersCount", "hasChildren"},
}


def check_value_lengths(data: dict[str, Any]) -> None:
    """Checked before key definitions: the real server reports length first."""
    for value in data.values():
        if isinstance(value, str) and len(value) >= MAX_VALUE_CHARS:
            raise bad_request("customData must be less than 1024 characters")


class CustomFields:
    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self.fields: dict[tuple[str, str], CustomField] = {}

    def get(self, target_type: str, key: str) -> CustomField | None:
        return self.fields.get((target_type, key))

    def of(self, target_type: str) -> list[CustomField]:
        return [f for (target, _), f in self.fields.items() if target == target_type]

    def set_fields(self, items: list[Any]) -> list[CustomField]:
        """Create or update by (targetType, key); all items are checked before any is saved."""
        prepared = [self._prepare(item) for item in items]
        saved = []
        for target, key, p in prepared:
            existing = self.fields.get((target, key))
            field = existing or CustomField(
                target_type=target, key=key, data_type=p.req("dataType"),
                label=p.text("label") or key, created_at=self._clock.now_ms())
            if p.has("label"):
                field.label = p.req("label")
            if p.has("description"):
                field.description = p.text("description")
            for attr, prop in (("is_unique", "isUnique"), ("encrypted", "encrypted"),
                               ("user_editable", "userEditable"),
                               ("visible_in_admin_console", "visibleInAdminConsole"),
                               ("visible_in_user_center", "visibleInUserCenter")):
                if p.has(prop):
                    setattr(field, attr, p.flag(prop))
            if p.has("options"):
                field.options = list(p.array("options", max_len=None) or [])
            if p.has("i18n"):
                field.i18n = p.obj("i18n")
            self.fields[(target, key)] = field
            saved.append(field)
        return saved

    def _prepare(self, item: Any) -> tuple[str, str, Params]:
        if not isinstance(item, dict):
            raise bad_param("list")
        p = Params(item)
        p.only(FIELD_PROPS)
        target = p.req("targetType", choices=TARGET_TYPES)
        key = p.req("key")
        if not KEY_RE.match(key):
            raise bad_param("key")
        if key in BUILTIN_KEYS.get(target, set()):
            raise refused(f"custom field key {key} conflicts with a built-in field")
        existing = self.fields.get((target, key))
        data_type = p.text("dataType", choices=DATA_TYPES)
        if existing is None and data_type is None:
            raise bad_param("dataType")
        if existing is not None and data_type not in (None, existing.data_type):
            raise refused(f"dataType of custom field {key} cannot be changed")
        if (data_type or (existing and existing.data_type)) == "ENUM" and not (
                p.get("options") or (existing and existing.options)):
            raise bad_param("options")
        return target, key, p

    def check_data(self, target_type: str, data: Any) -> dict[str, Any]:
        """Validate ``customData`` for a target; ``None`` values mean "unset this key"."""
        if not isinstance(data, dict):
            raise bad_param("customData")
        check_value_lengths(data)
        for key, value in data.items():
            field = self.fields.get((target_type, key))
            if field is None:
                raise bad_request(
                    f"customData key {key} is not defined for {target_type}: "
                    "define it with set-custom-fields first")
            if value is not None and not _type_ok(field, value):
                raise bad_request(f"customData {key} must be of type {field.data_type}")
        return dict(data)

    def dto(self, field: CustomField) -> dict[str, Any]:
        return {
            "targetType": field.target_type, "key": field.key, "dataType": field.data_type,
            "label": field.label, "description": field.description,
            "encrypted": field.encrypted, "isUnique": field.is_unique,
            "userEditable": field.user_editable,
            "visibleInAdminConsole": field.visible_in_admin_console,
            "visibleInUserCenter": field.visible_in_user_center,
            "validateRules": [], "appIds": [], "desensitization": False,
            "options": field.options, "i18n": field.i18n, "createdAt": iso(field.created_at),
        }


def _type_ok(field: CustomField, value: Any) -> bool:
    kind = field.data_type
    if kind == "STRING":
        return isinstance(value, str)
    if kind == "NUMBER":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind == "DATETIME":
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return value in {opt.get("value") for opt in field.options if isinstance(opt, dict)}
