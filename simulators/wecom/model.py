"""What the simulated corp stores (departments, users, tags) and how the API renders it.

Records are mutable dataclasses owned by ``Directory``; mutate them only through it (or
``sim.admin``), which keeps the indexes and the change feed in step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ROOT_ID = 1
MAX_DEPTH = 15  # "部门的最大层级为15层"; the root is level 1

# Statuses as user/get reports them.
ACTIVE, DISABLED, NOT_ACTIVATED, QUIT = 1, 2, 4, 5

# Withheld for new apps since 2022-06-20 (reference §3.3, user/get).
SENSITIVE_FIELDS = ("mobile", "email", "biz_mail", "avatar", "thumb_avatar", "gender",
                    "address", "qr_code")


@dataclass(slots=True)
class Department:
    id: int
    name: str
    parentid: int
    order: int = 0
    name_en: str = ""
    department_leader: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """department/get and department/list shape."""
        return {"id": self.id, "name": self.name, "name_en": self.name_en,
                "department_leader": list(self.department_leader),
                "parentid": self.parentid, "order": self.order}


@dataclass(slots=True)
class User:
    userid: str
    name: str
    department: list[int]
    seq: int  # creation order: list_id pages walk it, so a cursor survives renames
    order: list[int] = field(default_factory=list)
    is_leader_in_dept: list[int] = field(default_factory=list)
    main_department: int = ROOT_ID
    position: str = ""
    mobile: str = ""
    gender: str = "0"
    email: str = ""
    biz_mail: str = ""
    direct_leader: list[str] = field(default_factory=list)
    telephone: str = ""
    alias: str = ""
    address: str = ""
    avatar: str = ""
    extattr: dict[str, Any] = field(default_factory=lambda: {"attrs": []})
    external_position: str = ""
    external_profile: dict[str, Any] = field(default_factory=dict)
    status: int = NOT_ACTIVATED
    activated: bool = False  # what status returns to when a disabled user is enabled
    # The system generated the userid and no rename has used it up: only then may
    # user/update's new_userid rename it, once (reference §3.6).
    renamable: bool = False

    @property
    def key(self) -> str:
        """Uniqueness and lookups ignore case ("系统进行唯一性检查时会忽略大小写")."""
        return self.userid.lower()

    @property
    def thumb_avatar(self) -> str:
        return self.avatar[:-2] + "/100" if self.avatar.endswith("/0") else self.avatar

    @property
    def open_userid(self) -> str:
        return "wo" + hashlib.sha256(self.userid.encode()).hexdigest()[:30]

    @property
    def qr_code(self) -> str:
        vcode = hashlib.md5(self.userid.encode()).hexdigest()  # noqa: S324 - not security
        return f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={vcode}"

    def view(self, *, withhold_sensitive: bool = False) -> dict[str, Any]:
        """user/get and user/list shape (reference §3.3 example), in WeCom's key order."""
        out: dict[str, Any] = {
            "userid": self.userid,
            "name": self.name,
            "department": list(self.department),
            "order": list(self.order),
            "position": self.position,
            "mobile": self.mobile,
            "gender": self.gender,
            "email": self.email,
            "biz_mail": self.biz_mail,
            "is_leader_in_dept": list(self.is_leader_in_dept),
            "direct_leader": list(self.direct_leader),
            "avatar": self.avatar,
            "thumb_avatar": self.thumb_avatar,
            "telephone": self.telephone,
            "alias": self.alias,
            "address": self.address,
            "open_userid": self.open_userid,
            "main_department": self.main_department,
            "extattr": self.extattr,
            "status": self.status,
            "qr_code": self.qr_code,
            "external_position": self.external_position,
            "external_profile": self.external_profile,
        }
        if withhold_sensitive:
            for name in SENSITIVE_FIELDS:
                out.pop(name, None)
        return out

    def simple_view(self) -> dict[str, Any]:
        """user/simplelist shape."""
        return {"userid": self.userid, "name": self.name,
                "department": list(self.department), "open_userid": self.open_userid}


@dataclass(slots=True)
class Tag:
    id: int
    name: str
    users: dict[int, None] = field(default_factory=dict)  # user seqs, insertion-ordered
    parties: dict[int, None] = field(default_factory=dict)


def avatar_url(userid: str) -> str:
    """A stable, plausible avatar URL: WeCom's end in ``/0`` (``/100`` is the thumbnail)."""
    digest = hashlib.sha256(b"avatar:" + userid.encode()).hexdigest()[:40]
    return f"https://wework.qpic.cn/wwpic/{digest}/0"
