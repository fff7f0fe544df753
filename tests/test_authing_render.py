"""Upstream users through the canonical planner: what ``AuthingRender`` writes and shows
for canonical decisions, in Authing's field names (phone and its code apart, statuses,
genders, clearing with null)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sync_core.authing.model import AuthingUser
from sync_core.authing.planner import Action, Change, DepartmentIndex, plan_user
from sync_core.authing.render import AuthingRender
from sync_core.binding import Binding
from sync_core.directory.model import User
from sync_core.wecom.model import WeComUser

POLICY = Binding(organization_code="wecom", root_department_id="root-id")
INDEX = DepartmentIndex.build((), POLICY)
MEMBER = WeComUser("zs", name="张三", mobile="13800000000", gender=1, email="zs@example.com",
                   status=1, avatar="http://a")
ACCOUNT = AuthingUser("uid-zs", "zs", "zs", "张三", "13800000000", "+86", "zs@example.com", "M",
                      "Activated", "http://a",
                      custom_data=(("wechatwork_user_id", "zs"),))


@pytest.mark.parametrize(("account", "changes", "body"), [
    pytest.param(replace(ACCOUNT, phone_country_code="+852"),
                 (Change("phoneCountryCode", "+852", "+86"),), {"phoneCountryCode": "+86"},
                 id="a-new-country-code-goes-alone"),
    pytest.param(replace(ACCOUNT, phone="13900000000"),
                 (Change("phone", "13900000000", "13800000000"),),
                 {"phone": "13800000000", "phoneCountryCode": "+86"},
                 id="a-new-phone-goes-with-its-code"),
    pytest.param(replace(ACCOUNT, status="Deactivated"),
                 (Change("status", "Deactivated", "Activated"),), {"status": "Activated"},
                 id="a-status-outside-the-three-is-corrected"),
    pytest.param(replace(ACCOUNT, gender="X"), (Change("gender", "X", "M"),), {"gender": "M"},
                 id="an-unknown-gender-is-corrected"),
    pytest.param(replace(ACCOUNT, status=None, photo=None),
                 (Change("status", None, "Activated"), Change("photo", None, "http://a")),
                 {"status": "Activated", "photo": "http://a"}, id="empty-in-authing-is-written"),
])
def test_profile_changes_in_authings_names(account: AuthingUser, changes: tuple[Change, ...],
                                           body: dict) -> None:
    [op] = plan_user(MEMBER, account, POLICY, INDEX)
    assert (op.action, op.changes) == (Action.UPDATE, changes)
    assert [(r.endpoint, dict(r.body)) for r in op.requests] == [
        ("update-user", {"userId": "uid-zs", **body})]


def test_clearing_sends_null_and_an_empty_field_is_not_cleared_again() -> None:
    cleared = replace(MEMBER, mobile="", email="", avatar="")
    [op] = plan_user(cleared, ACCOUNT, POLICY, INDEX)
    assert op.changes == (Change("phone", "13800000000", None),
                          Change("email", "zs@example.com", None),
                          Change("photo", "http://a", None))
    assert dict(op.requests[0].body) == {"userId": "uid-zs", "phone": None, "email": None,
                                         "photo": None}
    emptied = replace(ACCOUNT, phone=None, phone_country_code=None, email=None, photo=None)
    [again] = plan_user(cleared, emptied, POLICY, INDEX)
    assert again.action is Action.UNCHANGED and not again.requests


def test_a_create_leaves_empty_values_out_and_shows_what_it_sets() -> None:
    [op] = plan_user(replace(MEMBER, email="", avatar=""), None, POLICY, INDEX)
    body = dict(op.requests[0].body)
    assert body == {"externalId": "zs", "username": "zs", "name": "张三", "phone": "13800000000",
                    "phoneCountryCode": "+86", "gender": "M", "status": "Activated",
                    "customData": {"wechatwork_user_id": "zs"}}
    assert op.changes == (Change("externalId", None, "zs"), Change("username", None, "zs"),
                          Change("name", None, "张三"), Change("phone", None, "13800000000"),
                          Change("phoneCountryCode", None, "+86"), Change("gender", None, "M"),
                          Change("status", None, "Activated"),
                          Change("customData.wechatwork_user_id", None, "zs"))


def test_shown_renders_changes_it_did_not_write_itself() -> None:
    """A render asked only for the changes (no write rendered by it) works them out."""
    render = AuthingRender("wecom", ACCOUNT)
    desired = User("zs", None, {"name": "李四", "mobile": "+852-61234567"})
    shown = render.shown((Change("mobile", "+86-13800000000", "+852-61234567"),
                          Change("name", "张三", "李四"), Change("customData.x", None, "1")),
                         desired)
    assert shown == (Change("name", "张三", "李四"), Change("phone", "13800000000", "61234567"),
                     Change("phoneCountryCode", "+86", "+852"), Change("customData.x", None, "1"))
