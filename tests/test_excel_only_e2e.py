"""Upstream from the exported address book alone (Authing's offline template), end to end:
the WeCom API is switched off (nothing listens at its address), the file goes through the
ops API or the CLI over real HTTP, and the Authing simulator is the target."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.authing.app import AuthingSimulator
from simulators.server import BackgroundServer
from simulators.wecom.export import ExcelLayout, export_department_csv, export_xlsx
from simulators.wecom.state import Directory

from .conftest import CallbackKeys, make_settings
from .e2e_stack import OPS, ORG, eventually

DEPARTMENTS = [{"id": 2, "name": "研发部", "parentid": 1},
               {"id": 3, "name": "后端组", "parentid": 2},
               {"id": 4, "name": "市场部", "parentid": 1},
               {"id": 5, "name": "后端组", "parentid": 4},
               {"id": 6, "name": "前端组", "parentid": 2}]
USERS = [
    {"userid": "zhangsan", "name": "张三", "department": [3, 4], "mobile": "13800000001"},
    {"userid": "lisi", "name": "李四", "department": [3], "mobile": "13800000002"},
    {"userid": "wangwu", "name": "王五", "department": [5], "email": "ww@example.com"},
    {"userid": "zhaoliu", "name": "赵六", "department": [6], "mobile": "+852-61234567"},
    {"userid": "qianqi", "name": "钱七", "department": [1], "mobile": "13800000005"},
    {"userid": "sunba", "name": "孙八", "department": [6], "mobile": "13800000006",
     "status": 2},
]


def export(users: list[dict[str, Any]] = USERS,
           departments: list[dict[str, Any]] = DEPARTMENTS,
           layout: ExcelLayout | None = None) -> bytes:
    state = Directory("测试公司")
    state.load(departments, users)
    return export_xlsx(state, layout or ExcelLayout.export_2026())


@dataclass
class Offline:
    authing: AuthingSimulator
    url: str

    def upload(self, data: bytes, filename: str = "成员列表.xlsx",
               extra: dict[str, tuple[str, bytes]] | None = None, **fields: str) -> int:
        reply = httpx.post(f"{self.url}/ops/reconcile", headers=OPS, data=fields,
                           files={"file": (filename, data), **(extra or {})})
        assert reply.status_code == 202, reply.text
        return int(reply.json()["run_id"])

    def finished(self, run_id: int) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = httpx.get(f"{self.url}/ops/runs/{run_id}", headers=OPS).json()
            return run if run["status"] not in ("queued", "running") else None

        return eventually(done, 120)  # type: ignore[no-any-return]

    def departments(self) -> dict[tuple[str, ...], Any]:
        """Path of names below the organization root → the simulator's record."""
        with self.authing.state.lock:
            records = {d.department_id: d for d in self.authing.state.departments.values()
                       if d.org_code == ORG}
        paths = {}
        for record in records.values():
            names, current = [], record
            while current is not None and current.parent_id is not None:
                names.append(current.name)
                current = records.get(current.parent_id)
            if names:
                paths[tuple(reversed(names))] = record
        return paths

    def memberships(self, userid: str) -> set[tuple[str, ...]]:
        user = self.authing.admin.get_user(userid, "external_id") or {}
        by_id = {d.department_id: path for path, d in self.departments().items()}
        with self.authing.state.lock:
            org = self.authing.state.orgs[ORG]
        return {by_id.get(d, ("<root>",) if d == org.root_id else ("?", d))
                for d in user.get("departmentIds") or ()}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def offline_stack(db_url: str, keys: CallbackKeys, **settings: Any) -> Iterator[Offline]:
    from receiver.app import create_app

    authing = AuthingSimulator(userpool_id="pool-e2e", secret="pool-secret")
    with authing:
        config = make_settings(
            db_url, keys, wecom_contact_secret="contact-sync-secret",
            wecom_api_base=f"http://127.0.0.1:{_closed_port()}",  # WeCom switched off
            authing_api_base=authing.url, authing_access_key_id="pool-e2e",
            authing_access_key_secret="pool-secret", worker_poll_seconds=0.1,
            http_timeout_seconds=2, retry_total_seconds=1, **settings)
        app = create_app(config, with_worker=True)
        with BackgroundServer(app) as receiver:
            eventually(lambda: app.state.runtime.worker.ready, 20)
            yield Offline(authing, receiver.url)


