"""Red team: approving a blocked run (README "Reconciler": "nothing is deleted until
POST /ops/runs/{id}/approve"). Expected to fail until fixed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from ..conftest import CallbackKeys
from ..e2e_stack import OPS, running_stack
from ..test_reconcile_e2e import finished, start


def test_concurrent_approvals_apply_the_run_once(
        pg_url: str, keys: CallbackKeys) -> None:
    """Two operators (or a double click) approve the same blocked run at once: exactly
    one approval is accepted (202), the others are refused (409), and the run's deletes
    are applied once (its ``deleted`` counter equals the members removed). Today
    ``Reconciler.approve`` reads the status, then marks the run running in another
    transaction: several approvals pass the check and each applies the deletes (the later
    ones fail theirs: "用户不存在"). A timing race, driven four rounds on PostgreSQL."""
    with running_stack(pg_url, keys, delete_threshold_percent=100,
                       delete_threshold_count=1, user_delete_policy="delete") as s:
        s.wecom.admin.create_department("A", 1, id=2)
        for round_ in range(4):  # a race: several rounds, each must hold
            names = [f"ap{round_}x{i}" for i in range(3)]
            for i, name in enumerate(names):
                s.wecom.admin.create_user(name, name, department=(2,),
                                          mobile=f"13800{round_:02d}007{i}",
                                          email=f"{name}@example.com")
            s.settle()
            s.wecom.pusher.drop_next(3)
            s.wecom.admin.delete_users(names)
            run = finished(s, start(s, {"mode": "full"}))
            assert run["status"] == "blocked", run
            with ThreadPoolExecutor(12) as pool:
                answers = list(pool.map(
                    lambda _, r=run: httpx.post(f"{s.url}/ops/runs/{r['id']}/approve",
                                                headers=OPS, timeout=30), range(12)))
            codes = sorted(a.status_code for a in answers)
            done = finished(s, run["id"])
            assert codes.count(202) == 1, (round_, codes)
            assert done["counters"]["deleted"] == 3, (round_, done)
