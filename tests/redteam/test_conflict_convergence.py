"""Red team: issue 10 §6 "When one entity changes on both sides within a few seconds, the
outcome is deterministic, documented, and both sides converge"; README "both sides
converge". The same member is moved to a department in WeCom and to another in Authing
at the same moment, three rounds; after the third, WeCom holds B and Authing C, and
nothing more is written: the two sides stay apart."""

from __future__ import annotations

import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import running_stack
from ..test_downstream_e2e import wecom_user


@pytest.mark.parametrize("callbacks", [False, True], ids=["no-callback", "callback"])
def test_a_department_conflict_repeated_converges(
        sqlite_url: str, keys: CallbackKeys, callbacks: bool) -> None:
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = callbacks
        for name, dept_id in (("A", 2), ("B", 3), ("C", 4)):
            s.wecom.admin.create_department(name, 1, id=dept_id)
        s.wecom.admin.create_user("zl", "赵六", department=(2,), mobile="13800000006",
                                  email="zl@example.com")
        s.settle()
        uid = s.user("zl")["userId"]  # type: ignore[index]
        with s.authing.state.lock:
            c_key = next(d.department_id for d in s.authing.state.departments.values()
                         if d.open_department_id == "4")
        for round_ in range(3):
            s.wecom.admin.update_user("zl", department=[3])  # WeCom: to B
            s.authing.admin.set_user_departments(uid, [{"departmentId": c_key}])  # to C
            s.settle(60)
            in_wecom = [str(d) for d in wecom_user(s, "zl")["department"]]  # type: ignore[index]
            in_authing = sorted(s.user_open_departments("zl"))
            assert in_wecom == in_authing, (round_, in_wecom, in_authing)