NESTED = {("研发部",), ("研发部", "后端组"), ("研发部", "前端组"), ("市场部",),
          ("市场部", "后端组")}


def test_excel_alone_builds_the_tree_reimports_idle_and_follows_a_move(
        db_url: str, keys: CallbackKeys) -> None:
    with offline_stack(db_url, keys, delete_threshold_percent=5) as s:
        first = s.finished(s.upload(export(), mode="full"))
        assert first["status"] == "succeeded", first
        assert first["counters"]["created"] == len(USERS) + len(NESTED), first["counters"]
        tree = s.departments()
        assert set(tree) == NESTED  # the same team name under two parents: two departments
        assert all(d.open_department_id.startswith("excel-") for d in tree.values())
        assert tree[("研发部", "后端组")].parent_id == tree[("研发部",)].department_id
        assert s.memberships("zhangsan") == {("研发部", "后端组"), ("市场部",)}
        assert s.memberships("qianqi") == {("<root>",)}  # listed at the company itself
        zhangsan = s.authing.admin.get_user("zhangsan", "external_id")
        assert zhangsan["mainDepartmentId"] == tree[("研发部", "后端组")].department_id
        assert s.authing.admin.get_user("sunba", "external_id")["status"] == "Suspended"
        assert s.authing.admin.get_user("zhaoliu", "external_id")["phone"] == "61234567"

        writes = s.authing.stats.total_writes
        again = s.finished(s.upload(export(), mode="full"))
        assert again["status"] == "succeeded", again
        assert s.authing.stats.total_writes == writes
        assert {i["action"] for i in again["items"]} == {"unchanged"}

        # The next export: 研发部/前端组 moved under 市场部 and renamed, 孙八 gone.
        moved = [*DEPARTMENTS[:4], {"id": 6, "name": "前端", "parentid": 4}]
        later = export([u for u in USERS if u["userid"] != "sunba"], moved)
        blocked = s.finished(s.upload(later, mode="full"))
        assert blocked["status"] == "blocked", blocked
        assert httpx.post(f"{s.url}/ops/runs/{blocked['id']}/approve",
                          headers=OPS).status_code == 202
        done = s.finished(blocked["id"])
        assert done["status"] == "succeeded", done
        after = s.departments()
        assert ("市场部", "前端") in after and ("研发部", "前端组") not in after
        same = after[("市场部", "前端")]
        assert same.department_id == tree[("研发部", "前端组")].department_id  # not recreated
        assert s.memberships("zhaoliu") == {("市场部", "前端")}
        assert any(i["action"] == "move" and i["status"] == "applied" for i in done["items"])
        assert s.authing.admin.get_user("sunba", "external_id")["status"] == "Resigned"


def test_keep_top_department_and_the_department_csv_links_real_ids(
        db_url: str, keys: CallbackKeys) -> None:
    with offline_stack(db_url, keys) as s:
        run = s.finished(s.upload(export(), mode="create_update", keep_top_department="true"))
        assert run["status"] == "succeeded", run
        assert set(s.departments()) == {("测试公司",), *(("测试公司", *p) for p in NESTED)}

    with offline_stack(db_url, keys) as s:  # a fresh Authing
        run = s.finished(s.upload(export(), mode="full"))
        assert run["status"] == "succeeded", run
        before = {p: d.department_id for p, d in s.departments().items()}
        state = Directory("测试公司")
        state.load(DEPARTMENTS, USERS)
        csv = export_department_csv(state).encode("gb18030")
        linked = s.finished(s.upload(export(), mode="full",
                                     extra={"departments": ("departments.csv", csv)}))
        assert linked["status"] == "succeeded", linked
        assert linked["counters"]["deleted"] == 0 and linked["counters"]["created"] == 0
        after = s.departments()
        assert {p: d.department_id for p, d in after.items()} == before  # same departments
        assert after[("市场部", "后端组")].custom_data["wechatwork_department_id"] == "5"
        writes = s.authing.stats.total_writes
        again = s.finished(s.upload(export(), mode="full",
                                    extra={"departments": ("departments.csv", csv)}))
        assert again["status"] == "succeeded" and s.authing.stats.total_writes == writes


