"""Starting an Excel run from the console: the upload goes through the bounded form reader
and the run plans what the file holds."""

from __future__ import annotations

import contextlib
import re

import httpx

from .conftest import CallbackKeys
from .e2e_stack import OPS, running_stack
from .test_reconcile_e2e import finished, seed

BASE = "/ops/console"


def test_an_excel_dry_run_started_from_the_console(sqlite_url: str, keys: CallbackKeys) -> None:
    from simulators.wecom.export import ExcelLayout, export_xlsx

    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=6, departments=2)
        data = export_xlsx(s.wecom.state, ExcelLayout())
        with contextlib.closing(httpx.Client(base_url=s.url, timeout=30)) as client:
            client.post(f"{BASE}/login", data={"token": "ops-test-token"})
            form = client.get(f"{BASE}/start")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert form.status_code == 200 and csrf
            fields = {"csrf": csrf.group(1), "direction": "upstream", "mode": "create_update",
                      "dry_run": "true", "source": "excel"}
            started = client.post(f"{BASE}/start", data=fields,
                                  files={"file": ("通讯录.xlsx", data)})
            assert started.status_code == 303, started.text[-500:]
            run_id = int(started.headers["location"].rsplit("/", 1)[1])
            bad = client.post(f"{BASE}/start", data={**fields, "start_row": "x"},
                              files={"file": ("通讯录.xlsx", data)})
            assert bad.status_code == 400 and "start_row" in bad.text
        run = finished(s, run_id)
        assert run["status"] == "succeeded" and run["source"] == "excel" and run["dry_run"]
        planned = {i["key"] for i in httpx.get(f"{s.url}/ops/runs/{run_id}",
                                               headers=OPS).json()["items"]}
        assert {u["userid"] for u in directory.users} <= planned
