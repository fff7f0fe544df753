"""Red team: upstream (WeCom → Authing) under odd orders and delays of callbacks, end to
end over real HTTP (mission: upstream incremental "right under any order, delay or loss of
deliveries"; "nothing is lost, no former employee stays active"). Expected to fail until
fixed."""

from __future__ import annotations

from ..conftest import CallbackKeys
from ..e2e_stack import Stack, running_stack
from ..test_downstream_e2e import dead_reasons


def parent_open_id(s: Stack, wecom_id: int) -> str | None:
    with s.authing.state.lock:
        depts = s.authing.state.departments
        me = next(d for d in depts.values() if d.open_department_id == str(wecom_id))
        parent = depts.get(me.parent_id) if me.parent_id else None
        return parent.open_department_id if parent is not None else None


def test_a_parent_and_child_swapped_with_the_first_move_delayed(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Mission "right under any order": WeCom has A (2) with child B (3); B moves to the
    root, then A moves under B. The first callback (B to the root) is delayed past the
    second. Authing must end with B under the root and A under B, no event dead. Today
    A's move is refused by Authing as a cycle (2410: B is still under A there), taken as
    a permanent error and ``dead``; B's later move does not bring A's back."""
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_department("甲", 1, id=2)
        s.wecom.admin.create_department("乙", 2, id=3)
        s.settle()
        s.wecom.pusher.hold_next(1)
        s.wecom.admin.update_department(3, parentid=1)
        s.wecom.admin.update_department(2, parentid=3)
        s.settle()
        s.wecom.pusher.release()
        s.settle()
        assert parent_open_id(s, 2) == "3", dead_reasons(s)
        assert parent_open_id(s, 3) in ("1", None), dead_reasons(s)
        assert not dead_reasons(s), dead_reasons(s)


def test_a_department_deleted_before_its_members_delete_callbacks_arrive(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Mission "right under any order, delay": WeCom removes a team, its members first,
    then the department; the members' ``delete_user`` callbacks are delayed past the
    ``delete_party`` (here: until the department's event has spent its attempts). Authing
    must end without the department and without active accounts for the members, nothing
    dead. Today the department delete goes ``dead`` as "not empty" (README: a conflict a
    re-plan resolves counts against WECOM_SYNC_WORKER_MAX_ATTEMPTS) and nothing revisits it
    once the members' deletes arrive: an empty department WeCom removed stays in Authing
    until an operator replays it or a full reconcile runs."""
    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.create_department("解散组", 1, id=2)
        for i in range(2):
            s.wecom.admin.create_user(f"team{i}", f"组员{i}", department=(2,),
                                      mobile=f"1380000003{i}", email=f"team{i}@example.com")
        s.settle()
        s.wecom.pusher.hold_next(2)
        s.wecom.admin.delete_users(["team0", "team1"])
        s.wecom.admin.delete_department(2)
        s.settle()
        s.wecom.pusher.release()
        s.settle()
        active = [u for u in ("team0", "team1")
                  if (s.user(u) or {}).get("status") == "Activated"]
        assert active == [] and "2" not in s.departments(), (active, dead_reasons(s))
        assert not dead_reasons(s), dead_reasons(s)
