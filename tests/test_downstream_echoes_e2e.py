"""Downstream's own writes coming back, counted on the simulators: a department WeCom
calls back is recognised (the link table holds what downstream wrote), and the webhooks
of the ids written back to Authing cost no re-read, while a real change still does."""

from __future__ import annotations

import httpx

from .conftest import CallbackKeys
from .e2e_stack import OPS, ORG, Stack
from .test_downstream_e2e import downstream, root, wecom_departments, wecom_id, wecom_user


def history(s: Stack, event_id: int) -> str:
    reply = httpx.get(f"{s.url}/ops/events/{event_id}", headers=OPS)
    reply.raise_for_status()
    return " ".join(str(h.get("detail")) for h in reply.json()["history"])


def test_a_department_created_in_wecom_is_recognised_when_wecom_calls_it_back(
        db_url: str, keys: CallbackKeys) -> None:
    with downstream(db_url, keys, direction="both") as s:
        s.wecom.switches.callback_api_writes = True  # another app sees our writes
        rd = s.authing.admin.create_department(ORG, "研发部", root(s))["departmentId"]
        s.settle()
        rd_id = wecom_id(s, rd)
        assert list(wecom_departments(s)) == [rd_id]
        assert s.wecom.pusher.deliveries, "WeCom called our write back"
        # The callback is ours: no second Authing department, and Authing is written
        # only by the write-back of the id WeCom gave.
        assert s.authing.stats.writes.get("create-department", 0) == 0, s.authing.stats
        assert s.authing.stats.writes["update-department"] == 1, s.authing.stats
        with s.authing.state.lock:
            names = [d.name for d in s.authing.state.departments.values() if d.org_code == ORG]
        assert sorted(names, key=str).count("研发部") == 1
        # Its link row holds the essence, as users' do: it is something downstream manages.
        reply = httpx.get(f"{s.url}/ops/objects/department/{rd}", headers=OPS)
        reply.raise_for_status()
        rows = [r for r in reply.json()["links"] if r["direction"] == "downstream"]
        assert rows and rows[0]["target_id"] == str(rd_id) and rows[0]["essence_hash"]
        assert not s.events(status="dead"), [e["last_error"] for e in s.events(status="dead")]


def test_the_webhooks_of_our_own_write_back_cost_no_reread(
        db_url: str, keys: CallbackKeys) -> None:
    with downstream(db_url, keys) as s:
        a = s.authing.admin
        rd = a.create_department(ORG, "研发部", root(s))["departmentId"]
        user = a.create_user(username="lisi", name="李四", email="lisi@example.com")
        a.set_user_departments(user["userId"], [{"departmentId": rd}])
        s.settle()
        assert wecom_user(s, "lisi") is not None
        mark = max(e["id"] for e in s.events())
        # Someone clears externalId: downstream writes the userid back (one Authing
        # write), and Authing's webhook about that write is settled without a read.
        writes, reads = s.authing.stats.writes["update-user"], dict(s.authing.stats.reads)
        wecom_reads = s.wecom.faults.stats.total_reads
        a.update_user(user["userId"], externalId=None)
        s.settle()
        assert a.get_user(user["userId"])["externalId"] == "lisi"  # type: ignore[index]
        assert s.authing.stats.writes["update-user"] == writes + 1
        later = sorted((e for e in s.events() if e["id"] > mark), key=lambda e: e["id"])
        assert [e["event_type"] for e in later] == ["user:updated", "user:updated"]
        assert "echo" not in history(s, later[0]["id"])
        assert "echo" in history(s, later[1]["id"]), history(s, later[1]["id"])
        # Only the first webhook was read: once in Authing, once in WeCom.
        assert s.authing.stats.reads["get-user"] == reads["get-user"] + 1
        assert s.wecom.faults.stats.total_reads == wecom_reads + 1
        # A real change after it is still read and applied.
        a.update_user(user["userId"], name="李四光")
        s.settle()
        assert wecom_user(s, "lisi")["name"] == "李四光"  # type: ignore[index]
        # So is a write-back field changed by someone else (not the value we wrote).
        mark = max(e["id"] for e in s.events())
        a.update_user(user["userId"], externalId="lisi2")
        s.settle()
        changed = [e for e in s.events() if e["id"] > mark]
        assert changed and "echo" not in history(s, changed[0]["id"])
        # WeCom cannot rename a userid it did not generate (reference §3.6): the change
        # is a conflict naming both, and Authing keeps naming the real member.
        dead = [e["last_error"] for e in s.events(status="dead")]
        assert len(dead) == 1 and "'lisi2'" in dead[0] and "'lisi'" in dead[0], dead
        held = a.get_user(user["userId"])["customData"]["wechatwork_user_id"]  # type: ignore[index]
        assert held == "lisi" and wecom_user(s, "lisi2") is None
