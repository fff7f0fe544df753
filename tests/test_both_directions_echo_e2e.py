"""In ``both``, a write by one direction comes back to the other and writes nothing
(issue 10 §6): WeCom mobiles with a country code survive the round trip through
Authing's ``phone`` + ``phoneCountryCode`` exactly, and a membership change downstream
writes to WeCom comes back in a callback without an Authing write."""

from __future__ import annotations

import pytest

from .conftest import CallbackKeys
from .e2e_stack import ORG, running_stack
from .test_downstream_e2e import authing_writes, root, wecom_user, writes


@pytest.mark.parametrize("mobile", ["+852-61234567", "+86-13800000001", "+853-66123456",
                                    "+1-2025550123", "13800000002"])
def test_a_wecom_mobile_with_a_country_code_is_not_written_back_to_wecom(
        sqlite_url: str, keys: CallbackKeys, mobile: str) -> None:
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("hkuser", "香港同事", department=(2,), mobile=mobile,
                                  email="hk@example.com")
        s.settle()
        assert s.user("hkuser") is not None, "upstream applied it"
        member = wecom_user(s, "hkuser")
        assert member is not None and member["mobile"] == mobile, member
        assert writes(s) == 0, dict(s.wecom.faults.stats.writes)


@pytest.mark.parametrize(("phone", "code", "mobile"), [
    ("61234567", "+852", "+852-61234567"), ("2025550123", "+1", "+1-2025550123"),
    ("13900000001", "+86", "13900000001")])
def test_an_authing_phone_with_a_country_code_reaches_wecom_with_it(
        sqlite_url: str, keys: CallbackKeys, phone: str, code: str, mobile: str) -> None:
    """Authing's ``+852`` / ``61234567`` must not become the mainland-looking
    ``61234567`` in WeCom; a change of the code alone is a change."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="hk", name="香港", phone=phone,
                             phoneCountryCode=code, email="hk@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        assert wecom_user(s, "hk")["mobile"] == mobile  # type: ignore[index]
        a.update_user(user["userId"], phoneCountryCode="+853")
        s.settle()
        assert wecom_user(s, "hk")["mobile"] == f"+853-{phone}"  # type: ignore[index]


@pytest.mark.parametrize("change", ["add", "remove", "replace"])
def test_an_authing_membership_change_called_back_writes_nothing_to_authing(
        sqlite_url: str, keys: CallbackKeys, change: str) -> None:
    """A department added, removed or swapped in Authing comes back from WeCom (another
    app sees our writes); upstream must not rewrite customData wechatwork_department_ids."""
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True
        a = s.authing.admin
        sales = a.create_department(ORG, "销售部", root(s))["departmentId"]
        market = a.create_department(ORG, "市场部", root(s))["departmentId"]
        user = a.create_user(username="ww", name="王五", email="ww@example.com")
        first = [{"departmentId": sales}] if change != "remove" else [
            {"departmentId": sales}, {"departmentId": market}]
        a.set_user_departments(user["userId"], first)
        s.settle()
        before = authing_writes(s)
        after = {"add": [{"departmentId": market},
                         {"departmentId": sales, "isMainDepartment": True}],
                 "remove": [{"departmentId": sales}],
                 "replace": [{"departmentId": market}]}[change]
        a.set_user_departments(user["userId"], after)
        s.settle()
        assert len(wecom_user(s, "ww")["department"]) == len(after)  # type: ignore[index]
        assert authing_writes(s) == before, s.authing.stats
