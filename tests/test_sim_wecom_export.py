"""The simulator's exports, generator, admin routes and CLI options."""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from openpyxl import load_workbook

from simulators.generate import generate_directory
from simulators.server import free_port
from simulators.wecom import ApiError, ExcelLayout, WeComSimulator, export_xlsx
from simulators.wecom.cli import add_arguments, run
from simulators.wecom.export import DEPARTMENT_CSV_HEADER, USER_CSV_HEADER


@pytest.fixture
def sim() -> Iterator[WeComSimulator]:
    with WeComSimulator(corp_name="测试公司") as simulator:
        admin = simulator.admin
        admin.create_department("研发部", id=2)
        admin.create_department("后端组", 2, id=3)
        admin.create_user("zhangsan", "张三", [3, 1], mobile="13800000000",
                          email="zs@example.com", gender="1", position="工程师",
                          is_leader_in_dept=[1, 0], alias="Zhang", telephone="010-1234",
                          biz_mail="zs@corp.example.com", address="北京")
        admin.create_user("lisi", "李四", [2], email="ls@example.com", gender="2", status=4)
        admin.disable_user("lisi")
        yield simulator


def _rows(data: bytes) -> list[tuple[object, ...]]:
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    assert sheet is not None
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_xlsx_has_a_title_row_then_the_header_then_members(sim: WeComSimulator) -> None:
    rows = _rows(export_xlsx(sim.state))
    assert "测试公司" in str(rows[0][0])
    assert rows[1] == ("姓名", "账号", "别名", "职务", "部门", "性别", "手机", "座机", "个人邮箱",
                       "企业邮箱", "地址", "激活状态", "禁用状态")
    by_account = {row[1]: dict(zip(rows[1], row, strict=True)) for row in rows[2:]}
    zhang = by_account["zhangsan"]
    assert zhang["部门"] == "测试公司/研发部/后端组;测试公司"
    assert (zhang["姓名"], zhang["性别"], zhang["手机"], zhang["个人邮箱"]) == (
        "张三", "男", "13800000000", "zs@example.com")
    assert (zhang["企业邮箱"], zhang["座机"], zhang["别名"], zhang["地址"]) == (
        "zs@corp.example.com", "010-1234", "Zhang", "北京")
    assert (zhang["激活状态"], zhang["禁用状态"]) == ("已激活", "正常")
    li = by_account["lisi"]
    assert (li["性别"], li["手机"] or "", li["激活状态"], li["禁用状态"]) == (
        "女", "", "未激活", "已禁用")


def test_xlsx_layout_switches(sim: WeComSimulator) -> None:
    rows = _rows(export_xlsx(sim.state, ExcelLayout(title_row=False, account_header="帐号")))
    assert rows[0][:2] == ("姓名", "帐号") and len(rows) == 3


def test_csv_templates_over_http(sim: WeComSimulator) -> None:
    client = httpx.Client(base_url=sim.url)
    users = client.get("/_admin/export/users.csv")
    assert users.status_code == 200 and users.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(users.text)))
    assert tuple(table[0]) == USER_CSV_HEADER
    assert ",".join(table[0]) == ("姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,"
                                  "别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)")
    rows = {row[1]: row for row in table[1:]}
    assert rows["zhangsan"][4] == "3;1" and rows["zhangsan"][7] == "1;0"
    assert rows["lisi"][12] == "1"
    departments = list(csv.reader(io.StringIO(client.get("/_admin/export/departments.csv").text)))
    assert tuple(departments[0]) == DEPARTMENT_CSV_HEADER
    assert [row[:3] for row in departments[1:]] == [
        ["测试公司", "1", "0"], ["研发部", "2", "1"], ["后端组", "3", "2"]]
    excel = client.get("/_admin/export/address-book.xlsx", params={"account_header": "帐号"})
    assert _rows(excel.content)[1][1] == "帐号"
    assert "attachment" in excel.headers["content-disposition"]


# -- generator -----------------------------------------------------------------------------


def test_generator_is_deterministic_and_realistic() -> None:
    first = generate_directory(users=2000, departments=120, seed=7, max_depth=6)
    again = generate_directory(users=2000, departments=120, seed=7, max_depth=6)
    other = generate_directory(users=2000, departments=120, seed=8, max_depth=6)
    assert first == again and first != other
    assert len(first.departments) == 120 and len(first.users) == 2000
    userids = [u["userid"] for u in first.users]
    assert len({u.lower() for u in userids}) == len(userids)
    mobiles = [u["mobile"] for u in first.users if u["mobile"]]
    assert len(set(mobiles)) == len(mobiles)
    assert all(u["mobile"] or u["email"] for u in first.users)
    assert any(len(u["department"]) > 1 for u in first.users)
    assert all("\u4e00" <= u["name"][0] <= "\u9fff" for u in first.users)
    with WeComSimulator() as sim:
        sim.admin.load(first.departments, first.users)  # every record passes the API's rules
        depths = Counter(sim.state.departments.depth(d) for d in sim.state.departments.by_id)
        assert max(depths) == 6


