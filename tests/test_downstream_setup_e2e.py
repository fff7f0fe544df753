"""``wecom-sync reconcile --direction downstream`` on a fresh database, before anyone ran
``setup-authing``: the run defines the extension fields its write-backs need first (as
``serve`` does), and refuses up front, writing nothing to WeCom, when it cannot."""

from __future__ import annotations

from pathlib import Path

from simulators.authing.app import AuthingSimulator
from simulators.faults import Fault
from simulators.wecom.app import WeComSimulator

from .test_cli_runs import _run, sim_env

ORG = "wecom"


def seed(authing: AuthingSimulator) -> None:
    """One department under the organization's root with ten users (no custom fields)."""
    a = authing.admin
    org = a.create_organization(ORG, "企业微信")
    dept = a.create_department(ORG, "下游部", org["departmentId"])["departmentId"]
    a.seed_users([{"username": f"dsuser{i}", "name": f"下游{i}",
                   "email": f"dsuser{i}@example.com", "departmentIds": [dept]}
                  for i in range(1, 11)])


def test_a_downstream_reconcile_before_setup_defines_the_fields_and_writes_back(
        tmp_path: Path) -> None:
    with WeComSimulator(corp_id="wwcli") as wecom, \
            AuthingSimulator(userpool_id="cli-pool", secret="s3cret") as authing:
        seed(authing)
        assert not authing.state.fields.fields
        env = sim_env(wecom, authing, tmp_path, WECOM_SYNC_DIRECTION="downstream")
        done = _run(["reconcile", "--direction", "downstream"], env, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "→ succeeded" in done.stdout and "created 11" in done.stdout, done.stdout
        assert {key for _, key in authing.state.fields.fields} >= {
            "wechatwork_user_id", "wechatwork_department_ids", "wechatwork_department_id",
            "wechatwork_parent_department_id"}
        member = authing.admin.get_user("dsuser3", "external_id")
        assert member is not None and member["customData"]["wechatwork_user_id"] == "dsuser3"
        # Defined once: the next start reads them and writes none.
        again = _run(["reconcile", "--direction", "downstream"], env, tmp_path)
        assert again.returncode == 0 and "created 0" in again.stdout, again.stdout
        assert authing.faults.stats.writes["set-custom-fields"] == 1


def test_a_downstream_reconcile_that_cannot_define_the_fields_writes_nothing(
        tmp_path: Path) -> None:
    with WeComSimulator(corp_id="wwcli") as wecom, \
            AuthingSimulator(userpool_id="cli-pool", secret="s3cret") as authing:
        seed(authing)
        authing.faults.arm(Fault("error", 100, payload={
            "statusCode": 403, "message": "no permission to manage custom fields",
            "apiCode": 2010, "data": None}, endpoint="set-custom-fields"))
        env = sim_env(wecom, authing, tmp_path, WECOM_SYNC_DIRECTION="downstream")
        refused = _run(["reconcile", "--direction", "downstream"], env, tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "custom fields" in refused.stdout and "setup-authing" in refused.stdout
        assert "no permission to manage custom fields" in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr
        assert "s3cret" not in refused.stdout + refused.stderr
        assert wecom.faults.stats.total_writes == 0, wecom.faults.stats.writes
