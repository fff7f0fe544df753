"""Red team: in ``both``, a WeCom change that upstream writes to Authing comes back as
webhooks and must cause 0 WeCom writes (issue 10 §6; README "Both directions at once").
A member whose mobile carries a country code, in WeCom's own ``+852-…`` form, is split by
upstream into Authing's ``phone`` + ``phoneCountryCode``; downstream reads only ``phone``
and writes it back to WeCom: an echo write that also drops the country code."""

from __future__ import annotations

import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import running_stack
from ..test_downstream_e2e import root, wecom_user, writes


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
