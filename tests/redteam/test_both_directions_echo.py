"""Red team: in ``both``, a WeCom change that upstream writes to Authing comes back as
webhooks and must cause 0 WeCom writes (issue 10 §6; README "Both directions at once").
(The country-code and membership instances moved to tests/test_both_directions_echo_e2e.py.)"""

from __future__ import annotations

import pytest

from ..conftest import CallbackKeys
from ..e2e_stack import running_stack
from ..test_downstream_e2e import dead_reasons, wecom_user, writes


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
