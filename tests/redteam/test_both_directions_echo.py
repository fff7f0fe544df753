"""Red team: in ``both``, a WeCom change that upstream writes to Authing comes back as
webhooks and must cause 0 WeCom writes (issue 10 §6; README "Both directions at once").
A member whose mobile carries a country code, in WeCom's own ``+852-…`` form, is split by
upstream into Authing's ``phone`` + ``phoneCountryCode``; downstream reads only ``phone``
and writes it back to WeCom: an echo write that also drops the country code."""

from __future__ import annotations

import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import ORG, running_stack
from ..test_downstream_e2e import authing_writes, dead_reasons, root, wecom_user, writes


@pytest.mark.parametrize("mobile", ["+852-61234567", "+86-13800000001"])
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


def test_an_authing_phone_with_a_country_code_reaches_wecom_with_it(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Downstream alone: Authing's ``+852`` / ``61234567`` must not become the
    mainland-looking ``61234567`` in WeCom."""
    with running_stack(sqlite_url, keys, direction="downstream") as s:
        a = s.authing.admin
        user = a.create_user(username="hk", name="香港", phone="61234567",
                             phoneCountryCode="+852", email="hk@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": root(s)}])
        s.settle()
        member = wecom_user(s, "hk")
        assert member is not None
        assert "852" in member["mobile"], member["mobile"]


def test_an_authing_membership_change_called_back_writes_nothing_to_authing(
        sqlite_url: str, keys: CallbackKeys) -> None:
    """Issue 10 §6: "An Authing change → WeCom write causes 0 Authing writes, even when a
    callback comes back". A second department added in Authing comes back from WeCom and
    upstream rewrites customData ``wechatwork_department_ids`` ("2" → "2,3")."""
    with running_stack(sqlite_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True  # another app sees our writes
        a = s.authing.admin
        sales = a.create_department(ORG, "销售部", root(s))["departmentId"]
        market = a.create_department(ORG, "市场部", root(s))["departmentId"]
        user = a.create_user(username="ww", name="王五", email="ww@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": sales}])
        s.settle()
        before = authing_writes(s)
        a.set_user_departments(user["userId"], [{"departmentId": market},
                                                {"departmentId": sales,
                                                 "isMainDepartment": True}])
        s.settle()
        assert len(wecom_user(s, "ww")["department"]) == 2  # type: ignore[index]
        assert authing_writes(s) == before, s.authing.stats


@pytest.mark.parametrize("policy", ["suspend", "resign"])
def test_a_member_deleted_in_wecom_is_not_recreated_nor_dead_lettered(
        sqlite_url: str, keys: CallbackKeys, policy: str) -> None:
    """WeCom delete_user → upstream suspends (or resigns) the Authing user → Authing's
    webhooks come back. With ``suspend`` downstream re-creates the deleted member in WeCom
    (user/create, disabled); with ``resign`` (the default) each webhook retries 8 times and
    goes dead ("needs at least one department"). Issue 10 §6: 0 WeCom writes."""
    with running_stack(sqlite_url, keys, direction="both", user_delete_policy=policy) as s:
        s.wecom.admin.create_department("研发部", 1, id=2)
        s.wecom.admin.create_user("leaver", "离职者", department=(2,), mobile="13800000016",
                                  email="leaver@example.com")
        s.settle()
        before = writes(s)
        s.wecom.admin.delete_user("leaver")
        s.settle(60)
        assert s.user("leaver") is not None  # kept in Authing, per the policy
        assert wecom_user(s, "leaver") is None, "re-created in WeCom"
        assert writes(s) == before, dict(s.wecom.faults.stats.writes)
        assert not dead_reasons(s), dead_reasons(s)
