"""What a WeCom member or department shows, as an essence (see ``directory.essence``), in
WeCom's names: the fields a write to WeCom sets. Upstream reads it from each source record
to recognise the echo of a write the opposite direction made (a callback WeCom sends about
our own change); the downstream writer records the same essence when it writes.
"""

from __future__ import annotations

from typing import Any

from sync_core.wecom.model import WeComDepartment, WeComUser

USER_FIELDS = ("name", "alias", "mobile", "email", "position", "gender", "telephone",
               "english_name", "main_department", "status")


def user(record: WeComUser) -> dict[str, Any]:
    essence: dict[str, Any] = {"userid": record.userid}
    essence.update((name, getattr(record, name)) for name in USER_FIELDS)
    essence["department"] = sorted(str(d) for d in record.department or ())
    return essence


def department(record: WeComDepartment) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "parentid": record.parent_id}