def test_generator_makes_100k_users_in_seconds() -> None:
    started = time.monotonic()
    big = generate_directory(users=100_000, departments=5_000, seed=1)
    assert time.monotonic() - started < 10
    assert len(big.users) == 100_000 and len(big.departments) == 5_000


def test_seeded_simulator_pages_through_every_pair() -> None:
    with WeComSimulator(seed_users=3000, seed_departments=200, seed=3) as sim:
        expected = sum(len(u.department) for u in sim.state.users)
        client = httpx.Client(base_url=sim.url)
        token = client.get("/cgi-bin/gettoken", params={
            "corpid": sim.corp_id, "corpsecret": "contact-sync-secret"}).json()["access_token"]
        seen, cursor = 0, ""
        while True:
            page = client.post("/cgi-bin/user/list_id", params={"access_token": token},
                               json={"cursor": cursor, "limit": 1000}).json()
            seen += len(page["dept_user"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == expected > 3000


# -- admin routes and Python API ------------------------------------------------------------


def test_admin_settings_faults_stats_and_tokens_over_http(sim: WeComSimulator) -> None:
    client = httpx.Client(base_url=sim.url)
    settings = client.put("/_admin/settings", json={"restricted_reads": True,
                                                    "rate_limit_per_minute": 100}).json()
    assert settings["restricted_reads"] is True and settings["rate_limit_per_minute"] == 100
    token = client.get("/cgi-bin/gettoken", params={
        "corpid": sim.corp_id, "corpsecret": "contact-sync-secret"}).json()["access_token"]
    detail = client.get("/cgi-bin/user/get", params={"access_token": token, "userid": "lisi"})
    assert detail.json()["errcode"] == 48009
    client.post("/_admin/faults", json={"endpoint": "department/get", "errcode": 45009})
    got = client.get("/cgi-bin/department/get", params={"access_token": token, "id": 1})
    assert got.json()["errcode"] == 45009
    stats = client.get("/_admin/stats").json()
    assert stats["reads"]["department/get"] == 1 and stats["total_writes"] == 0
    client.post("/_admin/tokens/expire")
    expired = client.get("/cgi-bin/department/get", params={"access_token": token, "id": 1})
    assert expired.json()["errcode"] == 42001
    bad = client.post("/_admin/faults", json={"kind": "explode"})
    assert bad.status_code == 400
    state = client.get("/_admin/state").json()
    assert (state["users"], state["departments"]) == (2, 3)


def test_admin_python_api_refuses_what_the_api_refuses(sim: WeComSimulator) -> None:
    with pytest.raises(ApiError) as caught:
        sim.admin.create_user("ZHANGSAN", "重复", mobile="13900000000")
    assert caught.value.errcode == 60102
    with pytest.raises(ApiError) as caught:
        sim.admin.delete_department(2)
    assert caught.value.errcode == 60006
    with pytest.raises(TypeError, match="department"):
        sim.admin.create_user("typo", "类型", "1", mobile="13900000001")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown field"):
        sim.admin.update_user("lisi", nickname="x")


def test_cli_options_parse() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "9001", "--corp-id", "wwx", "--trimmed",
                              "--restricted-reads", "--withhold-sensitive", "--latency-ms", "20",
                              "--rate-limit-per-minute", "600", "--seed-users", "10",
                              "--seed-departments", "3", "--app-secret", "a", "--app-secret", "b"])
    assert (args.port, args.corp_id, args.trimmed, args.latency_ms) == (9001, "wwx", True, 20.0)
    assert args.app_secrets == ["a", "b"] and args.seed_users == 10
    assert args.restricted_reads and args.withhold_sensitive


def test_cli_serves_the_simulator() -> None:
    port = free_port()
    command = [sys.executable, "-c",
               "import argparse, sys; from simulators.wecom import cli; "
               "p = argparse.ArgumentParser(); cli.add_arguments(p); "
               "sys.exit(cli.run(p.parse_args(sys.argv[1:])))",
               "--port", str(port), "--corp-id", "wwcli", "--seed-users", "50",
               "--seed-departments", "5"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/_admin/state", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the CLI simulator did not start"
                time.sleep(0.05)
        assert (state["corp_id"], state["users"], state["departments"]) == ("wwcli", 50, 5)
    finally:
        process.terminate()
        process.wait(10)


def test_cli_refuses_a_bad_aes_key() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--encoding-aes-key", "short"])) == 2


def test_an_outage_answers_every_call_until_it_ends(sim: WeComSimulator) -> None:
    client = httpx.Client(base_url=sim.url)
    token = client.get("/cgi-bin/gettoken", params={
        "corpid": sim.corp_id, "corpsecret": "contact-sync-secret"}).json()["access_token"]
    client.post("/_admin/faults", json={"endpoint": "department/get", "errcode": -1,
                                        "seconds": 0.6})
    for _ in range(4):
        got = client.get("/cgi-bin/department/get", params={"access_token": token, "id": 1})
        assert got.json()["errcode"] == -1
    time.sleep(0.7)
    got = client.get("/cgi-bin/department/get", params={"access_token": token, "id": 1})
    assert got.json()["errcode"] == 0