def test_bad_rows_fail_alone_and_a_cut_file_deletes_nothing(db_url: str,
                                                            keys: CallbackKeys) -> None:
    with offline_stack(db_url, keys) as s:
        assert s.finished(s.upload(export(), mode="full"))["status"] == "succeeded"
        bad = [dict(u) for u in USERS[:4]]
        data = export(bad)
        # One cell made invalid after the export, as an admin's edit would.
        import io

        from openpyxl import load_workbook
        book = load_workbook(io.BytesIO(data))
        sheet = book["成员列表"]
        sheet["G11"] = "1380000"  # 李四's mobile, one digit short (row 11, column 手机)
        buffer = io.BytesIO()
        book.save(buffer)
        run = s.finished(s.upload(buffer.getvalue(), mode="full"))
        assert run["status"] == "partial", run
        failed = [i for i in run["items"] if i["status"] == "failed"]
        assert [(i["kind"], i["key"]) for i in failed] == [("user", "lisi")]
        assert failed[0]["error"] == ("row 11, column 手机 (G): '1380000' is not a valid "
                                      "mobile")
        assert run["counters"]["deleted"] == 0
        assert "rows of the file failed" in run["error"]
        for gone in ("qianqi", "sunba"):  # absent from the file, yet not removed
            assert s.authing.admin.get_user(gone, "external_id")["status"] != "Resigned"

        cut = s.finished(s.upload(export(bad), mode="full", start_row="9", end_row="10"))
        assert cut["counters"]["deleted"] == 0
        assert "leave out part of the file" in cut["error"]

        # The whole file, delete only: the two people it no longer lists go, nothing else.
        writes = s.authing.stats.total_writes
        gone = s.finished(s.upload(export(bad), mode="delete_only"))
        assert gone["status"] == "succeeded", gone
        assert sorted(i["key"] for i in gone["items"] if i["action"] == "resign") == [
            "qianqi", "sunba"]
        assert gone["counters"]["created"] == gone["counters"]["updated"] == 0
        assert s.authing.stats.total_writes == writes + 2
        assert s.authing.admin.get_user("qianqi", "external_id")["status"] == "Resigned"


def test_file_options_are_checked_before_a_run(db_url: str, keys: CallbackKeys) -> None:
    with offline_stack(db_url, keys) as s:
        for fields, files, expect in (
                ({"keep_top_department": "maybe"}, {}, "keep_top_department must be true"),
                ({}, {"departments": ("d.csv", "部门名称,部门ID\n公司,1\n".encode())},
                 "department CSV: row 1: missing required column 父部门ID"),
                ({"sheet": "名单"}, {}, "no sheet named '名单'"),
                ({"start_row": "5", "end_row": "2"}, {}, "before start_row")):
            reply = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, data=fields,
                               files={"file": ("成员列表.xlsx", export()), **files})
            assert reply.status_code == 400 and expect in reply.json()["error"], reply.text
        assert httpx.get(f"{s.url}/ops/runs", headers=OPS).json()["runs"] == []
        api = httpx.post(f"{s.url}/ops/reconcile", headers=OPS, json={"source": "api"})
        assert api.status_code == 202  # WeCom is configured here, merely unreachable


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """The CLI configures logging for the process: put it back for the tests after."""
    import logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, *(logging.getLogger(n).level
                                             for n in ("httpx", "httpcore")))
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    logging.getLogger("httpx").setLevel(saved[2])
    logging.getLogger("httpcore").setLevel(saved[3])


