"""User stories of the full-compare reconciler over the ops API, end to end."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.generate import generate_directory

from .conftest import CallbackKeys
from .e2e_stack import OPS, Stack, eventually, running_stack


def start(s: Stack, body: dict[str, Any] | None = None, **kwargs: Any) -> int:
    response = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json=body or {}, **kwargs)
    assert response.status_code == 202, response.text
    return int(response.json()["run_id"])


def finished(s: Stack, run_id: int, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = httpx.get(f"{s.url}/ops/runs/{run_id}", headers=OPS).json()
        return run if run["status"] not in ("queued", "running") else None

    return eventually(done, timeout)  # type: ignore[no-any-return]


def seed(s: Stack, users: int = 40, departments: int = 8) -> Any:
    directory = generate_directory(users=users, departments=departments, seed=3, max_depth=4)
    s.wecom.admin.load(directory.departments, directory.users)  # no callbacks
    return directory


def lose_deletes(s: Stack, userids: list[str]) -> None:
    """Delete users in WeCom with their callbacks lost: only a full run sees it."""
    s.wecom.pusher.drop_next(len(userids))
    s.wecom.admin.delete_users(userids)
    s.wecom.pusher.flush()


def test_first_run_converges_and_the_second_writes_nothing(db_url: str,
                                                           keys: CallbackKeys) -> None:
    with running_stack(db_url, keys) as s:
        directory = seed(s)
        run = finished(s, start(s))
        assert run["status"] == "succeeded", run
        assert run["counters"]["created"] == len(directory.users) + len(
            directory.departments) - 1
        assert run["counters"]["failed"] == 0
        assert {i["status"] for i in run["items"]} == {"applied"}
        for user in directory.users[:10]:
            authing = s.user(user["userid"])
            assert authing is not None and authing["name"] == user["name"]
            assert s.user_open_departments(user["userid"]) == {
                str(d) for d in user["department"]}
        assert set(s.departments()) == {str(d["id"]) for d in directory.departments}

        writes = s.authing.stats.total_writes
        second = finished(s, start(s, {"mode": "full"}))
        assert second["status"] == "succeeded"
        assert s.authing.stats.total_writes == writes
        assert {i["action"] for i in second["items"]} == {"unchanged"}
        assert second["counters"]["unchanged"] == len(second["items"])

        listed = httpx.get(f"{s.url}/ops/runs", headers=OPS).json()["runs"]
        assert [r["id"] for r in listed][:2] == [second["id"], run["id"]]
        assert "items" not in listed[0]


def test_dry_run_shows_the_plan_and_writes_nothing(sqlite_url: str,
                                                   keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=12, departments=4)
        writes = s.authing.stats.total_writes
        run = finished(s, start(s, {"dry_run": True, "mode": "full"}))
        assert run["status"] == "succeeded" and run["dry_run"] is True
        assert s.authing.stats.total_writes == writes
        creates = [i for i in run["items"] if i["action"] == "create"]
        assert len(creates) == len(directory.users) + len(directory.departments) - 1
        assert {i["status"] for i in creates} == {"planned"}
        assert run["counters"]["created"] == len(creates)
        assert s.user(directory.users[0]["userid"]) is None


def test_deletes_beyond_the_threshold_block_until_approved(sqlite_url: str,
                                                           keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys, delete_threshold_count=3) as s:
        directory = seed(s, users=20, departments=4)
        assert finished(s, start(s))["status"] == "succeeded"
        gone = [u["userid"] for u in directory.users[:6]]
        lose_deletes(s, gone)

        default = finished(s, start(s))  # create_update never deletes
        assert default["counters"]["deleted"] == 0
        assert all(s.user(u)["status"] == "Activated" for u in gone)

        blocked = finished(s, start(s, {"mode": "full"}))
        assert blocked["status"] == "blocked" and "exceed" in blocked["error"]
        staged = [i for i in blocked["items"] if i["status"] == "staged"]
        assert sorted(i["key"] for i in staged) == sorted(gone)
        assert all(s.user(u)["status"] == "Activated" for u in gone)

        # One of them comes back before the operator approves: it must survive.
        back = directory.users[0]
        s.wecom.admin.create_user(back["userid"], back["name"], department=back["department"],
                                  email=back.get("email") or f"{back['userid']}@example.com")
        s.settle()
        reply = httpx.post(f"{s.url}/ops/runs/{blocked['id']}/approve", headers=OPS)
        assert reply.status_code == 202
        approved = finished(s, blocked["id"])
        assert approved["status"] == "succeeded"
        assert s.user(back["userid"])["status"] == "Activated"
        assert all(s.user(u)["status"] == "Resigned" for u in gone[1:])
        assert approved["counters"]["deleted"] == len(gone) - 1
        again = httpx.post(f"{s.url}/ops/runs/{blocked['id']}/approve", headers=OPS)
        assert again.status_code == 409


def test_a_failed_source_page_blocks_deletes(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        directory = generate_directory(users=16, departments=4, seed=3, max_depth=3)
        users = [{**u, "department": [1], "main_department": 1, "is_leader_in_dept": [0],
                  "order": [0]} if i < 3 else u  # three sit in the root
                 for i, u in enumerate(directory.users)]
        s.wecom.admin.load(directory.departments, users)
        assert finished(s, start(s))["status"] == "succeeded"
        newcomer = {"userid": "newcomer", "name": "新同事",
                    "department": [directory.departments[1]["id"]],
                    "email": "newcomer@example.com"}
        s.wecom.admin.load(directory.departments, [*users, newcomer])
        # The first page read is the root department's: its three users go missing.
        s.wecom.fail_next("user/list", errcode=60011, times=1)
        run = finished(s, start(s, {"mode": "full"}))
        assert any("incomplete" in n for n in run["notes"])
        assert run["counters"]["deleted"] == 0
        withheld = [i for i in run["items"] if (i["error"] or "").startswith("not deleted")]
        assert sorted(i["key"] for i in withheld) == sorted(u["userid"] for u in users[:3])
        assert all(s.user(i["key"])["status"] == "Activated" for i in withheld
                   if i["kind"] == "user")
        assert s.user("newcomer") is not None  # creates still happen


def test_bad_requests_and_conflicts(sqlite_url: str, keys: CallbackKeys) -> None:
    with running_stack(sqlite_url, keys) as s:
        for body in ({"mode": "everything"}, {"direction": "sideways"},
                     {"source": "ldap"}, {"dry_run": "maybe"}, {"source": "excel"}):
            reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json=body)
            assert reply.status_code == 400, body
        assert httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                          content=b"{not json").status_code == 400
        assert httpx.post(f"{s.url}/ops/reconcile", json={}).status_code == 401
        assert httpx.get(f"{s.url}/ops/runs/999", headers=OPS).status_code == 404
        assert httpx.get(f"{s.url}/ops/runs/abc", headers=OPS).status_code == 400
        assert httpx.post(f"{s.url}/ops/runs/999/approve", headers=OPS).status_code == 404
        seed(s, users=200, departments=20)
        s.wecom.configure(latency_ms=20)
        first = start(s)
        clash = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json={})
        assert clash.status_code == 409 and clash.json()["run_id"] == first
        assert finished(s, first)["status"] == "succeeded"
        not_blocked = httpx.post(f"{s.url}/ops/runs/{first}/approve", headers=OPS)
        assert not_blocked.status_code == 409


@pytest.mark.parametrize("account_header, title_row", [("账号", True), ("帐号", False)])
def test_excel_export_reconciles(sqlite_url: str, keys: CallbackKeys, account_header: str,
                                 title_row: bool) -> None:
    from simulators.wecom.export import ExcelLayout, export_xlsx

    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=15, departments=4)
        data = export_xlsx(s.wecom.state, ExcelLayout(title_row=title_row,
                                                     account_header=account_header))
        run = finished(s, _upload(s, data, mode="create_update"))
        assert run["status"] == "succeeded" and run["source"] == "excel", run
        for user in directory.users[:5]:
            assert s.user(user["userid"])["name"] == user["name"]


def _upload(s: Stack, data: bytes, filename: str = "通讯录.xlsx", **fields: str) -> int:
    reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, data=fields,
                       files={"file": (filename, data)})
    assert reply.status_code == 202, reply.text
    return int(reply.json()["run_id"])


def test_excel_alone_when_wecom_refuses_reads(sqlite_url: str, keys: CallbackKeys) -> None:
    from simulators.wecom.export import ExcelLayout, export_xlsx

    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=8, departments=3)
        data = export_xlsx(s.wecom.state, ExcelLayout())
        for endpoint in ("department/list", "department/simplelist"):
            s.wecom.fail_next(endpoint, errcode=60020, times=5)  # an untrusted IP
        run = finished(s, _upload(s, data, mode="full"))
        assert run["status"] == "succeeded", run
        assert run["counters"]["deleted"] == 0
        assert all(s.user(u["userid"])["name"] == u["name"] for u in directory.users)
        # Issue 14: the file's department paths became departments (keyed by path, as
        # WeCom's ids cannot be read), and every membership was written.
        for user in directory.users:
            opened = s.user_open_departments(user["userid"])
            assert len(opened) == len(set(user["department"])), (user, opened)
            assert all(o == "1" or o.startswith("excel-") for o in opened)


def test_malformed_files_are_refused_with_row_and_column(sqlite_url: str,
                                                         keys: CallbackKeys) -> None:
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["通讯录导出"])  # a title row first
    sheet.append(["姓名", "账号", "手机", "部门"])
    sheet.append(["张三", "zhangsan", "13800000000", "1"])
    sheet.append(["李四", "lisi", "1380000", "1"])  # a mobile one digit short
    buffer = io.BytesIO()
    book.save(buffer)
    with running_stack(sqlite_url, keys) as s:
        writes = s.authing.stats.total_writes
        for data, name, expect in (
                (b"PK\x03\x04 this is not a workbook", "通讯录.xlsx", "通讯录.xlsx"),
                ("姓名,部门\n张三,1\n".encode(), "users.csv", "账号")):
            reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                               files={"file": (name, data)})
            assert reply.status_code == 400 and expect in reply.json()["error"], reply.text
        assert httpx.get(f"{s.url}/ops/runs", headers=OPS).json()["runs"] == []
        assert s.authing.stats.total_writes == writes
        # Issue 14: a bad cell no longer refuses the file; it fails its own row's item.
        run = finished(s, _upload(s, buffer.getvalue()))
        assert run["status"] == "partial", run
        failed = [i for i in run["items"] if i["status"] == "failed"]
        assert [(i["key"], i["error"]) for i in failed] == [
            ("lisi", "row 4, column 手机 (C): '1380000' is not a valid mobile")]


def test_csv_template_with_row_window(sqlite_url: str, keys: CallbackKeys) -> None:
    from simulators.wecom.export import export_user_csv

    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=10, departments=3)
        data = export_user_csv(s.wecom.state).encode("utf-8")
        run = finished(s, _upload(s, data, "users.csv", start_row="0", end_row="4",
                                  mode="full"))
        assert run["status"] == "succeeded" and run["source"] == "excel"
        # The window kept rows 1..4 (the header is row 0): with the API readable, the API
        # decides who exists, so everyone is created; nobody is deleted in any case.
        assert run["counters"]["deleted"] == 0
        assert all(s.user(u["userid"]) is not None for u in directory.users)


def test_reconcile_writes_are_linked_and_a_no_op_run_leaves_links_alone(
        sqlite_url: str, keys: CallbackKeys) -> None:
    from sqlalchemy import text

    from sync_core.store.db import make_engine

    def links() -> dict[tuple[str, str], tuple[str, object]]:
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            found = {(r.kind, r.source_key): (r.essence_hash, r.updated_at)
                     for r in conn.execute(text("SELECT * FROM links"))}
        engine.dispose()
        return found

    with running_stack(sqlite_url, keys) as s:
        directory = seed(s, users=6, departments=3)
        assert finished(s, start(s))["status"] == "succeeded"
        first = links()
        assert set(first) == {("user", u["userid"]) for u in directory.users} | {
            ("department", str(d["id"])) for d in directory.departments[1:]}
        assert finished(s, start(s))["status"] == "succeeded"
        assert links() == first