def test_cli_reconciles_from_a_file(db_url: str, keys: CallbackKeys, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str],
                                    logging_kept: None) -> None:
    import json

    from receiver.cli import main

    with offline_stack(db_url, keys) as s:
        path = tmp_path / "成员列表.csv"
        path.write_bytes("姓名,帐号,手机,部门\n"
                         "张三,zhangsan,138 0000 0001,公司/研发部；公司/市场部\n"
                         .encode("gb18030"))
        # No WeCom settings at all: the file is the only source (Authing's offline path).
        for name in ("WECOM_CORP_ID", "WECOM_CONTACT_SECRET", "WECOM_API_BASE"):
            monkeypatch.delenv(f"WECOM_SYNC_{name}", raising=False)
        for name, value in (("DATABASE_URL", db_url), ("OPS_TOKEN", "ops-test-token"),
                            ("AUTHING_API_BASE", s.authing.url),
                            ("AUTHING_ACCESS_KEY_ID", "pool-e2e"),
                            ("AUTHING_ACCESS_KEY_SECRET", "pool-secret"),
                            ("RETRY_TOTAL_SECONDS", "1"), ("HTTP_TIMEOUT_SECONDS", "2")):
            monkeypatch.setenv(f"WECOM_SYNC_{name}", value)
        code = main(["reconcile", "--source", "excel", "--file", str(path), "--mode", "full",
                     "--keep-top-department", "--json"])
        out = capsys.readouterr()
        assert out.out, out.err
        run = json.loads(out.out)
        assert code == 0 and run["status"] == "succeeded", run
        assert set(s.departments()) == {("公司",), ("公司", "研发部"), ("公司", "市场部")}
        assert s.memberships("zhangsan") == {("公司", "研发部"), ("公司", "市场部")}
        assert s.authing.admin.get_user("zhangsan", "external_id")["phone"] == "13800000001"

        code = main(["reconcile", "--source", "api"])
        assert code == 2  # a settings error
        assert ("WECOM_SYNC_WECOM_CORP_ID, WECOM_SYNC_WECOM_CONTACT_SECRET are required"
                in capsys.readouterr().err)
        path.write_bytes(b"\x00\x01")
        assert main(["reconcile", "--file", str(path)]) == 1
        assert "not a text file" in capsys.readouterr().err


def test_once_wecom_is_readable_departments_are_rekeyed_and_the_worker_finds_them(
        sqlite_url: str, keys: CallbackKeys) -> None:
    from .e2e_stack import running_stack

    with running_stack(sqlite_url, keys) as s:
        s.wecom.admin.load(DEPARTMENTS, USERS)  # no callbacks
        for endpoint in ("department/list", "department/simplelist"):
            s.wecom.fail_next(endpoint, errcode=60020, times=5)  # a new, untrusted IP
        offline = Offline(s.authing, s.url)
        first = offline.finished(offline.upload(export(), mode="full"))
        assert first["status"] == "succeeded", first
        synthetic = {p: d.department_id for p, d in offline.departments().items()}
        assert all(d.startswith("excel-") for d in s.departments() if d != "1")

        # The IP is trusted now: the API run re-keys every department, recreating none.
        s.wecom.faults.clear()
        run = offline.finished(int(httpx.post(f"{s.url}/ops/reconcile", headers=OPS,
                                              json={"mode": "full"}).json()["run_id"]))
        assert run["status"] == "succeeded", (run["error"], run["notes"])
        assert run["counters"]["created"] == run["counters"]["deleted"] == 0, run["counters"]
        after = offline.departments()
        assert {p: d.department_id for p, d in after.items()} == synthetic
        assert after[("研发部", "前端组")].custom_data["wechatwork_department_id"] == "6"

        # A callback for a member of a re-keyed department: the worker finds it.
        s.wecom.admin.update_user("zhaoliu", department=[6, 2])
        s.settle()
        assert offline.memberships("zhaoliu") == {("研发部", "前端组"), ("研发部",)}
        s.wecom.admin.update_department(6, name="前端")
        s.settle()
        assert set(offline.departments()) == {*NESTED - {("研发部", "前端组")},
                                              ("研发部", "前端")}
        assert len(offline.departments()) == len(NESTED)  # renamed in place, no duplicate
